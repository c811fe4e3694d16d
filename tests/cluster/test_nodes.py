"""Several Ray nodes on this one machine (Ray's own `ray.cluster_utils.Cluster`: a head and worker nodes as processes
of the test, each with its own raylet and object store), with `arml run --address` as the driver in its own process:
trials spread over the worker nodes, a worker node lost mid-study, the head lost mid-study. The run folder is on
this machine's disk, so every node sees the same storage, as a cluster's nodes see a shared file system."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from studyfiles import uniform_vs_arml

pytestmark = pytest.mark.slow   # real multi-node clusters and studies of a few minutes each: make test-slow

ARML = [sys.executable, "-m", "orchestrator.cli"]
STEPS = 200


def write(tmp_path: Path, name: str) -> Path:
    return uniform_vs_arml(tmp_path, name, steps=STEPS, eval_every=25, width=8, batch_size=16, aux_batch_size=16,
                           extra="[resources]\ncpus_per_trial = 1\n")


@pytest.fixture
def cluster(monkeypatch):
    """A head without CPUs (trials can only run on worker nodes) and two worker nodes of one CPU each; every
    process ended by `shutdown()`, never `ray stop`. With token authentication, as Ray 2.60 starts clusters (the
    nodes read RAY_AUTH_MODE when they start; a driver in token mode refuses a node that sends no token)."""
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    from ray.cluster_utils import Cluster

    made = []

    def make(workers: int = 2, head_cpus: int = 0) -> Cluster:
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": head_cpus, "include_dashboard": False})
        for _ in range(workers):
            c.add_node(num_cpus=1)
        c.wait_for_nodes()
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            c.shutdown()
        except Exception:  # noqa: BLE001 - a head removed by the test: its nodes may be gone already
            pass


def driver(study: Path, storage: Path, address: str, *extra: str) -> subprocess.Popen:
    from clusters import arml_env

    return subprocess.Popen([*ARML, "run", str(study), "--storage", str(storage), "--address", address, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=arml_env(),
                            start_new_session=True)


def rows(run_dir: Path) -> list[dict]:
    try:
        text = (run_dir / "records.jsonl").read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def states(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "trials.json").read_text())
    except (OSError, ValueError):
        return {}


def node_of(c, node_id: str):
    return next(n for n in c.worker_nodes if n.node_id == node_id)


def end(process: subprocess.Popen, timeout: float = 900) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
    return process.returncode, out, err


def test_trials_spread_over_worker_nodes_and_a_lost_node_s_trial_continues_on_the_other(tmp_path, cluster):
    c = cluster(workers=2)
    workers = {n.node_id for n in c.worker_nodes}
    study, storage = write(tmp_path, "nodes"), tmp_path / "runs"
    run_dir = storage / "nodes"
    process = driver(study, storage, c.address)
    victim, deadline = None, time.time() + 600
    while victim is None and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
        seen = rows(run_dir)
        done = {tid for tid, s in states(run_dir).items() if s.get("status") == "finished"}
        if {r["node_id"] for r in seen} != workers:
            continue   # both worker nodes have reported: the trials spread over them
        mid = [r for r in seen if r["trial_id"] not in done and 50 <= r["step"] < STEPS - 25]
        if mid:
            victim = mid[-1]
    assert victim is not None, end(process, 5)
    c.remove_node(node_of(c, victim["node_id"]), allow_graceful=False)   # the node dies with its trial
    code, out, err = end(process)
    assert code == 0, out + err
    last = [line for line in out.splitlines() if line.startswith("finished after")]
    assert last and last[-1].endswith(": 6 finished, 0 stopped early, 0 failed, 0 not run")
    assert "Traceback" not in out + err and "\x1b[" not in out + err   # Ray's "(raylet) node marked dead": ray.log
    records = pd.DataFrame(rows(run_dir))
    assert not records.duplicated(["trial_id", "step"]).any()              # 0 duplicated
    assert records.groupby("trial_id")["step"].apply(sorted).apply(         # 0 lost
        lambda s: s == list(range(25, STEPS + 1, 25))).all() and records["trial_id"].nunique() == 6
    assert set(records["node_id"]) == workers                               # the records name both nodes
    mine = records[records["trial_id"] == victim["trial_id"]].sort_values("step")
    later = mine[mine["step"] > victim["step"]]
    assert set(later["node_id"]) == workers - {victim["node_id"]}          # continued on the other node
    assert later["retry_from_step"].min() >= 50                             # from its checkpoint, not from 0
    trials = pd.read_csv(run_dir / "trials.csv").set_index("trial_id")
    assert trials.loc[victim["trial_id"], "failures"] >= 1 and set(trials["status"]) == {"finished"}


def test_a_lost_head_ends_the_run_in_one_line_and_resume_on_a_new_cluster_keeps_every_finished_trial(
        tmp_path, cluster):
    c = cluster(workers=1, head_cpus=1)
    study, storage = write(tmp_path, "headloss"), tmp_path / "runs"
    run_dir = storage / "headloss"
    process = driver(study, storage, c.address)
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:   # some trials finished, others not
        if sum(s.get("status") == "finished" for s in states(run_dir).values()) >= 2:
            break
        time.sleep(0.2)
    c.remove_node(c.head_node, allow_graceful=False)    # the head (its GCS) is gone; the worker node is cut off
    lost_at = time.time()
    code, out, err = end(process, timeout=300)
    assert code == 1, out + err
    errors = [line for line in err.splitlines() if line.startswith("arml: error:")]
    assert len(errors) == 1 and "has not answered" in errors[0] and "--resume" in errors[0], err
    assert "Traceback" not in out + err and time.time() - lost_at < 120
    kept = {tid for tid, s in states(run_dir).items() if s.get("status") == "finished"}
    assert 2 <= len(kept) < 6
    before = [r for r in rows(run_dir) if r["trial_id"] in kept]

    again = cluster(workers=1, head_cpus=1)    # the cluster started again: new ports, new node ids
    code, out, err = end(driver(study, storage, again.address, "--resume"))
    assert code == 0, out + err
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 6 and set(trials["status"]) == {"finished"}
    after = [r for r in rows(run_dir) if r["trial_id"] in kept]
    assert after == before                                       # every finished trial kept, never trained again
    records = pd.DataFrame(rows(run_dir))
    assert not records.duplicated(["trial_id", "step"]).any()
    assert records.groupby("trial_id")["step"].apply(sorted).apply(lambda s: s == list(range(25, STEPS + 1, 25))).all()


def test_a_node_whose_checkpoints_vanish_with_it_fails_its_trial_and_resume_trains_it_again(tmp_path, cluster):
    """Storage the nodes do not share, as when a node's local disk goes with it: the lost node's trial cannot
    continue elsewhere (its checkpoints are gone), fails after its retries while the others finish (exit 1, one
    line), and --resume trains it again from the start."""
    import shutil

    c = cluster(workers=2)
    study, storage = write(tmp_path, "vanish"), tmp_path / "runs"
    run_dir = storage / "vanish"
    process = driver(study, storage, c.address)
    victim, deadline = None, time.time() + 600
    while victim is None and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
        done = {tid for tid, s in states(run_dir).items() if s.get("status") == "finished"}
        mid = [r for r in rows(run_dir) if r["trial_id"] not in done and 50 <= r["step"] < STEPS - 25]
        victim = mid[-1] if mid else None
    assert victim is not None, end(process, 5)
    trial_dir = run_dir / Path(victim["checkpoint"]).parent
    for folder in trial_dir.glob("checkpoint_*"):
        shutil.rmtree(folder)                                  # the node's local checkpoints, gone with it
    c.remove_node(node_of(c, victim["node_id"]), allow_graceful=False)
    code, out, err = end(process)
    assert code == 1 and "Traceback" not in out + err, out + err
    trials = pd.read_csv(run_dir / "trials.csv").set_index("trial_id")
    assert trials.loc[victim["trial_id"], "status"] == "failed"
    assert "does not exist on storage anymore" in trials.loc[victim["trial_id"], "error"]
    assert (trials.drop(victim["trial_id"])["status"] == "finished").all()

    code, out, err = end(driver(study, storage, c.address, "--resume"))
    assert code == 0, out + err
    trials = pd.read_csv(run_dir / "trials.csv")
    assert set(trials["status"]) == {"finished"}
    mine = pd.DataFrame(rows(run_dir)).query("trial_id == @victim['trial_id']")
    assert mine["retry_from_step"].max() == 0                 # trained again from the start
    records = pd.read_parquet(run_dir / "records.parquet")    # the export keeps each step's last report
    assert not records.duplicated(["trial_id", "step"]).any()

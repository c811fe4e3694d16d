"""Faults for real: the driver killed with SIGKILL and resumed, an existing Ray cluster joined with
--address, an unreachable MLflow server, and credentials that never reach the outputs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from studyfiles import mlc_head, uniform_vs_arml

pytestmark = pytest.mark.integration   # starts a real Ray (and MLflow)

ARML = [sys.executable, "-m", "orchestrator.cli"]
def write(tmp_path: Path, name: str, steps: int = 400) -> str:
    return str(uniform_vs_arml(tmp_path, name, steps=steps))


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*ARML, *args], capture_output=True, text=True, timeout=600, **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def states(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "trials.json").read_text())
    except (OSError, ValueError):
        return {}


@pytest.mark.slow   # a long fault scenario: make test-slow
def test_killed_driver_resumes_only_unfinished_trials_and_nothing_is_twice(tmp_path):
    study, storage = write(tmp_path, "crash"), str(tmp_path / "runs")
    run_dir = tmp_path / "runs" / "crash"
    driver = subprocess.Popen([*ARML, "run", study, "--storage", storage], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once some trials finished and others have not
        finished = [s for s in states(run_dir).values() if s.get("status") == "finished"]
        if len(finished) >= 2:
            break
        time.sleep(0.2)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    before = {tid for tid, s in states(run_dir).items() if s.get("status") == "finished"}
    assert 2 <= len(before) < 6, "the kill should land in the middle of the study"

    resumed = run(["run", study, "--storage", storage, "--resume"])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "6/6 done" in resumed.stdout
    records = pd.read_parquet(run_dir / "records.parquet")
    assert not records.duplicated(["trial_id", "step"]).any()
    assert records.groupby("trial_id")["step"].apply(list).apply(lambda s: s == list(range(50, 401, 50))).all()
    assert records["trial_id"].nunique() == 6
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 6 and set(trials["status"]) == {"finished"} and trials["trial_id"].is_unique

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("crash").experiment_id])
    children = [r for r in runs if r.data.tags.get("arml_role") == "trial"]
    assert len([r for r in runs if r.data.tags.get("arml_role") == "study"]) == 1
    assert sorted(c.data.tags["trial_id"] for c in children) == sorted(trials["trial_id"])
    for child in children:
        assert child.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_acc")]
        assert sorted(steps) == list(range(50, 401, 50)), child.data.tags["trial_id"]


@pytest.fixture
def head_node():
    """A real Ray head node on loopback in its own process, ended by its process id."""
    port = free_port()
    head = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "ray"), "start", "--head", "--port", str(port),
         "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--include-dashboard=false",
         "--disable-usage-stats", "--block"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    address = f"127.0.0.1:{port}"
    probe = (f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
             "print(ray.get_runtime_context().get_node_id())")
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    node_id = ""
    for _ in range(60):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
        if out.returncode == 0:
            node_id = out.stdout.strip().splitlines()[-1]
            break
        time.sleep(1)
    try:
        assert node_id, "the head node did not come up"
        yield address, node_id
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)


@pytest.mark.slow   # a long fault scenario: make test-slow
def test_study_runs_on_an_existing_cluster_without_starting_its_own(tmp_path, head_node):
    address, node_id = head_node
    study = write(tmp_path, "cluster", steps=50)
    out = run(["run", study, "--storage", str(tmp_path / "runs"), "--address", address])
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Ray: joined the cluster at {address}" in out.stdout
    assert "started a local Ray" not in out.stdout
    records = pd.read_csv(tmp_path / "runs" / "cluster" / "records.csv")
    assert set(records["node_id"]) == {node_id} and records["trial_id"].nunique() == 6


@pytest.mark.slow
def test_unreachable_mlflow_keeps_the_study_and_credentials_stay_out_of_every_output(tmp_path):
    study = write(tmp_path, "offline", steps=50)
    secret_password, secret_token = "planted-pw-6f1e", "planted-token-93ab"
    uri = f"http://someone:{secret_password}@127.0.0.1:{free_port()}"
    env = {**os.environ, "MLFLOW_TRACKING_TOKEN": secret_token}
    out = run(["run", study, "--storage", str(tmp_path / "runs"), "--mlflow-uri", uri], env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "MLflow logging failed" in out.stdout and "--log-mlflow" in out.stdout
    run_dir = tmp_path / "runs" / "offline"
    assert pd.read_csv(run_dir / "trials.csv")["status"].eq("finished").sum() == 6
    for secret in (secret_password, secret_token):
        assert secret not in out.stdout + out.stderr
        for path in run_dir.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


@pytest.mark.slow   # a long fault scenario: make test-slow
def test_killed_trial_worker_is_retried_from_its_checkpoint(tmp_path):
    study, storage = write(tmp_path, "workerkill", steps=800), str(tmp_path / "runs")
    run_dir = tmp_path / "runs" / "workerkill"
    driver = subprocess.Popen([*ARML, "run", study, "--storage", storage], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    victim, deadline = None, time.time() + 300
    while victim is None and time.time() < deadline:  # a trial past its second checkpoint, not yet done
        time.sleep(0.2)
        try:
            rows = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines() if line]
        except (OSError, ValueError):
            continue
        done = {tid for tid, s in states(run_dir).items() if s.get("status") == "finished"}
        running = [r for r in rows if r["trial_id"] not in done and 100 <= r["step"] < 600]
        if running:
            victim = running[-1]
    assert victim is not None
    os.kill(int(victim["pid"]), signal.SIGKILL)
    out, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, out
    assert "retrying from its last checkpoint" in out
    trials = pd.read_csv(run_dir / "trials.csv").set_index("trial_id")
    assert set(trials["status"]) == {"finished"} and trials.loc[victim["trial_id"], "failures"] == 1
    records = pd.read_parquet(run_dir / "records.parquet")
    mine = records[records["trial_id"] == victim["trial_id"]]
    assert list(mine["step"]) == list(range(50, 801, 50))        # every evaluation once
    assert mine["retry_from_step"].max() >= 50                   # continued from a checkpoint, not from 0


@pytest.mark.slow
def test_killed_data_parallel_worker_is_retried_from_its_checkpoint_and_keeps_its_cost(tmp_path):
    path = uniform_vs_arml(tmp_path, "ddpkill", steps=600, seeds=(0,),
                           extra="[resources]\ncpus_per_trial = 2\nworkers_per_trial = 2\n")
    path.write_text(path.read_text().replace("[methods.uniform]\n", ""))
    run_dir = tmp_path / "runs" / "ddpkill"
    driver = subprocess.Popen([*ARML, "run", str(path), "--storage", str(tmp_path / "runs")], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    victim, deadline = None, time.time() + 400
    while victim is None and time.time() < deadline:   # rank 0 past its second checkpoint, not yet done
        time.sleep(0.2)
        try:
            rows = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines() if line]
        except (OSError, ValueError):
            continue
        running = [r for r in rows if 100 <= r["step"] < 450]
        if running:
            victim = running[-1]
    assert victim is not None, driver.communicate(timeout=60)[0] if driver.poll() is not None else "no records"
    os.kill(int(victim["worker_pid"]), signal.SIGKILL)
    out, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, out
    assert "retrying from its last checkpoint" in out
    trials = pd.read_csv(run_dir / "trials.csv")
    assert list(trials["status"]) == ["finished"] and trials["failures"].iloc[0] == 1
    records = pd.read_parquet(run_dir / "records.parquet")
    assert list(records["step"]) == list(range(50, 601, 50))    # every evaluation once, none repeated
    assert records["retry_from_step"].max() >= 100               # the retry continued from a checkpoint
    resumed = records[records["retry_from_step"] > 0].iloc[0]
    before = records[records["step"] == resumed["retry_from_step"]].iloc[0]
    assert resumed["cpu_s"] > before["cpu_s"] and resumed["wall_s"] > before["wall_s"]   # the cost went on
    assert trials["cpu_s"].iloc[0] >= records["cpu_s"].max() - 1e-6


SEARCH_METHODS = """
[methods.tpe]
weighting = "search"
num_samples = 10
"""


@pytest.mark.slow
def test_a_killed_search_resumes_with_its_sampler_and_samples_each_trial_once(tmp_path):
    study = tmp_path / "search.toml"
    study.write_text(mlc_head("search", steps=100, eval_every=20) + SEARCH_METHODS)
    storage, run_dir = str(tmp_path / "runs"), tmp_path / "runs" / "search"
    driver = subprocess.Popen([*ARML, "run", str(study), "--storage", storage], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and sum(s.get("status") == "finished" for s in states(run_dir).values()) < 3:
        time.sleep(0.2)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    before = {tid: s.get("weights") for tid, s in states(run_dir).items() if s.get("status") == "finished"}
    assert 3 <= len(before) < 10

    resumed = run(["run", str(study), "--storage", storage, "--resume"])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 10 and set(trials["status"]) == {"finished"}
    weights = {tid: json.loads(p) for tid, p in zip(trials["trial_id"], trials["grid_point"])}
    assert all(weights[tid] == w for tid, w in before.items())      # finished samples kept, not redrawn
    assert len({tuple(w) for w in weights.values()}) == 10
    records = pd.read_parquet(run_dir / "records.parquet")
    assert not records.duplicated(["trial_id", "step"]).any() and records["trial_id"].nunique() == 10

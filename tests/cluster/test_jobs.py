"""A study as a Ray job: `arml run` joins $RAY_ADDRESS, `arml submit` / `status` / `logs` / `stop` and `--resume`,
first piece by piece (no Ray), then for real against a head started here with its job server on 127.0.0.1 (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from studyfiles import uniform_vs_arml

from orchestrator.cli import main
from orchestrator.errors import UsageError
from orchestrator.run import jobs
from orchestrator.run.session import cluster_address
from orchestrator.store.folder import RunFolder

ARML = [sys.executable, "-m", "orchestrator.cli"]
# ---- piece by piece ----------------------------------------------------------------------------------------
def test_run_joins_ray_address_and_refuses_a_job_server_url(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster_address(None) is None
    assert cluster_address("head:6379") == "head:6379"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")    # what Ray sets for a job's driver
    assert cluster_address(None) == "10.0.0.1:6379"
    assert cluster_address("other:6379") == "other:6379"   # --address wins
    monkeypatch.setenv("RAY_ADDRESS", "http://10.0.0.1:8265")
    with pytest.raises(UsageError, match="arml submit"):
        cluster_address(None)


def test_run_inside_a_job_hands_the_cluster_to_the_runner(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("orchestrator.api.run_plan", lambda plan, options: seen.setdefault("options", options) and 0)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert main(["run", "quickstart", "--storage", str(tmp_path)]) == 0
    assert seen["options"].address == "127.0.0.1:6379"


def test_job_server_address():
    assert jobs.job_server("http://head:8265/") == "http://head:8265"
    assert jobs.job_server("head:8265") == "http://head:8265"
    for bad in ("auto", "ray://head:10001"):
        with pytest.raises(UsageError):
            jobs.job_server(bad)


def test_submit_without_a_job_server_is_one_line_exit_2(monkeypatch, capsys):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main(["submit", "quickstart"]) == 2
    assert "--address http://HEAD:8265" in capsys.readouterr().err
    assert main(["submit", "quickstart", "--address", "http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Ray job server answers at http://127.0.0.1:1" in err


def test_the_job_runs_arml_run_with_every_option_quoted():
    submission = jobs.Submission("/x/my study.toml", settings=("budget.labels=[20, 40]",), resume=True, smoke=True,
                                 max_seeds=4, until_decided=True)
    command = jobs.entrypoint(submission, "/shared/runs", "/shared/data")
    assert command == ("arml run 'my study.toml' --storage /shared/runs --set 'budget.labels=[20, 40]' --data-root "
                       "/shared/data --max-seeds 4 --resume --until-decided --smoke")


def test_the_run_folder_keeps_each_job(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.job() == {}
    folder.save_job({"job_id": "a"})
    folder.save_job({"job_id": "b"})
    assert folder.job()["job_id"] == "b" and [j["job_id"] for j in folder.job()["previous"]] == ["a"]


def test_logs_and_stop_of_a_folder_that_was_not_submitted(tmp_path, capsys):
    for command in ("logs", "stop"):
        assert main([command, str(tmp_path)]) == 2
        assert "was not submitted as a Ray job" in capsys.readouterr().err


def test_status_shows_the_job_beside_the_trials(tmp_path, monkeypatch, capsys):
    from runfolders import write_run  # a finished run folder, no training

    run_dir = write_run(tmp_path / "paired", {"uniform": [0.8, 0.7], "arml": [0.9, 0.8]})
    RunFolder(run_dir).save_job({"job_id": "arml-x-1", "address": "http://127.0.0.1:1"})
    assert main(["status", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "Ray job arml-x-1 at http://127.0.0.1:1: UNKNOWN" in out and "finished" in out
    assert main(["status", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ray_job"]["status"] == "UNKNOWN"


# ---- for real: a head with its job server -------------------------------------------------------------------
def arml(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    from clusters import arml_env

    return subprocess.run([*ARML, *args], capture_output=True, text=True, timeout=timeout, env=arml_env())


def job_status(run_dir: Path) -> str:
    out = arml("status", str(run_dir), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["ray_job"]["status"]


def finished(run_dir: Path) -> int:
    try:
        states = json.loads((run_dir / "trials.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(s.get("status") == "finished" for s in states.values())


@pytest.mark.slow   # a real head with the dashboard and two jobs: a few minutes on 2 CPUs
def test_submit_status_logs_stop_and_resume_as_ray_jobs(tmp_path):
    from clusters import ray_head

    study, storage = uniform_vs_arml(tmp_path, "jobs"), tmp_path / "runs"
    run_dir = storage / "jobs"
    with ray_head(num_cpus=2, dashboard=True) as head:
        out = arml("submit", str(study), "--storage", str(storage), "--address", head.job_server)
        assert out.returncode == 0, out.stdout + out.stderr
        job_id = RunFolder(run_dir).job()["job_id"]
        assert f"submitted Ray job {job_id} to {head.job_server}" in out.stdout and out.stderr == ""
        deadline = time.time() + 400
        while finished(run_dir) < 1 and time.time() < deadline:   # stop it with trials finished and others not
            time.sleep(1)
        assert 1 <= finished(run_dir) < 6
        status = arml("status", str(run_dir))
        assert f"Ray job {job_id} at {head.job_server}: RUNNING" in status.stdout
        logs = arml("logs", str(run_dir)).stdout
        port = head.address.rpartition(":")[2]
        assert "Ray: joined the cluster at " in logs and f":{port} (1 node, 2 CPUs)" in logs   # $RAY_ADDRESS
        assert "starting a local Ray" not in logs

        stopped = arml("stop", str(run_dir))
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "STOPPED" in stopped.stdout and "--resume" in stopped.stdout
        logs = arml("logs", str(run_dir)).stdout
        assert "stopped by SIGTERM" in logs and "Traceback" not in logs   # as under SIGTERM anywhere: exit 143
        trials = pd.read_csv(run_dir / "trials.csv")          # the records were exported before the job ended
        kept = set(trials.loc[trials["status"] == "finished", "trial_id"])
        assert kept and (trials["status"] != "finished").any()

        again = arml("submit", str(study), "--storage", str(storage), "--address", head.job_server, "--resume")
        assert again.returncode == 0, again.stdout + again.stderr
        assert RunFolder(run_dir).job()["previous"][0]["job_id"] == job_id
        deadline = time.time() + 600
        while (state := job_status(run_dir)) not in jobs.TERMINAL and time.time() < deadline:
            time.sleep(2)
        assert state == "SUCCEEDED", arml("logs", str(run_dir)).stdout[-3000:]
        followed = arml("logs", str(run_dir), "--follow")   # an ended job: its whole output, then its state
        assert followed.returncode == 0 and "SUCCEEDED" in followed.stdout
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 6 and set(trials["status"]) == {"finished"}
    rows = pd.DataFrame([json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines() if line])
    assert not rows.duplicated(["trial_id", "step"]).any()          # every evaluation recorded once, over two jobs
    assert rows.groupby("trial_id")["step"].apply(sorted).apply(lambda s: s == list(range(50, 401, 50))).all()

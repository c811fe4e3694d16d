"""Faults found by trying to break `arml run`, each with the outcome a user sees: a run folder resumed through
another path, a password in the tracking URI, a run killed before any trial started, an interrupted study, two
runs on one folder, an untrusted folder, a storage path that is a file or fills up, deterministic failures that
must not be retried, and a file:// storage URI."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
from local_ray import start_ray
from studyfiles import tiny_study

import orchestrator.run.callback as callback
import orchestrator.store.records as records
from orchestrator.cli import main
from orchestrator.store.folder import RunFolder

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.integration

@pytest.fixture(autouse=True)
def _ray(local_ray):
    """Every test here runs studies in this process on the shared local Ray."""


def driver_died() -> None:
    """A killed driver takes its Ray actors with it; an interrupt simulated in this process does not, so the
    test's Ray is restarted to free the interrupted trial's CPU."""
    ray.shutdown()
    start_ray()


def study_file(tmp_path, name: str, extra: str = "") -> str:
    """The shared tiny study, one trial at a time (`extra` continues its [resources] table)."""
    return tiny_study(tmp_path, name, extra="[resources]\nmax_concurrent = 1\n" + textwrap.dedent(extra))


def interrupt_after(monkeypatch, completions: int) -> None:
    """The driver 'dies' (KeyboardInterrupt) after `completions` trials completed."""
    real = callback.StudyCallback.on_trial_complete
    seen = {"n": 0}

    def complete(self, *args, **kwargs):
        real(self, *args, **kwargs)
        seen["n"] += 1
        if seen["n"] >= completions:
            raise KeyboardInterrupt

    monkeypatch.setattr(callback.StudyCallback, "on_trial_complete", complete)


def all_once(run_dir, n: int) -> pd.DataFrame:
    rows = pd.read_parquet(run_dir / "records.parquet")
    assert not rows.duplicated(["trial_id", "step"]).any() and rows["trial_id"].nunique() == n
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == n and set(trials["status"]) == {"finished"}
    return trials


def mlflow_runs(run_dir, name: str) -> tuple[list, list]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    return ([r for r in runs if r.data.tags.get("arml_role") == "study"],
            [r for r in runs if r.data.tags.get("arml_role") == "trial"])


@pytest.mark.slow
def test_resume_through_a_copied_folder_writes_there_and_keeps_one_parent(tmp_path, monkeypatch):
    study = study_file(tmp_path, "moved")
    interrupt_after(monkeypatch, 2)
    assert main(["run", study, "--storage", str(tmp_path / "A")]) == 130
    monkeypatch.undo()
    driver_died()
    shutil.copytree(tmp_path / "A", tmp_path / "B", symlinks=True)
    before = (tmp_path / "A" / "moved" / "records.jsonl").read_text()
    assert main(["run", study, "--storage", str(tmp_path / "B"), "--resume"]) == 0
    assert (tmp_path / "A" / "moved" / "records.jsonl").read_text() == before      # A untouched
    all_once(tmp_path / "B" / "moved", 6)
    parents, children = mlflow_runs(tmp_path / "B" / "moved", "moved")
    assert len(parents) == 1 and len(children) == 6
    assert {c.info.run_name for c in children} >= {"uniform s0", "arml s2"}


def test_a_password_in_the_tracking_uri_is_never_printed(tmp_path, monkeypatch, capsys):
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    study = study_file(tmp_path, "secret")
    uri = "http://alice:S3cretPW@127.0.0.1:9/"   # nothing listens on port 9: logging turns itself off
    assert main(["run", study, "--storage", str(tmp_path / "runs"), "--mlflow-uri", uri]) == 0
    out = capsys.readouterr()
    assert "S3cretPW" not in out.out + out.err
    assert "MLflow logging failed" in out.out
    for path in (tmp_path / "runs" / "secret").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".csv", ".md", ".toml"):
            assert "S3cretPW" not in path.read_text(errors="ignore"), path
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "S3cretPW"   # handed to MLflow, out of the URI


@pytest.mark.slow
def test_killed_before_any_trial_started_can_restart_and_resume(tmp_path, monkeypatch):
    study = study_file(tmp_path, "early")

    def die(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(callback.StudyCallback, "on_trial_start", die)
    assert main(["run", study, "--storage", str(tmp_path / "runs")]) == 130
    monkeypatch.undo()
    driver_died()
    assert main(["run", study, "--storage", str(tmp_path / "runs")]) == 0       # a plain run is not refused
    all_once(tmp_path / "runs" / "early", 6)

    monkeypatch.setattr(callback.StudyCallback, "on_trial_start", die)
    assert main(["run", study, "--storage", str(tmp_path / "again")]) == 130
    monkeypatch.undo()
    driver_died()
    assert main(["run", study, "--storage", str(tmp_path / "again"), "--resume"]) == 0
    all_once(tmp_path / "again" / "early", 6)


def test_a_second_run_on_the_same_folder_is_refused_while_one_runs(tmp_path, capsys):
    study = study_file(tmp_path, "locked")
    folder = tmp_path / "runs" / "locked"
    folder.mkdir(parents=True)
    held = RunFolder(str(folder)).lock()
    try:
        assert main(["run", study, "--storage", str(tmp_path / "runs")]) == 2
        err = capsys.readouterr().err
        assert "is being run right now" in err and f"pid {os.getpid()}" in err and err.count("\n") == 1
    finally:
        held.close()
    assert main(["run", study, "--storage", str(tmp_path / "runs")]) == 0


@pytest.mark.slow
def test_resume_refuses_a_folder_others_can_write(tmp_path, monkeypatch, capsys):
    study = study_file(tmp_path, "trust")
    interrupt_after(monkeypatch, 1)
    assert main(["run", study, "--storage", str(tmp_path / "runs")]) == 130
    monkeypatch.undo()
    driver_died()
    experiment = tmp_path / "runs" / "trust"
    experiment.chmod(0o777)
    assert main(["run", study, "--storage", str(tmp_path / "runs"), "--resume"]) == 2
    assert "refusing to resume" in capsys.readouterr().err
    experiment.chmod(0o755)
    assert main(["run", study, "--storage", str(tmp_path / "runs"), "--resume"]) == 0


@pytest.mark.slow
def test_storage_that_is_a_file_or_fills_up_ends_in_one_line(tmp_path, monkeypatch, capsys):
    study = study_file(tmp_path, "disk")
    (tmp_path / "afile").write_text("x")
    assert main(["run", study, "--storage", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "Traceback" not in err and err.count("\n") == 1

    real, seen = records.RecordBook.row, {"n": 0}

    def full(self, trial_id, metrics):
        seen["n"] += 1
        if seen["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, trial_id, metrics)

    monkeypatch.setattr(records.RecordBook, "row", full)
    assert main(["run", study, "--storage", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "--resume" in err and "Traceback" not in err
    monkeypatch.undo()
    driver_died()
    kept = [json.loads(line) for line in (tmp_path / "runs" / "disk" / "records.jsonl").read_text().splitlines()]
    assert len(kept) == 3                                  # what was written before the fault is intact
    assert main(["run", study, "--storage", str(tmp_path / "runs"), "--resume"]) == 0
    all_once(tmp_path / "runs" / "disk", 6)


def test_deterministic_failures_are_not_retried(tmp_path, capsys):
    # weights of 1e39 overflow the loss: it diverges at every attempt, the same way
    study = study_file(tmp_path, "bad", """
        max_failures = 3
        [methods.huge]
        weighting = "fixed"
        weights = [1e39, 1e39]
        """)   # max_failures continues STUDY's [resources] table
    assert main(["run", study, "--storage", str(tmp_path / "runs")]) == 1
    trials = pd.read_csv(tmp_path / "runs" / "bad" / "trials.csv")
    failed = trials[trials["method"] == "huge"]
    assert set(failed["status"]) == {"failed"} and (failed["failures"] == 0).all()
    assert failed["error"].str.contains("DivergenceError").all()
    assert (failed["cpu_s"] > 0).all()                      # a failed trial's cost is counted too
    assert set(trials.loc[trials["method"] != "huge", "status"]) == {"finished"}
    assert "retrying" not in capsys.readouterr().out


def test_a_file_uri_storage_keeps_everything_there(tmp_path, monkeypatch):
    study = study_file(tmp_path, "uri")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert main(["run", study, "--storage", f"file://{tmp_path / 'store'}"]) == 0
    all_once(tmp_path / "store" / "uri", 6)
    assert not (cwd / "runs").exists() and not (cwd / "mlruns").exists()


@pytest.mark.slow
def test_ctrl_c_ends_with_a_non_zero_code_and_a_killed_parent_run(tmp_path):
    study = study_file(tmp_path, "sigint").replace("steps = 4", "steps = 400")
    path = tmp_path / "sigint.toml"
    path.write_text(open(study).read().replace("steps = 4\n", "steps = 400\n"))
    process = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(path), "--storage",
                                str(tmp_path / "runs")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rows = tmp_path / "runs" / "sigint" / "records.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (rows.exists() and rows.stat().st_size):
        time.sleep(0.5)
    process.send_signal(2)
    out, _ = process.communicate(timeout=180)
    assert process.returncode != 0, out
    parents, _ = mlflow_runs(tmp_path / "runs" / "sigint", "sigint")
    assert parents[0].info.status != "FINISHED"


def test_ctrl_c_during_the_report_stops_it_and_marks_the_study(tmp_path, monkeypatch, capsys):
    """Tune leaves its own SIGINT handler installed after a study: a Ctrl-C during the report must still stop
    it (exit 130), with the tables exported and MLflow's statuses as the records say: every trial finished, so the
    study's run is FINISHED (the signal stopped only the report, which `arml report` writes again)."""
    import signal

    study = study_file(tmp_path, "late")

    def ctrl_c_in_report(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)            # swallowed by a stale handler: the report would then go on
        raise AssertionError("the Ctrl-C was ignored")

    import orchestrator.report.build as build

    monkeypatch.setattr(build, "_make_report", ctrl_c_in_report)   # what `arml run` and `arml report` both call
    assert main(["run", study, "--storage", str(tmp_path / "runs")]) == 130
    out = capsys.readouterr().out
    assert "report: interrupted" in out and "stopped by SIGINT" in out
    run_dir = tmp_path / "runs" / "late"
    assert (run_dir / "trials.csv").exists() and (run_dir / "records.parquet").exists()
    parents, children = mlflow_runs(run_dir, "late")
    assert parents[0].info.status == "FINISHED" and {c.info.status for c in children} == {"FINISHED"}
    assert not (run_dir / "report" / "results.md").exists()   # the report stopped before writing it


def test_a_full_disk_under_ray_log_prints_no_logging_traceback(tmp_path, capsys):
    import logging

    from orchestrator.run.progress import quiet_ray

    quiet_ray(str(tmp_path))
    handler = next(h for h in logging.getLogger("ray.tune").handlers if getattr(h, "arml_run_log", False))

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    handler.stream.write = full
    logging.getLogger("ray.tune").warning("a message Tune logs while the disk is full")
    assert "Logging error" not in capsys.readouterr().err

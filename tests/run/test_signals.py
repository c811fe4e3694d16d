"""Ctrl-C and SIGTERM stop a study the same way (orchestrator/run/signals.py), and a study killed, resumed,
terminated and resumed again ends complete: every trial once, the right exit codes, the MLflow runs closed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.run.signals import Interrupts


def test_sigterm_outside_tune_stops_like_ctrl_c_with_its_own_exit_code():
    interrupts = Interrupts()
    interrupts.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        assert interrupts.received == "SIGTERM" and interrupts.exit_code == 143
    finally:
        interrupts.uninstall()


def test_while_tune_runs_both_signals_reach_its_graceful_stop_and_ours_come_back():
    interrupts = Interrupts()
    interrupts.install()
    calls = []
    try:
        ours = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))   # what Tune installs in fit()
        interrupts.during_tune()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        assert calls == [signal.SIGINT] and interrupts.received == "SIGTERM"
        interrupts.after_tune()   # Tune left its handler installed: a later Ctrl-C must not be swallowed
        assert signal.getsignal(signal.SIGINT) == ours
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    finally:
        interrupts.uninstall()


ARML = [sys.executable, "-m", "orchestrator.cli"]


def _finished(run_dir: Path) -> int:
    try:
        return sum(s.get("status") == "finished" for s in json.loads((run_dir / "trials.json").read_text()).values())
    except (OSError, ValueError):
        return 0


@pytest.mark.slow
@pytest.mark.integration
def test_killed_resumed_terminated_and_resumed_again_ends_complete(tmp_path):
    """kill -9 of the driver's process group after one trial, --resume, SIGTERM at about 7 of 10, --resume: the
    last run finishes with exit 0, every trial trained once, trials.csv and MLflow all finished."""
    storage, run_dir = tmp_path / "runs", tmp_path / "runs" / "quickstart"
    args = [*ARML, "run", "quickstart", "--set", "train.steps=60", "--set", "budget.labels=[20]",
            "--set", "study.seeds=[0]", "--storage", str(storage)]

    def start(*extra: str) -> subprocess.Popen:
        return subprocess.Popen([*args, *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)

    def wait_for(process: subprocess.Popen, n: int) -> None:
        deadline = time.time() + 300
        while _finished(run_dir) < n and process.poll() is None and time.time() < deadline:
            time.sleep(0.1)

    first = start()
    wait_for(first, 1)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate()
    time.sleep(2)
    second = start("--resume")
    wait_for(second, 7)
    second.send_signal(signal.SIGTERM)
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 143, out
    assert "stopped by SIGTERM" in out and "Traceback" not in out and "SIGTERM received" not in out
    assert (run_dir / "trials.csv").exists()
    states = json.loads((run_dir / "trials.json").read_text())
    assert "running" not in {s["status"] for s in states.values()}

    third = start("--resume")
    out, _ = third.communicate(timeout=600)
    assert third.returncode == 0, out
    assert "finished after" in out and "10 finished" in out
    rows = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines() if line.strip()]
    repeats = Counter((r["trial_id"], r["step"]) for r in rows)
    assert max(repeats.values()) == 1, "a trial was trained twice"
    import pandas as pd

    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 10 and set(trials["status"]) == {"finished"}
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    assert {r.info.status for r in runs} == {"FINISHED"} and len(runs) == 11

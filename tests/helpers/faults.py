"""The fault matrix's driver: `arml run` on the 10-trial quickstart shape in a process group of its own, a signal
sent at a chosen moment (to the driver, or to its whole process group as `timeout` and batch schedulers do), and
what a user is promised afterwards, checked: the documented exit code, one line and no traceback, the records
exported, MLflow's statuses as the records say, no Ray process left behind, and a `--resume` that ends with every
trial finished and every evaluation row exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.run import reaper

ARML = [sys.executable, "-m", "orchestrator.cli"]
STEPS, EVAL_EVERY = 60, 20
SHAPE = ["quickstart", "--set", f"train.steps={STEPS}", "--set", f"train.eval_every={EVAL_EVERY}",
         "--set", "budget.labels=[20]", "--set", "study.seeds=[0]"]
TRIALS = 10
# where the driver waits for the signal ($ARML_PAUSE_AT); the other moments are found by watching it
PAUSED = ("before_ray", "export", "report", "summary")
SIGNALS = {"SIGINT": (signal.SIGINT, False, 130), "SIGTERM": (signal.SIGTERM, False, 143),
           "group SIGTERM": (signal.SIGTERM, True, 143)}
PHASES = ("before_ray", "ray_init", "trials", "export", "report", "summary")
# a moment inside ray.init: the raylet is up and the driver is registering with it, in Ray's native code (where a
# signal that also ended the raylet once left the driver stuck until Ray's own timeout)
STARTING = ("before_ray", "ray_init", "ray_native")


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    left: list[int] = field(default_factory=list)   # processes of the run still alive 15 s after it ended
    took: float = 0.0   # seconds from the signal to the driver's exit


class Watched:
    """A running `arml run`: its output as it comes, and every process ever seen below it."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                        start_new_session=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self.seen: dict[int, int] = {}
        self._threads = [threading.Thread(target=self._read, args=(self.process.stdout, self.out), daemon=True),
                         threading.Thread(target=self._read, args=(self.process.stderr, self.err), daemon=True),
                         threading.Thread(target=self._note, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    def _note(self) -> None:
        while self.process.poll() is None:
            for pid in reaper.descendants([self.process.pid]):
                if pid != self.process.pid and pid not in self.seen and (stat := reaper._stat(pid)) is not None:
                    self.seen[pid] = stat[1]
            time.sleep(0.1)

    def wait_for(self, test, timeout: float = 240) -> None:
        deadline = time.time() + timeout
        while not test() and self.process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert test(), f"the moment never came:\n{''.join(self.out)}\n{''.join(self.err)}"

    def finish(self, timeout: float = 180, since: float | None = None) -> Outcome:
        code = self.process.wait(timeout=timeout)
        took = time.time() - since if since is not None else 0.0
        for thread in self._threads:
            thread.join(timeout=10)
        deadline = time.time() + 15
        while time.time() < deadline:
            left = [pid for pid, started in self.seen.items()
                    if (stat := reaper._stat(pid)) is not None and stat[1] == started and not _zombie(pid)
                    and "reaper.py" not in _cmdline(pid)]
            if not left:
                break
            time.sleep(0.2)
        return Outcome(code, "".join(self.out), "".join(self.err), left, took)

    def started(self, program: str) -> bool:
        """Whether a process running `program` (e.g. "raylet") has been seen below the driver."""
        return any(_cmdline(pid).split(" ")[0].endswith(program) for pid in list(self.seen))


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def rows_recorded(run_dir: Path) -> int:
    try:
        return sum(1 for line in (run_dir / "records.jsonl").read_text().splitlines() if line.strip())
    except OSError:
        return 0


def stop_at(tmp_path: Path, which: str, phase: str) -> tuple[Outcome, Path]:
    """Runs the shape into tmp_path/runs, sends `which` (a key of SIGNALS) at `phase` (one of PHASES)."""
    storage = tmp_path / "runs"
    run_dir = storage / "quickstart"
    env = {**os.environ, "ARML_PAUSE_AT": phase if phase in PAUSED else "", "MLFLOW_TRACKING_URI": ""}
    run = Watched([*ARML, "run", *SHAPE, "--storage", str(storage)], env)
    if phase in PAUSED:
        run.wait_for(lambda: any(f"paused at {phase}" in line for line in run.err))
    elif phase == "ray_init":
        run.wait_for(lambda: any("Ray: starting" in line for line in run.out))
        time.sleep(1.0)   # ray.init takes several seconds here: the signal lands inside it
    elif phase == "ray_native":
        run.wait_for(lambda: run.started("raylet"))
        time.sleep(1.0)   # the driver is registering with the raylet, inside Ray's native code
    elif phase == "trials":
        run.wait_for(lambda: rows_recorded(run_dir) > 0)
    sig, group, _ = SIGNALS[which]
    signalled = time.time()
    if group:
        os.killpg(run.process.pid, sig)
    else:
        run.process.send_signal(sig)
    return run.finish(since=signalled), run_dir


def resume(tmp_path: Path) -> Outcome:
    """The same command again, with --resume when the stopped run had planned its trials (a run stopped before
    that recorded nothing: the same command without --resume starts it)."""
    storage = tmp_path / "runs"
    again = ["--resume"] if (storage / "quickstart" / "plan.json").exists() else []
    run = Watched([*ARML, "run", *SHAPE, "--storage", str(storage), *again],
                  {**os.environ, "ARML_PAUSE_AT": "", "MLFLOW_TRACKING_URI": ""})
    return run.finish(timeout=600)


def mlflow_statuses(run_dir: Path) -> tuple[str | None, dict[str, str]]:
    """(the parent run's status, each trial's child run status) in the run folder's sqlite store."""
    if not (run_dir / "mlflow.db").exists():
        return None, {}
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir}/mlflow.db")
    experiment = client.get_experiment_by_name("quickstart")
    if experiment is None:
        return None, {}
    parent, children = None, {}
    for run in client.search_runs([experiment.experiment_id]):
        if run.data.tags.get("arml_role") == "study":
            parent = run.info.status
        else:
            children[run.data.tags.get("trial_id")] = run.info.status
    return parent, children


WANTED = {"finished": "FINISHED", "failed": "FAILED", "stopped": "KILLED", "interrupted": "KILLED"}


def check_stopped(outcome: Outcome, run_dir: Path, which: str, phase: str) -> None:
    """What a stopped run promises."""
    _, _, code = SIGNALS[which]
    name = "SIGINT" if which == "SIGINT" else "SIGTERM"
    text = outcome.out + outcome.err
    assert outcome.code == code, text
    assert "Traceback" not in text and "\x1b[" not in text, text
    assert f"stopped by {name}" in text, text
    assert outcome.left == [], (outcome.left, [_cmdline(p) for p in outcome.left])
    if not (run_dir / "plan.json").exists():   # stopped before anything was planned
        return
    assert (run_dir / "records.parquet").exists() and (run_dir / "trials.csv").exists(), text
    states = json.loads((run_dir / "trials.json").read_text()) if (run_dir / "trials.json").exists() else {}
    assert not {"running", "retrying"} & {s["status"] for s in states.values()}, states
    report = run_dir / "report"
    for png in report.rglob("*.png") if report.exists() else []:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000, png
    assert not list(run_dir.rglob(".*.tmp*")), "a half-written file was left"
    parent, children = mlflow_statuses(run_dir)
    if parent is not None:
        import pandas as pd

        trials = pd.read_csv(run_dir / "trials.csv")
        ended = set(trials["status"]) <= {"finished", "failed", "stopped"}
        assert parent == ("FINISHED" if ended and "failed" not in set(trials["status"]) else
                          "FAILED" if ended else "KILLED"), (parent, trials["status"].tolist())
        for trial_id, status in zip(trials["trial_id"], trials["status"]):
            if trial_id in children:
                assert children[trial_id] == WANTED.get(status, "KILLED"), (trial_id, status, children[trial_id])


def check_resumed(outcome: Outcome, run_dir: Path) -> None:
    """A --resume after the stop: every trial finished, every evaluation row exactly once, MLflow all FINISHED."""
    import pandas as pd

    assert outcome.code == 0, outcome.out + outcome.err
    assert f"{TRIALS} finished" in outcome.out and "Traceback" not in outcome.out + outcome.err
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == TRIALS and set(trials["status"]) == {"finished"}
    records = pd.read_parquet(run_dir / "records.parquet")
    steps = sorted(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
    for trial_id, rows in records.groupby("trial_id"):
        assert sorted(rows["step"]) == steps, (trial_id, sorted(rows["step"]))
    assert records["trial_id"].nunique() == TRIALS
    for trial_id, best in zip(trials["trial_id"], trials["best_step"]):   # the chosen step has its row
        assert best in set(records.loc[records["trial_id"] == trial_id, "step"]), (trial_id, best)
    parent, children = mlflow_statuses(run_dir)
    assert parent == "FINISHED" and len(children) == TRIALS and set(children.values()) == {"FINISHED"}, children
    assert outcome.left == []

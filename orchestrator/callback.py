"""The driver-side Tune callback: records every report, mirrors it to MLflow, and prints progress.

Tune pickles its callbacks into the experiment state (`tuner.pkl`), so this one holds only plain
values until `setup()` opens the record book and the MLflow tracker; a restored study reopens them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from ray import tune

from orchestrator.progress import Progress
from orchestrator.records import RecordBook
from orchestrator.schema import BEST_VAL_ACC, COST_COLUMNS, STEP, TrialMeta, TrialStatus, read_plan
from orchestrator.tracking import Tracker
from orchestrator.trainable import FATAL


def _error_line(trial: Any) -> str:
    """The last line naming an error in the trial's error file (written locally before storage sync)."""
    text = ""
    try:
        path = trial.error_file
        if path and os.path.exists(path):
            with open(path) as f:
                text = f.read()
        if not text:
            text = str(trial.get_error() or "")
    except Exception:  # noqa: BLE001 - an unreadable error file still fails the trial, with less detail
        pass
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    named = [line for line in lines if "Error:" in line or "Error(" in line]
    if not lines:
        return "the trial failed (no error message was recorded)"
    return (named[-1] if named else lines[-1])[:500]


# The tracking URI of this `arml run` (it may hold credentials): set by the runner, never pickled into
# Tune's experiment state, so a resumed study uses the URI it is given then.
MLFLOW = {"uri": ""}
# The run folder of this `arml run`, set by the runner: a callback restored from Tune's state (pickled with the
# folder it had then) writes here, so a run folder copied, moved or mounted elsewhere resumes in place.
CURRENT = {"run_dir": ""}
# Storage errors (a full disk, a folder gone read-only) met while recording: Tune wraps a callback's exception
# in its own error, so the runner looks here to end the run with one clear line instead of Tune's traceback.
FAULTS: list[OSError] = []


def _recording(method: Callable[..., Any]) -> Callable[..., Any]:
    """Keeps an OSError raised while recording in FAULTS (then re-raises it: the run must stop)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except OSError as error:
            FAULTS.append(error)
            raise

    return wrapper


class StudyCallback(tune.Callback):
    """Records, MLflow and progress for one study (driver process only)."""

    def __init__(self, run_dir: str, study: str, plan_meta: list[TrialMeta],
                 progress_every_s: float = 30.0) -> None:
        self.run_dir, self.study, self.plan_meta = run_dir, study, plan_meta
        self.progress_every_s = progress_every_s
        self._live: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_live"] = {}
        return state

    # ---- lifecycle ----------------------------------------------------------------------------
    def setup(self, **info: Any) -> None:
        self._open()

    def _open(self) -> None:
        if self._live:
            return
        if CURRENT["run_dir"]:
            self.run_dir = CURRENT["run_dir"]
            self.plan_meta = read_plan(self.run_dir).trials
        book = RecordBook(self.run_dir, self.plan_meta)
        self._live = {"book": book, "tracker": Tracker(MLFLOW["uri"], self.study, self.run_dir, self.plan_meta),
                      "progress": Progress(len(self.plan_meta), every_s=self.progress_every_s)}

    @property
    def book(self) -> RecordBook:
        self._open()
        return self._live["book"]

    @property
    def tracker(self) -> Tracker:
        self._open()
        return self._live["tracker"]

    # ---- Tune events ----------------------------------------------------------------------------
    @_recording
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tid = trial.config["trial_id"]
        extra = {"weights": trial.config["weights"]} if trial.config.get("weights") is not None else {}
        self.book.set_state(tid, TrialStatus.RUNNING, failures=trial.num_failures, **extra)
        self.tracker.child(tid)

    @_recording
    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        tid = trial.config["trial_id"]
        if result.get(FATAL):   # a deterministic failure, reported instead of raised so that Tune never retries it
            return
        row = self.book.row(tid, {**result, "failures": trial.num_failures})
        self.tracker.log(tid, row)

    @_recording
    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tid = trial.config["trial_id"]
        self.book.set_state(tid, TrialStatus.RETRYING, failures=trial.num_failures, error=_error_line(trial))
        self._say(f"  trial {tid} ({self._label(tid)}) failed, retrying from its last checkpoint: "
                  f"{_error_line(trial)}")

    @_recording
    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tid = trial.config["trial_id"]
        if trial.last_result.get(FATAL):
            self._failed(trial, tid, str(trial.last_result[FATAL]).splitlines()[0][:500], trials)
            return
        steps = self.book.meta[tid].config["steps"]
        status = TrialStatus.STOPPED if trial.last_result.get(STEP, steps) < steps else TrialStatus.FINISHED  # ASHA
        self.book.set_state(tid, status, failures=trial.num_failures)
        self.tracker.finish(tid, status)
        self._note_best(tid, trial.last_result)
        self._progress(trials, force=True, ending=(trial, TrialStatus.FINISHED))

    @_recording
    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._failed(trial, trial.config["trial_id"], _error_line(trial), trials)

    def _failed(self, trial: Any, tid: str, error: str, trials: list) -> None:
        cost = {k: trial.last_result[k] for k in COST_COLUMNS if isinstance(trial.last_result.get(k), (int, float))}
        self.book.set_state(tid, TrialStatus.FAILED, failures=trial.num_failures, error=error, **cost)
        self.tracker.finish(tid, TrialStatus.FAILED)
        self._say(f"  trial {tid} ({self._label(tid)}) FAILED: {error}")
        self._progress(trials, force=True, ending=(trial, TrialStatus.FAILED))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._progress(trials)

    @_recording
    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._open()
        self._live["progress"].close(trials)
        self.book.close()

    # ---- progress -------------------------------------------------------------------------------
    def _label(self, tid: str) -> str:
        meta = self.book.meta[tid]
        budget = f", budget {meta.budget}" if meta.budget is not None else ""
        grid = f", weights {meta.grid_point}" if meta.grid_point else ""
        return f"{meta.method}{budget}, seed {meta.seed}{grid}"

    def _say(self, message: str) -> None:
        self._open()
        self._live["progress"].say(message)

    def _note_best(self, tid: str, result: dict) -> None:
        """The method's best validation accuracy so far (selection on validation only, never on test)."""
        self._open()
        self._live["progress"].note_val(self.book.meta[tid].method, result.get(BEST_VAL_ACC))

    def _progress(self, trials: list, force: bool = False, ending: tuple[Any, str] | None = None) -> None:
        """Counts come from Tune's trial list (what runs now), not from the record book."""
        self._open()
        self._live["progress"].update(trials, force=force, ending=ending)

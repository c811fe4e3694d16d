"""The driver-side Tune callback: records every report, mirrors it to MLflow, and prints progress.

Each launch of a study's trials gets a new callback (a resumed study is a new launch, never Tune's restored
state), so everything it needs comes through its constructor; Tune still pickles it into its experiment state,
which is why it holds only plain values until `setup()` opens the record book and the MLflow tracker.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from typing import Any

from ray import tune

from orchestrator.run.progress import Progress
from orchestrator.run.signals import Interrupts
from orchestrator.store.records import RecordBook
from orchestrator.store.schema import BEST_VAL_ACC, CHECKPOINT, COST_COLUMNS, DONE, FATAL, STEP, Trial, TrialStatus
from orchestrator.store.tracking import TrackerProcess


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


def _recording(method: Callable[..., Any]) -> Callable[..., Any]:
    """Keeps an OSError raised while recording in `self.faults` (then re-raises it: the run must stop); Tune
    wraps a callback's exception in its own error, so the runner looks there to end the run with one clear line
    instead of Tune's traceback."""

    @functools.wraps(method)
    def wrapper(self: StudyCallback, *args: Any, **kwargs: Any) -> Any:
        try:
            with self.interrupts.recording() if self.interrupts is not None else contextlib.nullcontext():
                return method(self, *args, **kwargs)
        except OSError as error:
            self.faults.append(error)
            raise

    return wrapper


class StudyCallback(tune.Callback):
    """Records, MLflow and progress for one launch of a study's trials (driver process only). Everything it
    needs comes through the constructor: the run folder, the plan's trials, the MLflow URI (it may hold
    credentials: never pickled into Tune's experiment state) and the run's interrupt handlers."""

    def __init__(self, run_dir: str, study: str, plan_meta: list[Trial], mlflow_uri: str,
                 interrupts: Interrupts | None = None, progress_every_s: float = 30.0,
                 states: dict[str, dict[str, Any]] | None = None) -> None:
        """`states`: the trials' states as the launch read them (else read when the callback opens)."""
        self.run_dir, self.study, self.plan_meta = run_dir, study, plan_meta
        self._states = states
        self.mlflow_uri, self.interrupts = mlflow_uri, interrupts
        self.progress_every_s = progress_every_s
        self.faults: list[OSError] = []
        self._live: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_live={}, mlflow_uri="", interrupts=None, faults=[], _states=None)
        return state

    # ---- lifecycle ----------------------------------------------------------------------------
    def setup(self, **info: Any) -> None:
        if self.interrupts is not None:
            self.interrupts.during_tune()
        self._open()

    def _open(self) -> None:
        if self._live:
            return
        book = RecordBook(self.run_dir, self.plan_meta, self._states)
        statuses = [s.get("status") for s in book.states.values()]
        before = {"finished": sum(s in DONE for s in statuses), "failed": statuses.count(TrialStatus.FAILED)}
        self._live = {"book": book, "tracker": TrackerProcess(self.mlflow_uri, self.study, self.run_dir,
                                                            self.plan_meta),
                      "progress": Progress(len(self.plan_meta), every_s=self.progress_every_s, ended_before=before)}

    @property
    def book(self) -> RecordBook:
        self._open()
        return self._live["book"]

    @property
    def tracker(self) -> TrackerProcess:
        self._open()
        return self._live["tracker"]

    # ---- Tune events ----------------------------------------------------------------------------
    @_recording
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tid = trial.config["trial_id"]
        extra = {"weights": trial.config["weights"]} if trial.config.get("weights") is not None else {}
        self.book.set_state(tid, TrialStatus.RUNNING, failures=trial.num_failures, **extra)
        self.tracker.starting(tid)   # its MLflow run is made with its first result (one write for params and metrics)

    @_recording
    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        tid = trial.config["trial_id"]
        if result.get(FATAL):   # a deterministic failure, reported instead of raised so that Tune never retries it
            return
        extra = {"failures": trial.num_failures}
        if result.get("checkpoint_dir_name"):   # where --resume continues it: relative to the run's Tune storage
            extra[CHECKPOINT] = "/".join((trial.storage.experiment_dir_name, trial.storage.trial_dir_name,
                                          result["checkpoint_dir_name"]))
        row = self.book.row(tid, {**result, **extra})
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
        steps = self.book.meta[tid].config.steps
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

    @_recording
    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.book.flush()   # the states that changed, at most every FLUSH_EVERY_S
        self._progress(trials)

    @_recording
    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """The launch ended (all done, or stopped by Ctrl-C/SIGTERM): trials still running are interrupted, in
        the records and in MLflow (KILLED); --resume continues them from their last checkpoints."""
        self._open()
        for tid, state in self.book.states.items():
            if state.get("status") in (TrialStatus.RUNNING, TrialStatus.RETRYING):
                self.book.set_state(tid, TrialStatus.INTERRUPTED)
                self.tracker.finish(tid, TrialStatus.INTERRUPTED)
        statuses = [s.get("status") for s in self.book.states.values()]
        ended = {"finished": sum(s in DONE for s in statuses), "failed": statuses.count(TrialStatus.FAILED)}
        self._live["progress"].close(trials, counts={**ended, "running": 0,
                                                     "pending": len(statuses) - sum(ended.values())})
        self.book.close()
        self.tracker.close()   # everything handed to MLflow's writer is logged before the run goes on

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

"""A study's records in its run folder: the plan, each trial's state, every evaluation as a row.

While a study runs, rows are appended to `records.jsonl` (one line per trial per evaluation, never
rewritten, so a crash loses nothing) and `trials.json` holds each trial's state. At the end (and on
`arml status`/`arml report`) they become `records.parquet`/`records.csv` and `trials.csv`.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import pandas as pd

from orchestrator.store.folder import ROWS_FILE, STATES_FILE, DamagedFile, RunFolder
from orchestrator.store.schema import (
    ACTIVE,
    CHECKPOINT,
    COST_COLUMNS,
    DONE,
    FATAL,
    NODE_ID,
    STEP,
    PlanFile,
    Trial,
    TrialStatus,
    read_plan,
)

ID_COLUMNS = ["trial_id", "method", "weighting", "budget_key", "budget", "seed", "grid_point"]
# Tune's own bookkeeping in every result, not worth a column (its trial_id would hide ours)
TUNE_NOISE = {"trial_id", "should_checkpoint", "checkpoint_dir_name", "date", "timestamp", "time_this_iter_s",
              "done", "training_iteration", "iterations_since_restore", "time_since_restore", "experiment_tag",
              "config"}
# Ray's fields kept in the live records.jsonl (a worker's pid helps to debug it) but left out of the exported
# tables and of MLflow: our node_id, hostname and wall_s say more; `failures` is the trial's, in trials.csv;
# `checkpoint` is where --resume continues a trial
RAY_FIELDS = {"pid", "node_ip", "time_total_s", "time", "failures", CHECKPOINT}
# columns of a record row that describe it rather than measure it (never logged as metrics)
NOT_METRICS = frozenset({*ID_COLUMNS, *RAY_FIELDS, "main_task", NODE_ID, "hostname", "recorded_at", "rank",
                         "workers", "retry_from_step"})


def metric_values(row: dict[str, Any]) -> dict[str, float]:
    """The metrics of one record row, the one definition of what is a metric (MLflow logs exactly these):
    finite numbers (not bools) that are neither identifiers nor bookkeeping, e.g. val_acc, weight/is_0, cpu_s."""
    return {k: float(v) for k, v in row.items()
            if k not in NOT_METRICS and k not in TUNE_NOISE and isinstance(v, (int, float))
            and not isinstance(v, bool) and math.isfinite(v)}


def main_task(config: Any) -> str:
    """The main task a trial trains for, named from its TrainConfig: the main attribute (multi-label), the
    classes of the held-out domain (domain generalization) or the data set's classes (semi-supervised)."""
    if config.setting == "mlc":
        return str(config.main_attribute or "main attribute")
    if config.setting == "dg":
        return f"classes on {config.target_domain or 'the target domain'}"
    return f"{config.dataset} classes".strip()


def cell_values(trial: Trial) -> dict[str, Any]:
    """The trial's sweep cell as columns named after the swept keys (a list value as its text)."""
    return {key: json.dumps(value) if isinstance(value, (list, tuple)) else value for key, value in trial.cell.items()}


def write_states(run_dir: str, states: dict[str, dict[str, Any]]) -> None:
    """trials.json, replaced atomically."""
    RunFolder(run_dir).write_json(STATES_FILE, states, compact=True)


# states written at once: what the records alone cannot tell after a crash (a failure and its error, a retry, a trial
# a scheduler stopped early, one interrupted); a trial that started or finished is written within FLUSH_EVERY_S (a
# finished one is told by its records too: its rows reach its last step)
AT_ONCE = frozenset({TrialStatus.FAILED, TrialStatus.RETRYING, TrialStatus.STOPPED, TrialStatus.INTERRUPTED})
FLUSH_EVERY_S = 0.5


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RecordBook:
    """Appends evaluation rows and keeps trial states for one run folder (driver process only)."""

    def __init__(self, run_dir: str, plan_trials: list[Trial], states: dict[str, dict[str, Any]] | None = None
                 ) -> None:
        """`states`: the trials' states as a reading of the records settled them (read here when not given)."""
        self.run_dir = run_dir
        self.meta = {t.trial_id: t for t in plan_trials}
        self.states: dict[str, dict[str, Any]] = {tid: {"status": TrialStatus.PENDING} for tid in self.meta}
        # a resumed study keeps what it knew, settled by its records (a trial whose rows reached its last step)
        known = states if states is not None else load_states(run_dir)
        self.states.update({k: dict(v) for k, v in known.items() if k in self.meta})
        path = os.path.join(run_dir, ROWS_FILE)
        cut = os.path.exists(path) and os.path.getsize(path) > 0 and _last_byte(path) != b"\n"
        self._rows = open(path, "a")
        self._dirty, self._written = False, 0.0
        if cut:   # the last line was cut by a crash: the next row starts a line of its own
            self._rows.write("\n")
            self._rows.flush()

    def row(self, trial_id: str, metrics: dict[str, Any]) -> dict[str, Any]:
        meta = self.meta[trial_id]
        out = {k: getattr(meta, k) for k in ID_COLUMNS}
        out["grid_point"] = json.dumps(meta.grid_point) if meta.grid_point else None
        out["main_task"] = main_task(meta.config)
        out.update(cell_values(meta))
        out.update({k: _clean(v) for k, v in metrics.items()
                    if isinstance(v, (int, float, str, bool)) and k not in TUNE_NOISE and k not in out})
        out["recorded_at"] = time.time()   # unix seconds
        self._rows.write(json.dumps(out) + "\n")
        self._rows.flush()
        state = self.states[trial_id]
        state.update(status=TrialStatus.RUNNING, last_step=out.get(STEP),
                     **{k: out[k] for k in COST_COLUMNS if k in out})
        return out

    def set_state(self, trial_id: str, status: TrialStatus, **extra: Any) -> None:
        """The trial's state; trials.json is rewritten at once for a state in AT_ONCE, else within FLUSH_EVERY_S
        (`flush`): a wide study starts and finishes many trials a second, and each write holds every trial."""
        self.states[trial_id].update(status=status, **extra)
        self._dirty = True
        self.flush(force=status in AT_ONCE)

    def flush(self, force: bool = False) -> None:
        """trials.json rewritten when a state changed since the last write and `force` or FLUSH_EVERY_S passed."""
        now = time.monotonic()
        if self._dirty and (force or now - self._written >= FLUSH_EVERY_S):
            write_states(self.run_dir, self.states)
            self._dirty, self._written = False, now

    def close(self) -> None:
        self._rows.close()
        write_states(self.run_dir, self.states)
        self._dirty = False


def _last_byte(path: str) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


class RunRecords:
    """One reading of a run folder's records: its plan (None before one was written), each trial's state as
    trials.json has it, and every row of records.jsonl in the order written (a line cut by a crash skipped). Every
    view (settled states, the rows as a table, each trial's last row, the trials table) is computed from this
    reading, so a command reads each file once."""

    def __init__(self, plan: PlanFile | None, raw_states: dict[str, dict[str, Any]], rows: list[dict[str, Any]]
                 ) -> None:
        self.plan, self.raw_states, self.rows = plan, raw_states, rows

    @classmethod
    def read(cls, run_dir: str | os.PathLike, require_plan: bool = False) -> RunRecords:
        """The reading; with `require_plan`, a UsageError saying what to give when the folder has no plan."""
        folder = RunFolder(run_dir)
        if require_plan:
            folder.require_plan()
        try:
            states: dict[str, dict[str, Any]] = folder.read_json(STATES_FILE, {})
        except DamagedFile as error:
            _warn_once(f"{error}; trial states are rebuilt from the records (a failed trial counts as not run)")
            states = {}
        return cls(read_plan(str(run_dir)) if folder.has_plan() else None, states, _read_rows(folder.file(ROWS_FILE)))

    def last_rows(self) -> dict[str, dict[str, Any]]:
        """Each trial's last recorded evaluation row (the highest step; the last report of that step)."""
        out: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            tid, step = row.get("trial_id"), row.get(STEP)
            if tid is not None and isinstance(step, (int, float)) and step >= out.get(tid, {}).get(STEP, -1):
                out[tid] = row
        return out

    def frame(self) -> pd.DataFrame:
        """Every evaluation row, one per (trial, step): a retried trial's repeated steps keep the last report."""
        if not self.rows:
            return pd.DataFrame(columns=ID_COLUMNS + [STEP])
        frame = pd.DataFrame(self.rows)
        return frame.drop_duplicates(["trial_id", STEP], keep="last").sort_values(["trial_id", STEP], kind="stable")

    def states(self) -> dict[str, dict[str, Any]]:
        """Each trial's state as its records show it: trials.json, settled by the records themselves. A trial whose
        rows reach its last step finished training even if the driver died before it wrote so (kill -9, SIGTERM
        between the last report and the completion): it is finished, never run again, and counted in the report. A
        trial that trials.json calls finished or stopped early but that has no evaluation in the records (an edited
        or stale trials.json) is not: it is pending and runs. A damaged trials.json is rebuilt from the records."""
        states = {tid: dict(state) for tid, state in self.raw_states.items()}
        if self.plan is None:
            return states
        last = self.last_rows()
        for meta in self.plan.trials:
            state = states.get(meta.trial_id, {"status": TrialStatus.PENDING})
            row = last.get(meta.trial_id)
            status = state.get("status")
            if row is None or row.get(FATAL):
                if status in DONE:   # no evaluation recorded: nothing shows it ran
                    states[meta.trial_id] = {**state, "status": TrialStatus.PENDING}
                continue
            if row[STEP] >= meta.config.steps > 0 and status in ACTIVE:
                states[meta.trial_id] = {**state, "status": TrialStatus.FINISHED,
                                         **{k: row[k] for k in COST_COLUMNS if isinstance(row.get(k), (int, float))}}
        return states


def _read_rows(path: str) -> list[dict[str, Any]]:
    """records.jsonl's rows in the order written; a line cut by a crash is skipped."""
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
    return rows


def load_states(run_dir: str) -> dict[str, dict[str, Any]]:
    """Each trial's state as its records show it (`RunRecords.states`)."""
    return RunRecords.read(run_dir).states()


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    import sys

    if message not in _WARNED:
        _WARNED.add(message)
        print(f"arml: warning: {message}", file=sys.stderr, flush=True)

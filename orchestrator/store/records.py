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

from orchestrator.store.folder import ROWS_FILE, STATES_FILE, DamagedFile, RunFolder, atomic_path
from orchestrator.store.schema import (
    ACTIVE,
    BEST_STEP,
    BEST_VAL_ACC,
    DONE,
    STEP,
    TEST_ACC,
    TEST_AT_BEST_VAL,
    VAL_ACC,
    Trial,
    TrialStatus,
    read_plan,
)

ID_COLUMNS = ["trial_id", "method", "weighting", "budget_key", "budget", "seed", "grid_point"]
COST_COLUMNS = ["wall_s", "cpu_s", "gpu_s"]
# Tune's own bookkeeping in every result, not worth a column (its trial_id would hide ours)
TUNE_NOISE = {"trial_id", "should_checkpoint", "checkpoint_dir_name", "date", "timestamp", "time_this_iter_s",
              "done", "training_iteration", "iterations_since_restore", "time_since_restore", "experiment_tag",
              "config"}
# Ray's fields kept in the live records.jsonl (a worker's pid helps to debug it) but left out of the exported
# tables and of MLflow: our node_id, hostname and wall_s say more; `failures` is the trial's, in trials.csv;
# `checkpoint` is where --resume continues a trial
RAY_FIELDS = {"pid", "node_ip", "time_total_s", "time", "failures", "checkpoint"}
# columns of a record row that describe it rather than measure it (never logged as metrics)
NOT_METRICS = frozenset({*ID_COLUMNS, *RAY_FIELDS, "main_task", "node_id", "hostname", "recorded_at", "rank",
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


def _cell_values(trial: Trial) -> dict[str, Any]:
    """The trial's sweep cell as columns named after the swept keys (a list value as its text)."""
    return {key: json.dumps(value) if isinstance(value, (list, tuple)) else value for key, value in trial.cell.items()}


def write_states(run_dir: str, states: dict[str, dict[str, Any]]) -> None:
    """trials.json, replaced atomically."""
    RunFolder(run_dir).write_json(STATES_FILE, states)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RecordBook:
    """Appends evaluation rows and keeps trial states for one run folder (driver process only)."""

    def __init__(self, run_dir: str, plan_trials: list[Trial]) -> None:
        self.run_dir = run_dir
        self.meta = {t.trial_id: t for t in plan_trials}
        self.states: dict[str, dict[str, Any]] = {tid: {"status": TrialStatus.PENDING} for tid in self.meta}
        # a resumed study keeps what it knew, settled by its records (a trial whose rows reached its last step)
        self.states.update({k: v for k, v in load_states(run_dir).items() if k in self.meta})
        path = os.path.join(run_dir, ROWS_FILE)
        cut = os.path.exists(path) and os.path.getsize(path) > 0 and _last_byte(path) != b"\n"
        self._rows = open(path, "a")
        if cut:   # the last line was cut by a crash: the next row starts a line of its own
            self._rows.write("\n")
            self._rows.flush()

    def row(self, trial_id: str, metrics: dict[str, Any]) -> dict[str, Any]:
        meta = self.meta[trial_id]
        out = {k: getattr(meta, k) for k in ID_COLUMNS}
        out["grid_point"] = json.dumps(meta.grid_point) if meta.grid_point else None
        out["main_task"] = main_task(meta.config)
        out.update(_cell_values(meta))
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
        self.states[trial_id].update(status=status, **extra)
        write_states(self.run_dir, self.states)

    def close(self) -> None:
        self._rows.close()
        write_states(self.run_dir, self.states)


def _last_byte(path: str) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def load_rows(run_dir: str) -> pd.DataFrame:
    """Every evaluation row, one per (trial, step): a retried trial's repeated steps keep the last report."""
    path = os.path.join(run_dir, ROWS_FILE)
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return pd.DataFrame(columns=ID_COLUMNS + ["step"])
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by a crash
                    continue
    frame = pd.DataFrame(rows)
    return frame.drop_duplicates(["trial_id", "step"], keep="last").sort_values(["trial_id", "step"], kind="stable")


def last_rows(run_dir: str) -> dict[str, dict[str, Any]]:
    """Each trial's last recorded evaluation row (the highest step; the last report of that step), read line
    by line from records.jsonl without pandas."""
    path = os.path.join(run_dir, ROWS_FILE)
    out: dict[str, dict[str, Any]] = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a crash
                continue
            tid, step = row.get("trial_id"), row.get(STEP)
            if tid is None or not isinstance(step, (int, float)):
                continue
            if tid not in out or step >= out[tid].get(STEP, -1):
                out[tid] = row
    return out


def load_states(run_dir: str) -> dict[str, dict[str, Any]]:
    """Each trial's state as its records show it: trials.json, settled by the records themselves. A trial whose
    rows reach its last step finished training even if the driver died before it wrote so (kill -9, SIGTERM between
    the last report and the completion): it is finished, never run again, and counted in the report. A trial that
    trials.json calls finished or stopped early but that has no evaluation in the records (an edited or stale
    trials.json) is not: it is pending and runs. A damaged trials.json is rebuilt from the records."""
    folder = RunFolder(run_dir)
    try:
        states: dict[str, dict[str, Any]] = folder.read_json(STATES_FILE, {})
    except DamagedFile as error:
        _warn_once(f"{error}; trial states are rebuilt from the records (a failed trial counts as not run)")
        states = {}
    if not folder.has_plan():
        return states
    plan = read_plan(run_dir)
    last = last_rows(run_dir)
    for meta in plan.trials:
        state = states.get(meta.trial_id, {"status": TrialStatus.PENDING})
        row = last.get(meta.trial_id)
        status = state.get("status")
        if row is None or row.get("fatal_error"):
            if status in DONE:   # no evaluation recorded: nothing shows it ran
                states[meta.trial_id] = {**state, "status": TrialStatus.PENDING}
            continue
        if row[STEP] >= meta.config.steps > 0 and status in ACTIVE:
            states[meta.trial_id] = {**state, "status": TrialStatus.FINISHED,
                                     **{k: row[k] for k in COST_COLUMNS if isinstance(row.get(k), (int, float))}}
    return states


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    import sys

    if message not in _WARNED:
        _WARNED.add(message)
        print(f"arml: warning: {message}", file=sys.stderr, flush=True)


def trials_table(run_dir: str) -> pd.DataFrame:
    """One row per planned trial: what it means, its state, final and best-validation metrics, its cost."""
    plan = read_plan(run_dir)
    states = load_states(run_dir)
    rows = load_rows(run_dir)
    out = []
    for meta in plan.trials:
        tid = meta.trial_id
        state = states.get(tid, {"status": TrialStatus.PENDING})
        row = {k: getattr(meta, k) for k in ID_COLUMNS}
        point = meta.grid_point or state.get("weights")   # a search's weights: drawn when it started
        row["grid_point"] = json.dumps(point) if point else None
        row["main_task"] = main_task(meta.config)
        row.update(_cell_values(meta))
        row["search"] = (meta.search or {}).get("sampler")      # None: the report tells searches by it
        row["scheduler"] = (meta.scheduler or {}).get("name")
        row["status"] = str(state.get("status", TrialStatus.PENDING))
        row["error"] = state.get("error", "")
        row["failures"] = state.get("failures", 0)
        row.update({k: state[k] for k in COST_COLUMNS if k in state})   # a trial that failed before reporting
        mine = rows[rows["trial_id"] == tid] if len(rows) else rows
        if len(mine):
            last = mine.iloc[-1]
            for key in (STEP, VAL_ACC, TEST_ACC, BEST_VAL_ACC, TEST_AT_BEST_VAL, BEST_STEP, *COST_COLUMNS, "node_id"):
                if key in last.index:
                    row[f"final_{key}" if key in (VAL_ACC, TEST_ACC, STEP) else key] = last[key]
        out.append(row)
    return pd.DataFrame(out)


def export_tables(run_dir: str) -> dict[str, str]:
    """Writes records.parquet/.csv and trials.parquet/.csv with typed columns; returns their paths.

    Parquet keeps the grid point as a list of floats; a CSV keeps it as JSON text and adds one number per
    auxiliary task (`w/<task>`), and trials.csv leaves out columns that are empty for every trial (e.g.
    `error` when nothing failed), so that no column loads as all-NaN."""
    plan = read_plan(run_dir)
    aux = list(plan.aux_names)
    tasks = {m.trial_id: main_task(m.config) for m in plan.trials}
    rows = load_rows(run_dir).drop(columns=[c for c in TUNE_NOISE | RAY_FIELDS if c != "trial_id"], errors="ignore")
    if len(rows) and "main_task" not in rows:
        rows.insert(rows.columns.get_loc("grid_point") + 1, "main_task", rows["trial_id"].map(tasks))
    cells = {m.trial_id: _cell_values(m) for m in plan.trials}
    for at, key in enumerate(plan.axes):   # one column per swept key, beside main_task
        if len(rows):
            values = rows["trial_id"].map(lambda tid, key=key: cells.get(tid, {}).get(key))
            rows = rows.drop(columns=[key], errors="ignore")
            rows.insert(rows.columns.get_loc("main_task") + 1 + at, key, values)
    trials = trials_table(run_dir)
    for column in ("search", "scheduler", "error"):
        trials[column] = trials[column].fillna("").astype(str)
    paths = {name: os.path.join(run_dir, name)
             for name in ("records.parquet", "records.csv", "trials.parquet", "trials.csv")}
    for frame, stem in ((rows, "records"), (trials, "trials")):
        with atomic_path(paths[f"{stem}.parquet"]) as temporary:
            as_lists(frame).to_parquet(temporary, index=False)
        flat = _as_weight_columns(frame, aux)
        if stem == "trials":
            flat = flat.drop(columns=[c for c in flat if flat[c].map(_empty).all()])
        with atomic_path(paths[f"{stem}.csv"]) as temporary:
            flat.to_csv(temporary, index=False)
    return paths


def _empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and value != value)


def _points(frame: pd.DataFrame) -> list[list[float] | None]:
    return [json.loads(p) if isinstance(p, str) and p else None for p in frame.get("grid_point", [])]


def as_lists(frame: pd.DataFrame) -> pd.DataFrame:
    """The grid point (JSON text in memory) as a list of floats, for Parquet."""
    out = frame.copy()
    if "grid_point" in out:
        out["grid_point"] = pd.Series([[float(x) for x in p] if p else None for p in _points(frame)],
                                      index=out.index, dtype=object)
    return out


def _as_weight_columns(frame: pd.DataFrame, aux: list[str]) -> pd.DataFrame:
    """The grid point also as one numeric column per auxiliary task, `w/<task>`, for CSV."""
    if "grid_point" not in frame:
        return frame
    points = _points(frame)
    out = frame.copy()
    if not any(points):
        return out
    at = frame.columns.get_loc("grid_point") + 1
    for k, name in enumerate(aux):
        out.insert(at + k, f"w/{name}", [p[k] if p and k < len(p) else float("nan") for p in points])
    return out

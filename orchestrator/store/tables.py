"""The run folder's tables for people and pandas: one row per trial (`trials_table`) and the exports
records.parquet/.csv and trials.parquet/.csv (`export_tables`), built from one reading of the records."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from orchestrator.store.folder import (
    RECORDS_CSV,
    RECORDS_PARQUET,
    TRIALS_CSV,
    TRIALS_PARQUET,
    RunFolder,
    atomic_path,
)
from orchestrator.store.records import ID_COLUMNS, RAY_FIELDS, TUNE_NOISE, RunRecords, cell_values, main_task
from orchestrator.store.schema import (
    BEST_STEP,
    BEST_VAL_ACC,
    COST_COLUMNS,
    NODE_ID,
    STEP,
    TEST_ACC,
    TEST_AT_BEST_VAL,
    VAL_ACC,
    TrialStatus,
)


def trials_table(run_dir: str | RunRecords) -> pd.DataFrame:
    """One row per planned trial: what it means, its state, final and best-validation metrics, its cost (from a
    run folder, or from a reading of one already made)."""
    records = run_dir if isinstance(run_dir, RunRecords) else RunRecords.read(run_dir, require_plan=True)
    plan = records.plan
    states = records.states()
    last = {tid: row for tid, row in _last_reports(records).items()}
    out = []
    for meta in plan.trials:
        tid = meta.trial_id
        state = states.get(tid, {"status": TrialStatus.PENDING})
        row = {k: getattr(meta, k) for k in ID_COLUMNS}
        point = meta.grid_point or state.get("weights")   # a search's weights: drawn when it started
        row["grid_point"] = json.dumps(point) if point else None
        row["main_task"] = main_task(meta.config)
        row.update(cell_values(meta))
        row["search"] = (meta.search or {}).get("sampler")      # None: the report tells searches by it
        row["scheduler"] = (meta.scheduler or {}).get("name")
        row["status"] = str(state.get("status", TrialStatus.PENDING))
        row["error"] = state.get("error", "")
        row["failures"] = state.get("failures", 0)
        row.update({k: state[k] for k in COST_COLUMNS if k in state})   # a trial that failed before reporting
        if tid in last:
            for key in (STEP, VAL_ACC, TEST_ACC, BEST_VAL_ACC, TEST_AT_BEST_VAL, BEST_STEP, *COST_COLUMNS, NODE_ID):
                if key in last[tid]:
                    row[f"final_{key}" if key in (VAL_ACC, TEST_ACC, STEP) else key] = last[tid][key]
        out.append(row)
    return pd.DataFrame(out)


def _last_reports(records: RunRecords) -> dict[str, dict[str, Any]]:
    """Each trial's row of its highest step, as the rows table keeps it (the last report of a repeated step),
    with the columns every row of the table has (missing values as NaN, as pandas reads them)."""
    frame = records.frame()
    if frame.empty:
        return {}
    last = frame.groupby("trial_id", sort=False).tail(1)
    return {row["trial_id"]: row for row in last.to_dict("records")}


def export_tables(run_dir: str, records: RunRecords | None = None) -> dict[str, str]:
    """Writes records.parquet/.csv and trials.parquet/.csv with typed columns; returns their paths.

    Parquet keeps the grid point as a list of floats; a CSV keeps it as JSON text and adds one number per
    auxiliary task (`w/<task>`), and trials.csv leaves out columns that are empty for every trial (e.g.
    `error` when nothing failed), so that no column loads as all-NaN."""
    records = records or RunRecords.read(run_dir)
    plan = records.plan
    aux = list(plan.aux_names)
    tasks = {m.trial_id: main_task(m.config) for m in plan.trials}
    rows = records.frame().drop(columns=[c for c in TUNE_NOISE | RAY_FIELDS if c != "trial_id"], errors="ignore")
    if len(rows) and "main_task" not in rows:
        rows.insert(rows.columns.get_loc("grid_point") + 1, "main_task", rows["trial_id"].map(tasks))
    cells = {m.trial_id: cell_values(m) for m in plan.trials}
    for at, key in enumerate(plan.axes):   # one column per swept key, beside main_task
        if len(rows):
            values = rows["trial_id"].map(lambda tid, key=key: cells.get(tid, {}).get(key))
            rows = rows.drop(columns=[key], errors="ignore")
            rows.insert(rows.columns.get_loc("main_task") + 1 + at, key, values)
    trials = trials_table(records)
    for column in ("search", "scheduler", "error"):
        trials[column] = trials[column].fillna("").astype(str)
    folder = RunFolder(run_dir)
    paths = {name: folder.file(name) for name in (RECORDS_PARQUET, RECORDS_CSV, TRIALS_PARQUET, TRIALS_CSV)}
    for frame, parquet, csv in ((rows, RECORDS_PARQUET, RECORDS_CSV), (trials, TRIALS_PARQUET, TRIALS_CSV)):
        with atomic_path(paths[parquet]) as temporary:
            as_lists(frame).to_parquet(temporary, index=False)
        flat = _as_weight_columns(frame, aux)
        if csv == TRIALS_CSV:
            flat = flat.drop(columns=[c for c in flat if flat[c].map(_empty).all()])
        with atomic_path(paths[csv]) as temporary:
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

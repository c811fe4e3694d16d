"""`arml status RUN_DIR`: what a study has done, is doing and has left, from its run folder alone.

Per method it shows the best validation accuracy so far (selection on validation only: a test number
picked as the maximum over grid points, seeds or budgets would be chosen on test)."""

from __future__ import annotations

import os
from typing import Any

from orchestrator.store.records import RunRecords
from orchestrator.store.schema import BEST_VAL_ACC, DONE, TrialStatus
from orchestrator.store.tables import trials_table

STATES = tuple(TrialStatus)


def _number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value == value else None


def status_data(run_dir: str, job: dict[str, Any] | None = None) -> dict[str, Any]:
    """Counts per state, per method (done, total, best validation accuracy so far), running trials with their
    last reported step (None: started, nothing reported yet) and failed trials with their errors; `job`, the state
    of the Ray job that runs the study (orchestrator/run/jobs.job_state, its "summary" a line), is passed through."""
    records = RunRecords.read(run_dir, require_plan=True)
    plan = records.plan
    table = trials_table(records)
    counts = table["status"].value_counts()
    methods = []
    for method, group in table.groupby("method", sort=False):
        best = group[BEST_VAL_ACC].map(_number).dropna() if BEST_VAL_ACC in group else []
        methods.append({"method": method, "done": int(group["status"].isin(DONE).sum()),
                        "total": len(group), BEST_VAL_ACC: float(max(best)) if len(best) else None})
    running = [{"trial_id": row["trial_id"], "method": row["method"], "seed": int(row["seed"]),
                "budget": _number(row["budget"]),
                "step": None if _number(row.get("final_step")) is None else int(row["final_step"])}
               for _, row in table[table["status"].isin([TrialStatus.RUNNING, TrialStatus.RETRYING])].iterrows()]
    failed = [{"trial_id": row["trial_id"], "method": row["method"], "seed": int(row["seed"]), "error": row["error"]}
              for _, row in table[table["status"] == TrialStatus.FAILED].iterrows()]
    return {"study": plan.study, "setting": plan.setting, "dataset": plan.dataset,
            "run_dir": os.path.abspath(run_dir), "trials": len(table),
            "counts": {str(s): int(counts.get(s, 0)) for s in STATES}, "methods": methods,
            "running": running, "failed": failed, **({"ray_job": job} if job else {})}


def status_text(run_dir: str, job: dict[str, Any] | None = None) -> str:
    """The status as lines for a terminal."""
    data = status_data(run_dir, job)
    lines = [f"study {data['study']} ({data['setting']}, {data['dataset']}): {data['trials']} trials in "
             f"{data['run_dir']}",
             *([f"  {job['summary']}"] if job else []),
             "  " + ", ".join(f"{n} {s}" for s, n in data["counts"].items()),
             f"  {'method':16s} {'done':>6s} {'total':>6s} {'best val acc so far':>20s}"]
    for m in data["methods"]:
        value = "-" if m[BEST_VAL_ACC] is None else f"{m[BEST_VAL_ACC]:.4f}"
        lines.append(f"  {m['method']:16s} {m['done']:6d} {m['total']:6d} {value:>20s}")
    for r in data["running"]:
        where = "starting" if r["step"] is None else f"at step {r['step']}"
        lines.append(f"  running: {r['trial_id']} {r['method']} seed {r['seed']} {where}")
    for f in data["failed"]:
        lines.append(f"  FAILED: {f['trial_id']} {f['method']} seed {f['seed']}: {f['error']}")
    lines.append("  (test accuracy at each trial's best validation step: trials.csv, and the report)")
    return "\n".join(lines)


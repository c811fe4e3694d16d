"""Hand-made run folders for the report's tests (trials with given accuracies, no training), all written by one
writer, `write_folder`: the golden inputs, the paired-verdict, sweep, search-cost and diagnostics folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

PLAN_DEFAULTS = {"description": "", "setting": "mlc", "dataset": "digits", "preset": "digits_mlc", "targets": [],
                 "margin": 1.0, "smoke": False}


def write_folder(folder: str | os.PathLike, plan: dict, rows: list[dict], states: dict | None = None) -> Path:
    """A run folder from its three files: plan.json (`plan` over PLAN_DEFAULTS), trials.json (`states`; default:
    every planned trial finished) and records.jsonl (`rows`, one line each, in order)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if states is None:
        states = {t["trial_id"]: {"status": "finished", "failures": 0} for t in plan["trials"]}
    (folder / "plan.json").write_text(json.dumps({**PLAN_DEFAULTS, **plan}))
    (folder / "trials.json").write_text(json.dumps(states, indent=1))
    (folder / "records.jsonl").write_text("".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows))
    return folder


def write_run(folder: Path, accuracy: dict[str, list[float]], margin: float = 1.0, budget: int = 20,
              grid: dict[str, list[float]] | None = None) -> Path:
    """A run folder with one trial per method and seed: `accuracy[method][seed]` is both its best validation
    and its test accuracy (validation selection then agrees with test, so verdicts are about the pairing)."""
    trials, states, rows = [], {}, []
    entries = [(m, "uniform" if m == "uniform" else "arml", None, v) for m, v in accuracy.items()]
    for point, values in (grid or {}).items():
        entries.append(("grid", "fixed", json.loads(point), values))
    for n, (method, weighting, point, values) in enumerate(entries):
        for seed, value in enumerate(values):
            tid = f"t{n:02d}s{seed:02d}"
            trials.append({"trial_id": tid, "method": method, "weighting": weighting, "budget_key": "label_budget",
                           "budget": budget, "seed": seed, "grid_point": point, "weighting_options": {},
                           "config": {"setting": "mlc", "label_budget": budget}})
            states[tid] = {"status": "finished", "failures": 0}
            rows.append({"trial_id": tid, "method": method, "weighting": weighting, "budget_key": "label_budget",
                         "budget": budget, "seed": seed, "grid_point": json.dumps(point) if point else None,
                         "step": 10, "best_val_acc": value, "test_acc_at_best_val": value, "wall_s": 1.0,
                         "cpu_s": 1.0, "gpu_s": 0.0})
    return write_folder(folder, {"study": "paired", "aux_names": ["a", "b"], "margin": margin, "trials": trials},
                        rows, states)

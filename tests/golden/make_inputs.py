"""Writes the hand-made run folders the golden report tests read (run once; the outputs are committed).

    .venv/bin/python tests/golden/make_inputs.py        # then: ARML_UPDATE_GOLDEN=1 pytest tests/report/test_build.py

ssl_sweep: semi-supervised, 2 auxiliary tasks, uniform / a 2x2 grid / ARML at 20 and 50 labels, 3 seeds; the
grid point with the best validation accuracy is not the one with the best test accuracy (selection on val).
mlc_failed: multi-label, 12 auxiliary attributes, no [budget] (1% of labels from the config), GPU trials,
one failed trial and one that never started.
search_cost: multi-label, 2 auxiliary tasks, 40 labels, 2 seeds: uniform, ARML, a full 2x2 grid, the same grid
pruned by ASHA (two points stopped early in each seed, with the seconds they used) and a TPE search of 4 samples
per seed (weights drawn at start, kept in trials.json); the search's best-by-validation trial differs per seed.
"""

from __future__ import annotations

import itertools
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "helpers"))

from runfolders import write_folder  # noqa: E402


def _write(folder: str, plan: dict, states: dict, rows: list[dict]) -> None:
    write_folder(folder, plan, rows, states)


def _meta(tid, method, weighting, key, budget, seed, point, config):
    return {"trial_id": tid, "method": method, "weighting": weighting, "budget_key": key, "budget": budget,
            "seed": seed, "grid_point": point, "weighting_options": {}, "config": config}


def ssl_sweep() -> None:
    aux = ["rotation", "exemplar_mt"]
    trials, states, rows = [], {}, []
    # test accuracy at best val per (method/point, budget); val accuracy; seeds add -0.02, 0, +0.02
    test = {"uniform": (0.55, 0.68), "arml": (0.60, 0.74), "[0, 0]": (0.50, 0.62), "[0, 1]": (0.58, 0.73),
            "[1, 0]": (0.62, 0.70), "[1, 1]": (0.55, 0.68)}
    val = {"uniform": (0.56, 0.69), "arml": (0.61, 0.73), "[0, 0]": (0.52, 0.60), "[0, 1]": (0.61, 0.75),
           "[1, 0]": (0.60, 0.72), "[1, 1]": (0.57, 0.69)}
    methods = [("uniform", "uniform", [None]), ("grid", "fixed", list(itertools.product([0.0, 1.0], repeat=2))),
               ("arml", "arml", [None])]
    n = 0
    for (method, weighting, points), (b, budget), seed in itertools.product(methods, enumerate((20, 50)), range(3)):
        for point in points:
            n += 1
            tid = f"s{n:03d}"
            name = f"[{point[0]:g}, {point[1]:g}]" if point else method
            trials.append(_meta(tid, method, weighting, "label_budget", budget, seed, list(point) if point else None,
                                {"setting": "ssl", "label_budget": budget}))
            states[tid] = {"status": "finished", "failures": 0, "last_step": 100}
            shift = 0.02 * (seed - 1)
            for step in (50, 100):
                row = {"trial_id": tid, "method": method, "weighting": weighting, "budget_key": "label_budget",
                       "budget": budget, "seed": seed, "grid_point": json.dumps(list(point)) if point else None,
                       "step": step, "best_val_acc": round(val[name][b] + shift - (0.05 if step == 50 else 0), 4),
                       "test_acc_at_best_val": round(test[name][b] + shift - (0.05 if step == 50 else 0), 4),
                       "wall_s": step * 0.2, "cpu_s": step * (0.3 if method == "arml" else 0.15), "gpu_s": 0.0}
                if point:
                    row.update({f"weight/{a}": w for a, w in zip(aux, point)})
                elif method == "uniform":
                    row.update({f"weight/{a}": 1.0 for a in aux})
                else:
                    row.update({"weight/rotation": 1.0 + 0.004 * step * (1 + b), "weight/exemplar_mt":
                                1.0 - 0.004 * step * (1 + b)})
                rows.append(row)
    plan = {"study": "golden_ssl", "description": "hand-made: uniform vs 2x2 grid vs ARML at 20 and 50 labels",
            "setting": "ssl", "dataset": "digits", "preset": "digits_ssl", "aux_names": aux,
            "targets": [0.6, 0.7, 0.8], "smoke": False, "trials": trials}
    _write(os.path.join(HERE, "ssl_sweep"), plan, states, rows)


def mlc_failed() -> None:
    aux = [f"attr_{i:02d}" for i in range(12)]
    trials, states, rows = [], {}, []
    config = {"setting": "mlc", "label_budget": 0, "label_fraction": 0.01, "main_attribute": "5_o_Clock_Shadow"}
    accuracy = {"uniform": 0.90, "gradnorm": 0.91, "arml": 0.93}
    for m, (method, seed) in enumerate(itertools.product(("uniform", "gradnorm", "arml"), range(3))):
        tid = f"m{m:03d}"
        trials.append(_meta(tid, method, method, None, None, seed, None, config))
        if (method, seed) == ("arml", 2):
            states[tid] = {"status": "pending"}
            continue
        failed = (method, seed) == ("gradnorm", 1)
        states[tid] = ({"status": "failed", "failures": 2, "error": "DivergenceError: training diverged at step 3"}
                       if failed else {"status": "finished", "failures": 0})
        for step in (2, 4)[: 1 if failed else 2]:
            row = {"trial_id": tid, "method": method, "weighting": method, "budget_key": None, "budget": None,
                   "seed": seed, "grid_point": None, "step": step,
                   "best_val_acc": accuracy[method] + 0.01 * seed,
                   "test_acc_at_best_val": accuracy[method] - 0.01 * seed,
                   "wall_s": 10.0 * step, "cpu_s": 8.0 * step, "gpu_s": 5.0 * step}
            for i, name in enumerate(aux):
                row[f"weight/{name}"] = 1.0 if method == "uniform" else round(1.0 + (5.5 - i) * 0.03 * step
                                                                           + 0.01 * seed, 4)
            rows.append(row)
    plan = {"study": "golden_mlc", "description": "hand-made: 12 attributes, a failed and a pending trial",
            "setting": "mlc", "dataset": "celeba", "preset": "mlc_celeba_paper", "aux_names": aux, "targets": [],
            "smoke": False, "trials": trials}
    _write(os.path.join(HERE, "mlc_failed"), plan, states, rows)


def search_cost() -> None:
    aux = ["is_0", "random_0"]
    trials, states, rows = [], {}, []
    config = {"setting": "mlc", "label_budget": 40, "steps": 100}
    grid = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    val = {"uniform": 0.80, "arml": 0.84, "[0, 0]": 0.78, "[0, 1]": 0.77, "[1, 0]": 0.85, "[1, 1]": 0.81}
    tpe = {0: [([0.3, 1.7], 0.79), ([1.9, 0.2], 0.86), ([1.2, 0.9], 0.83), ([1.6, 0.1], 0.85)],
           1: [([0.8, 0.4], 0.82), ([0.1, 1.1], 0.76), ([1.7, 0.3], 0.87), ([1.8, 0.6], 0.84)]}
    plan_rows = []
    for method in ("uniform", "arml", "grid", "grid_asha", "tpe"):
        for seed in range(2):
            if method in ("grid", "grid_asha"):
                plan_rows += [(method, seed, point, None) for point in grid]
            elif method == "tpe":
                plan_rows += [(method, seed, None, i) for i in range(4)]
            else:
                plan_rows.append((method, seed, None, None))
    for n, (method, seed, point, sample) in enumerate(plan_rows):
        tid = f"c{n:03d}"
        weighting = method if method in ("uniform", "arml") else "fixed"
        meta = _meta(tid, method, weighting, "label_budget", 40, seed, point, config)
        meta.update(sample=sample, scheduler={"name": "asha", "grace_period": 50, "reduction_factor": 2.0}
                    if method == "grid_asha" else None,
                    search={"sampler": "tpe", "num_samples": 4, "space": "box", "w_max": 2.0}
                    if method == "tpe" else None)
        trials.append(meta)
        weights = point or (tpe[seed][sample][0] if method == "tpe" else None)
        name = f"[{point[0]:g}, {point[1]:g}]" if point else method
        best = tpe[seed][sample][1] if method == "tpe" else val[name]
        stopped = method == "grid_asha" and point in ([0.0, 0.0], [0.0, 1.0])
        states[tid] = {"status": "stopped" if stopped else "finished", "failures": 0}
        if method == "tpe":
            states[tid]["weights"] = weights
        for step in (50,) if stopped else (50, 100):
            row = {"trial_id": tid, "method": method, "weighting": weighting, "budget_key": "label_budget",
                   "budget": 40, "seed": seed, "step": step, "grid_point": json.dumps(point) if point else None,
                   "best_val_acc": round(best + 0.01 * seed - (0.03 if step == 50 else 0), 4),
                   "test_acc_at_best_val": round(best - 0.02 + 0.01 * seed - (0.03 if step == 50 else 0), 4),
                   "wall_s": step * 0.1, "cpu_s": step * (0.2 if method == "arml" else 0.1), "gpu_s": 0.0}
            if weights:
                row.update({f"weight/{a}": w for a, w in zip(aux, weights)})
            elif method == "arml":
                row.update({"weight/is_0": 1.0 + step / 200, "weight/random_0": 1.0 - step / 200})
            rows.append(row)
    plan = {"study": "golden_search", "description": "hand-made: uniform, ARML, grid, ASHA grid, TPE at 40 labels",
            "setting": "mlc", "dataset": "digits", "preset": "digits_mlc", "aux_names": aux, "targets": [],
            "smoke": False, "trials": trials}
    _write(os.path.join(HERE, "search_cost"), plan, states, rows)


if __name__ == "__main__":
    ssl_sweep()
    mlc_failed()
    search_cost()

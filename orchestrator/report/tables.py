"""The report's tables: data requirement, labels to reach a target, compute cost with a verdict on grid
search vs ARML, task relationships and the paper-style results table, as DataFrames and Markdown."""

from __future__ import annotations

import math

import pandas as pd

from orchestrator.report.data import (
    RunData,
    _budget_rows,
    final_weights,
    labels_needed,
    method_points,
    weights_text,
)
from orchestrator.report.text import budget_text, md_table, pct, seconds
from orchestrator.report.verdicts import cost_verdict, verdict_of
from orchestrator.store.schema import DONE


def data_requirement(data: RunData) -> pd.DataFrame:
    """Paper Fig. 2: test accuracy (at best validation) per method and budget, mean and 95% CI over seeds."""
    return method_points(data)


def labels_to_reach(data: RunData, points: pd.DataFrame) -> pd.DataFrame:
    """Per target accuracy and method: labels needed (interpolated on the mean curve) and the ratio to uniform."""
    uniform = data.reference("uniform")
    out = []
    for target in data.plan.targets:
        needed = {}
        for method in data.methods:
            mine = points[points["method"] == method]
            needed[method] = labels_needed(list(zip(mine["budget"], mine["test_acc_mean"])), float(target))
        base = needed.get(uniform, (math.nan, ""))[0] if uniform else math.nan
        for method, (labels, note) in needed.items():
            ratio = labels / base if base and not math.isnan(base) and not math.isnan(labels) else math.nan
            out.append({"target": float(target), "method": method, "budget_key": data.budget_key,
                        "labels_needed": labels, "ratio_to_uniform": ratio, "note": note})
    return pd.DataFrame(out, columns=["target", "method", "budget_key", "labels_needed", "ratio_to_uniform", "note"])


def compute_cost(data: RunData, points: pd.DataFrame, paired: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per budget and method: trials, CPU/GPU/wall seconds (all trials run, failed ones included),
    device-seconds relative to ARML, accuracy with 95% CI, and the paired verdict of ARML against it."""
    paired = pd.DataFrame(columns=["method", "versus", "budget", "verdict"]) if paired is None else paired
    arml = data.reference("arml")
    use_gpu = float(data.trials["gpu_s"].fillna(0).sum()) > 0
    out = []
    for budget in data.budgets or [math.nan]:
        here = _budget_rows(data.trials, budget)
        at = _budget_rows(points, budget)
        device = {m: float(here.loc[here["method"] == m, "gpu_s" if use_gpu else "cpu_s"].fillna(0).sum())
                  for m in data.methods}
        for method in data.methods:
            mine = here[here["method"] == method]
            if mine.empty:
                continue
            point = at[at["method"] == method]
            mean, half, low, high = (float(point[c].iloc[0]) if len(point) else math.nan for c in
                                     ("test_acc_mean", "test_acc_ci95", "test_acc_low", "test_acc_high"))
            arml_s = device.get(arml, 0.0) if arml else 0.0
            out.append({
                "budget": budget, "method": method, "kind": data.kind(method), "trials": len(mine),
                "trials_done": int(mine["status"].isin(DONE).sum()),
                "cpu_s": float(mine["cpu_s"].fillna(0).sum()), "gpu_s": float(mine["gpu_s"].fillna(0).sum()),
                "wall_s": float(mine["wall_s"].fillna(0).sum()), "device": "GPU" if use_gpu else "CPU",
                "device_s": device[method], "device_s_vs_arml": device[method] / arml_s if arml_s else math.nan,
                "device_s_to_best": _to_best(data, method, mine, point, "GPU" if use_gpu else "CPU"),
                "test_acc_mean": mean, "test_acc_ci95": half, "test_acc_low": low, "test_acc_high": high,
                "selected_weights": str(point["selected_weights"].iloc[0]) if len(point) else "",
                "arml_verdict": verdict_of(paired, arml, method, budget),
            })
    columns = ["budget", "method", "kind", "trials", "trials_done", "cpu_s", "gpu_s", "wall_s", "device",
               "device_s", "device_s_vs_arml", "device_s_to_best", "test_acc_mean", "test_acc_ci95", "test_acc_low",
               "test_acc_high", "selected_weights", "arml_verdict"]
    return pd.DataFrame(out, columns=columns)


def _to_best(data: RunData, method: str, mine: pd.DataFrame, point: pd.DataFrame, device: str) -> float:
    """Device-seconds a search spent until (and with) the trial it selects, summed over seeds, in plan order
    (Tune's start order); a method that does not search: all its device-seconds."""
    column = "gpu_s" if device == "GPU" else "cpu_s"
    if not (data.is_grid(method) or data.is_search(method)):
        return float(mine[column].fillna(0).sum())
    chosen = str(point["selected_weights"].iloc[0]) if len(point) else ""
    total = 0.0
    for _, rows in mine.sort_values("order").groupby("seed"):
        done = rows[rows["status"].isin(DONE) & rows["best_val_acc"].notna()]
        if done.empty:
            total += float(rows[column].fillna(0).sum())
            continue
        if data.is_search(method):
            last = done["best_val_acc"].idxmax()
        else:
            match = done[[weights_text(p) == chosen for p in done["grid_point"]]]
            last = match.index[0] if len(match) else done.index[-1]
        upto = rows.loc[rows["order"] <= rows.loc[last, "order"]]
        total += float(upto[column].fillna(0).sum())
    return total


def cost_markdown(data: RunData, cost: pd.DataFrame, paired: pd.DataFrame | None = None) -> str:
    study = data.plan.study
    unit = str(cost["device"].iloc[0]) if len(cost) else "CPU"
    rows = []
    for _, r in cost.iterrows():
        ratio = "" if math.isnan(r["device_s_vs_arml"]) else f"{r['device_s_vs_arml']:.2f}x"
        label = r["method"] + (f" ({r['kind']})" if r["kind"] not in (r["method"], "fixed") else "") \
            + (f" {r['selected_weights']}" if r["selected_weights"] else "")
        rows.append([budget_text(data.budget_key, r["budget"]), label, f"{r['trials_done']}/{r['trials']}",
                     seconds(r["cpu_s"]), seconds(r["gpu_s"]), seconds(r["wall_s"]), ratio,
                     pct(r["test_acc_mean"], r["test_acc_ci95"]), r["arml_verdict"]])
    header = ["budget", "method", "trials done", "CPU s", "GPU s", "wall s", f"{unit}-s vs ARML",
              "test acc % (95% CI)", "ARML vs this (paired)"]
    return "\n".join([
        f"# {study}: compute cost of ARML vs the other methods", "", cost_verdict(data, cost), "",
        md_table(header, rows), "",
        f"- Device-seconds are {unit}-seconds: "
        + ("GPU fraction held x wall time, summed over trials." if unit == "GPU" else
           "CPU time of every trial's processes, summed over trials (no GPUs were used)."),
        "- Costs count every trial that ran, failed ones included; a grid search's cost is all its points "
        "(ASHA-stopped points with what they used). `device_s_to_best` in compute_cost.csv: what a search "
        "spent until the trial it selects, in the order Tune started them.",
        "- A TPE search's accuracy: per seed, the sampled trial with the best validation accuracy.",
        "- Accuracy: test accuracy at the best validation step, mean and 95% CI (Student t) over seeds; "
        "for a grid search, of the grid point (shown in brackets) with the best mean validation accuracy.",
        "- \"ARML vs this\": the paired verdict of ARML against the method's validation-chosen trials over "
        "common seeds (better / as good / worse / not decided; margin and intervals in comparisons.md). "
        "Overlapping unpaired intervals decide nothing; only this column does.",
        "- Device-seconds exclude each Ray worker's one-off start-up (imports), so identical trials cost the same "
        "whichever runs first.",
        "",
    ])


def relationships_markdown(data: RunData) -> str:
    """Paper Table 3: per ARML method and budget, the auxiliary tasks with the highest and lowest final weight."""
    names = list(data.plan.aux_names)
    main = (data.plan.trials[0].config.main_attribute if data.plan.trials else "") or "the main task"
    k = len(names)
    top_n = min(5, math.ceil(k / 2))
    bottom_n = min(5, k - top_n)
    lines = [f"# {data.plan.study}: auxiliary tasks most and least related to {main}", "",
             f"Final ARML weight of each of the {k} auxiliary tasks (the weight at each trial's last evaluation, "
             f"mean ± 95% CI over seeds; the weights sum to {k}, so 1 is the uniform weight).", ""]
    methods = [m for m in data.methods if data.weighting[m] == "arml"]
    if not methods:
        lines.append("No ARML method in this study: no learned relationships to show.")
    for method in methods:
        for budget in data.budgets or [math.nan]:
            weights = final_weights(data, method, budget).sort_values("weight_mean", ascending=False, kind="stable")
            title = f"## {method}, {budget_text(data.budget_key, budget)}"
            if weights.empty:
                lines += [title, "", "No finished trials.", ""]
                continue
            top, bottom = weights.head(top_n), weights.tail(bottom_n).iloc[::-1]
            rows = []
            for i in range(max(len(top), len(bottom))):
                cells = [str(i + 1)]
                for part in (top, bottom):
                    if i < len(part):
                        r = part.iloc[i]
                        half = "" if math.isnan(r["weight_ci95"]) else f" ± {r['weight_ci95']:.3f}"
                        cells += [str(r["task"]), f"{r['weight_mean']:.3f}{half}"]
                    else:
                        cells += ["", ""]
                rows.append(cells)
            seeds = int(weights["seeds"].max())
            lines += [title + f" ({seeds} seed{'s' if seeds != 1 else ''})", "",
                      md_table(["rank", "most related", "weight", "least related", "weight"], rows), ""]
    return "\n".join(lines)

"""A cell's tables, as DataFrames: the data requirement (accuracy per method and label budget, each method's value
its selection's choice), the labels needed to reach a target, compute cost with the paired verdict of ARML against
each method, and each search's cost against accuracy as it goes."""

from __future__ import annotations

import math

import pandas as pd

from orchestrator.analysis.run_data import RunData, budget_rows
from orchestrator.analysis.stats import mean_ci
from orchestrator.analysis.verdicts import verdict_of
from orchestrator.store.schema import BEST_VAL_ACC, CPU_S, DONE, ENDED, GPU_S, TEST_AT_BEST_VAL, WALL_S

POINT_COLUMNS = ["method", "weighting", "budget_key", "budget", "seeds", "test_acc_mean", "test_acc_ci95",
                 "test_acc_low", "test_acc_high", "val_acc_mean", "selected_weights"]


def data_requirement(data: RunData) -> pd.DataFrame:
    """Paper Fig. 2: one row per (method, budget) with finished trials: n, test accuracy mean/CI (fractions) of the
    validation-chosen trials, their mean best validation accuracy, and for a grid search the point it chose
    ('[1, 0]')."""
    out = []
    done = data.done
    for method in data.methods:
        mine = done[done["method"] == method]
        for budget in data.budgets or [math.nan]:
            here = budget_rows(mine, budget)
            if here.empty:
                continue
            here, selected = data.selection(method).chosen(here)
            n, mean, half = mean_ci(here[TEST_AT_BEST_VAL])
            out.append({"method": method, "weighting": data.weighting[method], "budget_key": data.budget_key,
                        "budget": budget, "seeds": n, "test_acc_mean": mean, "test_acc_ci95": half,
                        "test_acc_low": mean - half, "test_acc_high": mean + half,
                        "val_acc_mean": float(here[BEST_VAL_ACC].mean()), "selected_weights": selected})
    return pd.DataFrame(out, columns=POINT_COLUMNS)


def labels_needed(curve: list[tuple[float, float]], target: float) -> tuple[float, str]:
    """Labels where the mean curve [(budget, accuracy)] first reaches `target`, by linear interpolation
    between the budgets around the crossing: (NaN, why) if never reached."""
    curve = sorted((b, a) for b, a in curve if not math.isnan(a))
    if not curve:
        return math.nan, "no finished trials"
    previous = None
    for budget, accuracy in curve:
        if accuracy >= target:
            if previous is None:
                return budget, "reached at the smallest budget (an upper bound)"
            b0, a0 = previous
            return b0 + (target - a0) / (accuracy - a0) * (budget - b0), ""
        previous = (budget, accuracy)
    return math.nan, f"not reached up to {curve[-1][0]:g}"


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
    device-seconds relative to ARML (none for a method none of whose trials ended: a study stopped before a search
    ran had it cost 0.0x ARML), accuracy with 95% CI, and the paired verdict of ARML against it."""
    paired = pd.DataFrame(columns=["method", "versus", "budget", "verdict"]) if paired is None else paired
    arml = data.reference("arml")
    use_gpu = float(data.trials[GPU_S].fillna(0).sum()) > 0
    out = []
    for budget in data.budgets or [math.nan]:
        here = budget_rows(data.trials, budget)
        at = budget_rows(points, budget)
        device = {m: float(here.loc[here["method"] == m, GPU_S if use_gpu else CPU_S].fillna(0).sum())
                  for m in data.methods}
        ran = {m: bool(here.loc[here["method"] == m, "status"].isin(ENDED).any()) for m in data.methods}
        for method in data.methods:
            mine = here[here["method"] == method]
            if mine.empty:
                continue
            point = at[at["method"] == method]
            mean, half, low, high = (float(point[c].iloc[0]) if len(point) else math.nan for c in
                                     ("test_acc_mean", "test_acc_ci95", "test_acc_low", "test_acc_high"))
            arml_s = device.get(arml, 0.0) if arml and ran.get(arml) and ran[method] else 0.0
            out.append({
                "budget": budget, "method": method, "kind": data.kind(method), "trials": len(mine),
                "trials_done": int(mine["status"].isin(DONE).sum()),
                CPU_S: float(mine[CPU_S].fillna(0).sum()), GPU_S: float(mine[GPU_S].fillna(0).sum()),
                WALL_S: float(mine[WALL_S].fillna(0).sum()), "device": "GPU" if use_gpu else "CPU",
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
    column = GPU_S if device == "GPU" else CPU_S
    selection = data.selection(method)
    if not selection.searches:
        return float(mine[column].fillna(0).sum())
    chosen = str(point["selected_weights"].iloc[0]) if len(point) else ""
    total = 0.0
    for _, rows in mine.sort_values("order").groupby("seed"):
        done = rows[rows["status"].isin(DONE) & rows[BEST_VAL_ACC].notna()]
        if done.empty:
            total += float(rows[column].fillna(0).sum())
            continue
        last = selection.spent_to_choice(rows, done, chosen)
        upto = rows.loc[rows["order"] <= rows.loc[last, "order"]]
        total += float(upto[column].fillna(0).sum())
    return total


def device_of(cost: pd.DataFrame) -> str:
    return str(cost["device"].iloc[0]) if len(cost) else "CPU"


def cost_vs_accuracy(data: RunData, points: pd.DataFrame, cost: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(each search method's best-so-far curve, the other methods as single points: device-seconds per seed
    and test accuracy mean/CI); both empty when the study has no search over weights."""
    searches = data.searches()
    if not searches:
        return pd.DataFrame(), pd.DataFrame()
    device = device_of(cost)
    budgets = data.budgets or [math.nan]
    column = GPU_S if device == "GPU" else CPU_S
    progress = pd.concat([data.selection(m).progress(m, b, budget_rows(data.trials[data.trials["method"] == m], b)
                                                      .sort_values("order"), column)
                          for m in searches for b in budgets], ignore_index=True)
    singles = []
    for _, r in cost[~cost["method"].isin(searches)].iterrows():
        seeds = max(1, len(set(data.trials.loc[data.trials["method"] == r["method"], "seed"])))
        singles.append({"method": r["method"], "budget": r["budget"], "trials": r["trials"],
                        "device_s": r["device_s"] / seeds, "seeds": seeds, "test_acc_mean": r["test_acc_mean"],
                        "test_acc_ci95": r["test_acc_ci95"]})
    return progress, pd.DataFrame(singles, columns=list(progress.columns))

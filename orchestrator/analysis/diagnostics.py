"""Why a learned weighting weighted the tasks as it did: each method's final auxiliary weights against each task's
gradient size relative to the main task's and against its alignment with it (the records' `grad_norm_ratio/<task>`
and `grad_cos/<task>`, written when a study sets `diagnostics = true`).

Per learned method (its weights move during a run) and label budget, per auxiliary task: the weight at the last
evaluation, and the size ratio |g_k| / |g_main| and the cosine cos(g_k, g_main) averaged over the run's
evaluations (the weights integrate the whole run, so the run's average is what they can follow), each then
averaged over finished seeds. Across the K tasks, Pearson's r of the weight with the logarithm of the size ratio
(sizes spread over orders of magnitude and act multiplicatively; the figure's size axis is logarithmic, so r
measures the trend one sees there) and with the cosine, each with the two-sided p-value of r = 0.

A method's weights "follow size rather than alignment" when |r_size| >= 0.7 with p < 0.05 and |r_cos| < 0.3. Why
these: r = 0.7 means gradient size accounts for about half of the variance of the weights across tasks (r^2 =
0.49), r = 0.3 for under a tenth (0.09); p < 0.05 keeps a small K from raising the warning by chance (with K = 4
even |r| = 0.9 is not significant; with K = 8 the 5% critical value of |r| is 0.71). The warning is a reading
aid, not a verdict: it says the weights track how hard a task pulls rather than whether it pulls the main task's
way, which is what a weighting for the main task is meant to track.

The report draws and writes these tables (orchestrator/report/diagnostics.py).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from orchestrator.analysis.run_data import RunData, budget_rows, weights_move
from orchestrator.analysis.stats import pearson
from orchestrator.store.schema import WEIGHT_PREFIX
from orchestrator.study.plan import SINGLE

SIZE_PREFIX = "grad_norm_ratio/"
COS_PREFIX = "grad_cos/"
R_SIZE = 0.7        # |r| with the size ratio at or above this (and significant) ...
R_COS = 0.3         # ... while |r| with the cosine below this: "follows size rather than alignment"
P_VALUE = 0.05
TASK_COLUMNS = ["method", "budget", "task", "seeds", "weight", "grad_norm_ratio", "grad_cos"]
SUMMARY_COLUMNS = ["method", "budget", "tasks", "seeds", "r_size", "p_size", "r_cos", "p_cos", "follows_size"]


def has_diagnostics(data: RunData) -> bool:
    """Whether the records hold the gradient diagnostics of at least one auxiliary task."""
    return not data.rows.empty and any(str(c).startswith(SIZE_PREFIX) for c in data.rows.columns)


def learned_methods(data: RunData) -> list[str]:
    """The methods whose weights move during a run (Uniform, fixed weights and searches have none to explain)."""
    names = list(data.plan.aux_names)
    done = data.done
    out = []
    for method in data.methods:
        if data.selection(method).kind != SINGLE:   # a grid's, a search's, a population's: chosen, not learned
            continue
        ids = done.loc[done["method"] == method, "trial_id"]
        if weights_move(data.rows[data.rows["trial_id"].isin(ids)], names):
            out.append(method)
    return out


def task_table(data: RunData) -> pd.DataFrame:
    """One row per learned method, budget and auxiliary task: final weight, run-average size ratio and cosine,
    each averaged over the finished seeds that recorded them."""
    if not has_diagnostics(data):
        return pd.DataFrame(columns=TASK_COLUMNS)
    names = [n for n in data.plan.aux_names if f"{SIZE_PREFIX}{n}" in data.rows]
    out = []
    for method in learned_methods(data):
        for budget in data.budgets or [math.nan]:
            ids = budget_rows(data.done[data.done["method"] == method], budget)["trial_id"]
            rows = data.rows[data.rows["trial_id"].isin(ids)]
            if rows.empty:
                continue
            by_trial = rows.groupby("trial_id")
            last = by_trial.tail(1).set_index("trial_id")
            for name in names:
                weight = last.get(f"{WEIGHT_PREFIX}{name}")
                size = by_trial[f"{SIZE_PREFIX}{name}"].mean()
                cos = by_trial[f"{COS_PREFIX}{name}"].mean() if f"{COS_PREFIX}{name}" in rows else size * math.nan
                both = pd.DataFrame({"w": weight, "s": size, "c": cos}).dropna()
                if both.empty:
                    continue
                out.append({"method": method, "budget": budget, "task": name, "seeds": len(both),
                            "weight": float(both["w"].mean()), "grad_norm_ratio": float(both["s"].mean()),
                            "grad_cos": float(both["c"].mean())})
    return pd.DataFrame(out, columns=TASK_COLUMNS)


def follows_size(r_size: float, p_size: float, r_cos: float) -> bool:
    """The warning's rule (see the module's docstring)."""
    if any(math.isnan(v) for v in (r_size, p_size, r_cos)):
        return False
    return abs(r_size) >= R_SIZE and p_size < P_VALUE and abs(r_cos) < R_COS


def summary_table(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per method and budget: the correlations across tasks of the final weight with size and with alignment."""
    out = []
    for (method, budget), rows in tasks.groupby(["method", "budget"], sort=False, dropna=False):
        r_size, p_size = pearson(rows["weight"], np.log(rows["grad_norm_ratio"].clip(lower=1e-12)))
        r_cos, p_cos = pearson(rows["weight"], rows["grad_cos"])
        out.append({"method": method, "budget": budget, "tasks": len(rows), "seeds": int(rows["seeds"].min()),
                    "r_size": r_size, "p_size": p_size, "r_cos": r_cos, "p_cos": p_cos,
                    "follows_size": follows_size(r_size, p_size, r_cos)})
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)

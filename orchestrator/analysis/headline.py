"""A study's headline, the few numbers a user asks for first: per label budget (per cell in a sweep), ARML's paired
verdict against Uniform and against a search's validation choice (the grid's when there is one), and what that
search cost relative to ARML's single run. And the numbers the study's MLflow parent run carries as metrics
(`parent_metrics`): compute cost per method, each search's cost relative to ARML, labels to reach each target and
the data-requirement curve with the label budget as MLflow's `step`, so its own charts draw the curve."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from orchestrator.analysis.run_data import RunData
from orchestrator.analysis.tables import compute_cost, data_requirement, labels_to_reach
from orchestrator.analysis.verdicts import comparisons
from orchestrator.study.vocabulary import BY_FIELD


@dataclass(frozen=True)
class Versus:
    """ARML against one reference at one budget: the paired verdict and the mean difference with its 95% interval,
    in accuracy points."""

    versus: str
    verdict: str
    mean_diff: float
    low: float
    high: float
    n_pairs: int


@dataclass(frozen=True)
class HeadlineRow:
    cell: dict[str, Any]
    budget_key: str
    budget: float
    arml: str
    vs_uniform: Versus | None
    vs_search: Versus | None
    search: str | None
    cost_ratio: float          # the search's device-seconds / ARML's, at this budget (NaN without both)


@dataclass
class CellNumbers:
    """One cell's tables, computed once (the headline and the parent run's metrics both come from them)."""

    cell: dict[str, Any]
    data: RunData
    paired: pd.DataFrame
    points: pd.DataFrame
    cost: pd.DataFrame
    reach: pd.DataFrame = field(default_factory=pd.DataFrame)


def cell_numbers(data: RunData, margin_points: float) -> list[CellNumbers]:
    out = []
    for cell, sub in data.cells():
        points = data_requirement(sub)
        paired = comparisons(sub, margin_points)
        out.append(CellNumbers(cell, sub, paired, points, compute_cost(sub, points, paired),
                               labels_to_reach(sub, points)))
    return out


def main_search(data: RunData) -> str | None:
    """The search ARML's headline is set against: the first grid (every point run: the search a paper runs), else
    the first search of any kind."""
    searches = data.searches()
    grids = [m for m in searches if data.kinds.get(m) == "grid"]
    return (grids or searches or [None])[0]


def _versus(paired: pd.DataFrame, method: str, versus: str | None, budget: float) -> Versus | None:
    if not versus or paired.empty:
        return None
    at = paired[(paired["method"] == method) & (paired["versus"] == versus)
                & (paired["budget"].isna() if math.isnan(budget) else paired["budget"] == budget)]
    if at.empty:
        return None
    r = at.iloc[0]
    return Versus(versus, str(r["verdict"]), 100 * float(r["mean_diff"]), 100 * float(r["diff_low"]),
                  100 * float(r["diff_high"]), int(r["n_pairs"]))


def headline(numbers: list[CellNumbers]) -> list[HeadlineRow]:
    """Per cell and budget where the study has an ARML method: its verdicts against Uniform and the main search, and
    that search's cost relative to it. Empty for a study without ARML."""
    rows = []
    for n in numbers:
        data = n.data
        arml = data.reference("arml")
        if not arml:
            continue
        uniform, search = data.reference("uniform"), main_search(data)
        for budget in data.budgets or [math.nan]:
            ratio = math.nan
            if search:
                at = n.cost[(n.cost["budget"].isna() if math.isnan(budget) else n.cost["budget"] == budget)
                            & (n.cost["method"] == search)]
                ratio = float(at["device_s_vs_arml"].iloc[0]) if len(at) else math.nan
            rows.append(HeadlineRow(n.cell, data.budget_key, budget, arml, _versus(n.paired, arml, uniform, budget),
                                    _versus(n.paired, arml, search, budget), search, ratio))
    return rows


def budget_step(key: str, budget: float) -> int:
    """A label budget as MLflow's integer `step`: labels or labels per class as they are; a fraction of the
    training images in basis points (1% = 100)."""
    if budget is None or math.isnan(budget):
        return 0
    kind = BY_FIELD.get(key)
    return int(round(budget * 10000)) if kind is not None and kind.percent else int(round(budget))


def cell_prefix(cell: dict[str, Any]) -> str:
    """'' without a sweep; 'aux_count-4/' in one (MLflow's metric names take letters, digits, _ - . / and spaces)."""
    if not cell:
        return ""
    import re

    return re.sub(r"[^A-Za-z0-9_. /-]+", "-", "_".join(f"{key}-{value}" for key, value in cell.items())) + "/"


def parent_metrics(numbers: list[CellNumbers]) -> list[tuple[str, float, int]]:
    """(name, value, step) for the study's MLflow parent run: `data_requirement/<method>` (test accuracy of the
    validation-chosen trials, step = label budget), `cost/cpu_s/<method>`, `cost/gpu_s/<method>` and
    `cost/device_s/<method>` (all the method's trials, step 0), `cost_ratio/<search>` (its device-seconds over ARML's,
    step = label budget) and `labels_to_reach/<method>/<target>` (step 0); in a sweep each name is prefixed with
    its cell."""
    out: list[tuple[str, float, int]] = []
    for n in numbers:
        prefix, key = cell_prefix(n.cell), n.data.budget_key
        for _, r in n.points.iterrows():
            out.append((f"{prefix}data_requirement/{r['method']}", float(r["test_acc_mean"]),
                        budget_step(key, r["budget"])))
        for method, rows in n.cost.groupby("method", sort=False):
            out.append((f"{prefix}cost/cpu_s/{method}", float(rows["cpu_s"].sum()), 0))
            if float(rows["gpu_s"].sum()) > 0:
                out.append((f"{prefix}cost/gpu_s/{method}", float(rows["gpu_s"].sum()), 0))
            out.append((f"{prefix}cost/device_s/{method}", float(rows["device_s"].sum()), 0))
        for search in n.data.searches():
            for _, r in n.cost[n.cost["method"] == search].iterrows():
                out.append((f"{prefix}cost_ratio/{search}", float(r["device_s_vs_arml"]),
                            budget_step(key, r["budget"])))
        for _, r in n.reach.iterrows():
            out.append((f"{prefix}labels_to_reach/{r['method']}/{r['target']:g}", float(r["labels_needed"]), 0))
    return [(name, value, step) for name, value, step in out if not math.isnan(value)]


def verdict_tags(numbers: list[CellNumbers], limit: int = 400) -> dict[str, str]:
    """`verdict/<budget>/<method> vs <reference>` -> 'as good' etc., every paired comparison of the study (in a sweep,
    its cell first), at most `limit` of them (ARML's first)."""
    tags: dict[str, str] = {}
    for n in numbers:
        prefix, arml = cell_prefix(n.cell), n.data.reference("arml")
        rows = n.paired.sort_values("method", key=lambda s: s != arml, kind="stable") if len(n.paired) else n.paired
        for _, r in rows.iterrows():
            budget = "all" if pd.isna(r["budget"]) else f"{r['budget']:g}"
            tags[f"verdict/{prefix}{budget}/{r['method']} vs {r['versus']}"] = str(r["verdict"])
    return dict(list(tags.items())[:limit])

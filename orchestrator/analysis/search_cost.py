"""Searches over the fixed auxiliary weights against single runs (ARML, its cheap variant, Uniform), cell by cell
of a study: how much device time each search needs to become "as good" as one ARML run, the verdicts of every
method against ARML, and each single run against each search given `MULTIPLE` (16) times its device-seconds. With a
sweep over the number K of auxiliary tasks (`aux_count`), this is the K-scaling report.

For every cell and search method, each seed's search is read in plan order as a best-so-far curve: after its
first i trials, the trial with the best validation accuracy so far (a grid: the point with the best mean
validation accuracy over seeds among its first i points) and that trial's test accuracy. The search is "as good"
as ARML after i trials when the per-seed differences (search minus ARML, paired by seed) have a 95% Student-t
interval whose lower bound lies above -margin (the study's `[report] margin`), the rule of
`orchestrator.analysis.verdicts`. Its cost is the mean over seeds of the device-seconds its first i trials took,
shown relative to one ARML run's; a search that never gets there is shown at its total cost as "never". Selection
is on validation only; each test accuracy is read once, for the selected trial.

Files (in the report folder): `searches.csv`/`.md` (one row per cell and method), `searches_verdicts.csv` (each
method against ARML, a search at its 4-, 16- and 64-trial prefixes and at its end), `searches_budgeted.csv` (each
single-run method against each search given 16 times its device-seconds: the search's longest prefix that fits,
per seed) and `searches.png` (the cost to match ARML along K).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from orchestrator.analysis.run_data import RunData, budget_rows
from orchestrator.analysis.selection import Curves, at_prefix
from orchestrator.analysis.verdicts import AS_GOOD, BETTER, compare, per_seed
from orchestrator.store.schema import BEST_VAL_ACC, CPU_S, GPU_S
from orchestrator.study.plan import SINGLE

PREFIXES = (4, 16, 64)       # search budgets read as prefixes of one longer search
COLUMNS = ["K", "budget", "method", "kind", "trials_per_seed", "device", "arml_device_s", "device_s_per_trial",
           "as_good_after", "device_s_to_as_good", "ratio_to_arml", "never", "total_device_s", "ratio_total",
           "seeds", "test_acc"]
BUDGETED_COLUMNS = ["K", "budget", "method", "search", "multiple", "method_device_s", "trials",
                    "search_device_s", "n_pairs", "mean_diff", "diff_low", "diff_high", "margin", "verdict",
                    "method_val_acc", "chosen"]
MULTIPLE = 16.0              # the search's allowance, in units of one ARML run's device-seconds
VERDICT_COLUMNS = ["K", "budget", "method", "kind", "trials", "n_pairs", "mean_diff", "diff_low", "diff_high",
                   "margin", "verdict"]


def _column(data: RunData) -> tuple[str, str]:
    """('GPU', 'gpu_s') when the run used GPUs, else ('CPU', 'cpu_s')."""
    gpu = pd.to_numeric(data.trials.get(GPU_S), errors="coerce")
    return ("GPU", GPU_S) if gpu is not None and float(gpu.fillna(0).sum()) > 0 else ("CPU", CPU_S)


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else math.nan


def paired(method: pd.Series, arml: pd.Series, margin: float) -> dict[str, Any]:
    """The paired comparison of method - arml over common seeds (orchestrator.analysis.verdicts.compare): n, mean,
    low, high and the verdict."""
    row = compare(method, arml, margin)
    return {key: row[key] for key in ("n_pairs", "mean_diff", "diff_low", "diff_high", "verdict")}


def _curves(data: RunData, method: str, budget: float, column: str, cache: dict[tuple, Curves]) -> Curves:
    """A search's curves (its selection's `curves`), computed once per run folder, search and budget (the headline
    and the budgeted comparisons read the same curves)."""
    key = (method, budget, column)
    if key not in cache:
        mine = budget_rows(data.trials[data.trials["method"] == method], budget).sort_values("order")
        cache[key] = data.selection(method).curves(mine, column)
    return cache[key]


def search_rows(data: RunData, method: str, budget: float, column: str, reference: pd.Series, base: dict,
                margin: float, cache: dict[tuple, Curves]) -> tuple[dict, list[dict]]:
    """A search's headline row (the first prefix as good as ARML, its cost) and its verdicts at the prefixes."""
    curves = _curves(data, method, budget, column, cache)
    n = max((len(c) for c in curves.values()), default=0)
    found, found_cost = math.nan, math.nan
    for i in range(1, n + 1):
        tests, spent = at_prefix(curves, i)
        if paired(tests, reference, margin)["verdict"] in (BETTER, AS_GOOD):
            found, found_cost = float(i), spent
            break
    final, total = at_prefix(curves, n) if n else (pd.Series(dtype="float64"), math.nan)
    arml_cost = base["arml_device_s"]
    row = {**base, "method": method, "kind": data.kind(method), "trials_per_seed": n,
           "device_s_per_trial": total / n if n else math.nan, "as_good_after": found,
           "device_s_to_as_good": found_cost, "ratio_to_arml": _ratio(found_cost, arml_cost),
           "never": math.isnan(found), "total_device_s": total, "ratio_total": _ratio(total, arml_cost),
           "seeds": len(curves), "test_acc": float(final.mean()) if len(final) else math.nan}
    verdicts = [{"K": base["K"], "budget": budget, "method": method, "kind": data.kind(method), "trials": i,
                 "margin": margin, **paired(at_prefix(curves, i)[0], reference, margin)}
                for i in sorted({p for p in PREFIXES if p < n} | ({n} if n else set()))]
    return row, verdicts


def budgeted_rows(data: RunData, margin: float, multiple: float = MULTIPLE,
                  cache: dict[tuple, Curves] | None = None) -> list[dict]:
    """Each single-run method (ARML in its variants, Uniform, Auto-Lambda, ...: every method that is not a search)
    against each search given `multiple` times that method's device-seconds per run: the search's longest prefix
    whose mean cost per seed fits, and the paired verdict of the method minus the search's validation-selected
    trial after that prefix. A search whose first trial already costs more is left out (no prefix fits).
    `chosen` marks the single-run method a user would pick without looking at test: the best mean validation
    accuracy over its seeds at that budget (`method_val_acc`; the first in study order on a tie; a population is
    not one run). A population is given the search at its own compute (1x), not 16x."""
    device, column = _column(data)
    k = data.k
    searches = data.searches()
    singles = [m for m in data.methods if m not in searches]
    rows: list[dict] = []
    for budget in data.budgets or [math.nan]:
        val = {m: float(budget_rows(data.done[data.done["method"] == m], budget)[BEST_VAL_ACC].mean())
               for m in singles}
        finite = {m: v for m, v in val.items() if not math.isnan(v) and data.selection(m).kind == SINGLE}
        chosen = max(finite, key=finite.__getitem__) if finite else None
        for method in singles:
            done = budget_rows(data.done[data.done["method"] == method], budget)
            selection = data.selection(method)
            cost = selection.run_cost(done, column)
            if math.isnan(cost) or cost <= 0:
                continue
            mine = per_seed(data, method, budget)
            allowance = selection.multiple or multiple   # a population: the search gets the same compute
            for search in searches:
                curves = _curves(data, search, budget, column, {} if cache is None else cache)
                n = max((len(c) for c in curves.values()), default=0)
                fits = [i for i in range(1, n + 1) if at_prefix(curves, i)[1] <= allowance * cost]
                if not fits:
                    continue
                tests, spent = at_prefix(curves, fits[-1])
                rows.append({"K": k, "budget": budget, "method": method, "search": search, "multiple": allowance,
                             "method_device_s": cost, "trials": fits[-1], "search_device_s": spent,
                             "margin": margin, **paired(mine, tests, margin), "method_val_acc": val[method],
                             "chosen": method == chosen})
    return rows


def run_rows(data: RunData, margin: float, cache: dict[tuple, Curves] | None = None
             ) -> tuple[list[dict], list[dict]]:
    """The headline rows and the verdict rows of one run folder (one K); none without an ARML method."""
    k = data.k
    arml = data.reference("arml")
    device, column = _column(data)
    rows: list[dict] = []
    verdicts: list[dict] = []
    if arml is None:
        return rows, verdicts
    searches = data.searches()
    for budget in data.budgets or [math.nan]:
        reference = per_seed(data, arml, budget)
        arml_done = budget_rows(data.done[data.done["method"] == arml], budget)
        arml_cost = data.selection(arml).run_cost(arml_done, column)
        base = {"K": k, "budget": budget, "device": device, "arml_device_s": arml_cost}
        for method in data.methods:
            if method in searches:
                row, more = search_rows(data, method, budget, column, reference, base, margin,
                                        {} if cache is None else cache)
                rows.append(row)
                verdicts += more
                continue
            done = budget_rows(data.done[data.done["method"] == method], budget)
            cost = data.selection(method).run_cost(done, column)
            rows.append({**base, "method": method, "kind": data.kind(method), "trials_per_seed": 1,
                         "device_s_per_trial": cost, "as_good_after": math.nan, "device_s_to_as_good": math.nan,
                         "ratio_to_arml": math.nan, "never": False, "total_device_s": cost,
                         "ratio_total": _ratio(cost, arml_cost), "seeds": int(done["seed"].nunique()),
                         "test_acc": float(per_seed(data, method, budget).mean())})
            if method != arml:
                verdicts.append({"K": k, "budget": budget, "method": method, "kind": data.kind(method), "trials": 1,
                                 "margin": margin, **paired(per_seed(data, method, budget), reference, margin)})
    return rows, verdicts


def searches_tables(cells: list[tuple[dict[str, Any], RunData]], margin_points: float | None = None,
                    multiple: float = MULTIPLE) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(headline, verdicts, budgeted) of each cell's searches against its single runs, with the cell's swept
    values as columns in front, sorted by K."""
    rows, verdicts, budgeted = [], [], []
    for cell, data in cells:
        points = margin_points if margin_points is not None else float(data.plan.margin)
        cache: dict[tuple, Curves] = {}
        r, v = run_rows(data, points / 100.0, cache)
        rows += [{**cell, **row} for row in r]
        verdicts += [{**cell, **row} for row in v]
        budgeted += [{**cell, **row} for row in budgeted_rows(data, points / 100.0, multiple, cache)]
    front = [key for key in dict.fromkeys(k for cell, _ in cells for k in cell) if key not in ("K", "budget")]

    def frame(items: list[dict], columns: list[str]) -> pd.DataFrame:
        table = pd.DataFrame(items, columns=[*front, *columns])
        return table.sort_values(["K", "budget"], kind="stable").reset_index(drop=True)

    return frame(rows, COLUMNS), frame(verdicts, VERDICT_COLUMNS), frame(budgeted, BUDGETED_COLUMNS)


def has_searches(data: RunData) -> bool:
    """Whether a study compares searches with an ARML method (the searches files are written then)."""
    return bool(data.searches()) and data.reference("arml") is not None

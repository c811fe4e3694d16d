"""How each kind of method chooses among its trials, on validation only (one class per way of choosing, as
DomainBed's model_selection.py has one per rule); the kind is written into plan.json for every trial.

- a single run (`single`): its one trial per seed;
- a grid search (`grid`): the point with the best mean validation accuracy over seeds at that budget, the same
  point in every seed;
- a search over the weights (`search`: TPE, random): per seed, the draw with the best validation accuracy;
- a population trained together (`population`: population-based training): per seed, the member with the best
  validation accuracy at the end; its cost is the whole population's.

Each also reads a search as it goes: after its first i trials (plan order, the order Tune starts them), the
choice among those, its test accuracy and the device-seconds spent so far (`curves`, `progress`).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.analysis.stats import mean_ci
from orchestrator.store.schema import BEST_VAL_ACC, DONE, TEST_AT_BEST_VAL
from orchestrator.study.plan import GRID, POPULATION, SEARCH, SINGLE

Curves = dict[int, list[tuple[float, float]]]   # per seed: (device-seconds so far, test accuracy of the choice)
PROGRESS_COLUMNS = ["method", "budget", "trials", "device_s", "seeds", "test_acc_mean", "test_acc_ci95"]


def weights_text(point: Any) -> str:
    """'[1, 0.5]' for a grid point stored as JSON text."""
    if not isinstance(point, str) or not point:
        return ""
    return "[" + ", ".join(f"{float(w):g}" for w in json.loads(point)) + "]"


def point_order(frame: pd.DataFrame) -> list[str]:
    """A grid's points (JSON text) in plan order."""
    return list(dict.fromkeys(frame["grid_point"].tolist()))


def chosen_grid_point(done: pd.DataFrame) -> str:
    """The grid point (JSON text) with the best mean validation accuracy over seeds among finished trials of
    one grid at one budget: the grid's choice, never made on test."""
    means = {point: done.loc[done["grid_point"] == point, BEST_VAL_ACC].mean() for point in point_order(done)}
    return max(means, key=lambda p: (-math.inf if math.isnan(means[p]) else means[p]))


def _cost(value: Any) -> float:
    return 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


class Selection:
    """A single run: its one trial per seed is the method's value; it does not search."""

    kind = SINGLE
    searches = False       # its trials are a search's, read as it goes (cost against accuracy, searches.csv)
    multiple = None        # compared with a search given this multiple of its cost (None: the study's, 16)

    def label(self, data: Any, method: str) -> str | None:
        """What a table calls the method's kind ('grid', 'tpe'); None: its weighting's name."""
        return None

    def run_cost(self, done: pd.DataFrame, column: str) -> float:
        """One run's device-seconds: the median over its seeds' trials. The first trial on each Ray worker pays
        one-off start-up (data, first calls) and would make whichever method the plan starts with look dearer on a
        mean of 5."""
        return float(done[column].fillna(0).median()) if len(done) else math.nan

    def chosen(self, done: pd.DataFrame) -> tuple[pd.DataFrame, str]:
        """(the trials chosen among `done`, one method's finished trials at one budget; the chosen weights as
        text, '' unless a grid chose a point)."""
        return done, ""

    def curves(self, mine: pd.DataFrame, column: str) -> Curves:
        """Per seed, after each of the method's trials in plan order (`mine`, sorted by it): the device-seconds
        spent so far (`column`) and the test accuracy of the choice so far (NaN before a finished trial)."""
        out: Curves = {}
        for seed, rows in mine.groupby("seed"):
            spent, best_val, best_test, curve = 0.0, -math.inf, math.nan, []
            for _, r in rows.iterrows():
                spent += _cost(r[column])
                if r["status"] in DONE and not math.isnan(r[BEST_VAL_ACC]) and r[BEST_VAL_ACC] > best_val:
                    best_val, best_test = float(r[BEST_VAL_ACC]), float(r[TEST_AT_BEST_VAL])
                curve.append((spent, best_test))
            out[int(seed)] = curve
        return out

    def progress(self, method: str, budget: float, mine: pd.DataFrame, column: str) -> pd.DataFrame:
        """The method's best result as it goes, for the cost-against-accuracy figure: after its i-th trial, the
        device-seconds spent so far and the test accuracy of the choice so far, each the mean over seeds (a seed's
        curve holds its last value once its trials are done)."""
        curves = list(self.curves(mine, column).values())
        out = []
        for i in range(max((len(c) for c in curves), default=0)):
            at = [c[min(i, len(c) - 1)] for c in curves]
            n, mean, half = mean_ci([a for _, a in at])
            out.append({"method": method, "budget": budget, "trials": i + 1,
                        "device_s": sum(s for s, _ in at) / len(at), "seeds": n, "test_acc_mean": mean,
                        "test_acc_ci95": half})
        return pd.DataFrame(out, columns=PROGRESS_COLUMNS)

    def spent_to_choice(self, rows: pd.DataFrame, done: pd.DataFrame, chosen: str) -> Any:
        """In one seed's trials (`rows`, plan order; `done` the finished ones), the index of the last trial run
        until the method had its choice (the choice itself); None: all of them."""
        return None


class SearchSelection(Selection):
    """A search over the weights (TPE, random): per seed, the draw with the best validation accuracy."""

    kind = SEARCH
    searches = True

    def label(self, data: Any, method: str) -> str | None:
        return str(data.trials.loc[data.trials["method"] == method, "search"].dropna().iloc[0])

    def chosen(self, done: pd.DataFrame) -> tuple[pd.DataFrame, str]:
        valid = done[done[BEST_VAL_ACC].notna()]
        return (valid.loc[valid.groupby("seed")[BEST_VAL_ACC].idxmax()] if len(valid) else valid), ""

    def spent_to_choice(self, rows: pd.DataFrame, done: pd.DataFrame, chosen: str) -> Any:
        return done[BEST_VAL_ACC].idxmax()


class GridSelection(Selection):
    """A grid search: the point with the best mean validation accuracy over seeds, the same in every seed."""

    kind = GRID
    searches = True

    def label(self, data: Any, method: str) -> str | None:
        return "grid"

    def chosen(self, done: pd.DataFrame) -> tuple[pd.DataFrame, str]:
        point = chosen_grid_point(done)
        return done[done["grid_point"] == point], weights_text(point)

    def curves(self, mine: pd.DataFrame, column: str) -> Curves:
        """After its first i points (plan order), the point with the best mean validation accuracy over seeds among
        those finished, and each seed's test accuracy of it."""
        points = point_order(mine)
        out: Curves = {}
        for i in range(1, len(points) + 1):
            seen = mine[mine["grid_point"].isin(points[:i])]
            done = seen[seen["status"].isin(DONE) & seen[BEST_VAL_ACC].notna()]
            chosen = chosen_grid_point(done) if len(done) else None
            for seed, rows in seen.groupby("seed"):
                spent = sum(_cost(c) for c in rows[column])
                pick = rows[(rows["grid_point"] == chosen) & rows["status"].isin(DONE)]
                test = float(pick[TEST_AT_BEST_VAL].iloc[0]) if len(pick) else math.nan
                out.setdefault(int(seed), []).append((spent, test))
        return out

    def progress(self, method: str, budget: float, mine: pd.DataFrame, column: str) -> pd.DataFrame:
        """With the results table's rule: after its first i points (plan order), the point with the best mean
        validation accuracy over seeds among those finished; the mean test accuracy over seeds of that point (so
        the last value is the table's) and the mean device-seconds per seed spent so far."""
        order = point_order(mine)
        seeds = max(1, mine["seed"].nunique())
        out = []
        for i in range(1, len(order) + 1):
            seen = mine[mine["grid_point"].isin(order[:i])]
            spent = float(seen[column].fillna(0).sum()) / seeds
            done = seen[seen["status"].isin(DONE) & seen[BEST_VAL_ACC].notna()]
            n, mean, half = (0, math.nan, math.nan)
            if len(done):
                n, mean, half = mean_ci(done.loc[done["grid_point"] == chosen_grid_point(done), TEST_AT_BEST_VAL])
            out.append({"method": method, "budget": budget, "trials": i, "device_s": spent, "seeds": n,
                        "test_acc_mean": mean, "test_acc_ci95": half})
        return pd.DataFrame(out, columns=PROGRESS_COLUMNS)

    def spent_to_choice(self, rows: pd.DataFrame, done: pd.DataFrame, chosen: str) -> Any:
        match = done[[weights_text(p) == chosen for p in done["grid_point"]]]
        return match.index[0] if len(match) else done.index[-1]


class PopulationSelection(SearchSelection):
    """Population-based training: per seed, the member with the best validation accuracy at the end (its best
    evaluation, as every trial's value); one run of it is the whole population, so its cost is the members' sum,
    and a search is given the same device-seconds (its own compute multiple, 1x) to compare with."""

    kind = POPULATION
    searches = False
    multiple = 1.0

    def label(self, data: Any, method: str) -> str | None:
        return "pbt"

    def run_cost(self, done: pd.DataFrame, column: str) -> float:
        """The population's device-seconds: its members' sum per seed, the median over seeds."""
        return float(done.groupby("seed")[column].sum(min_count=1).fillna(0).median()) if len(done) else math.nan


SELECTIONS: dict[str, Selection] = {SINGLE: Selection(), GRID: GridSelection(), SEARCH: SearchSelection(),
                                    POPULATION: PopulationSelection()}


def at_prefix(curves: Curves, i: int) -> tuple[pd.Series, float]:
    """(test accuracy per seed after the first i trials, mean device-seconds per seed spent on them); a seed
    with fewer trials keeps its last value."""
    tests, spent = {}, []
    for seed, curve in curves.items():
        if curve:
            s, t = curve[min(i, len(curve)) - 1]
            spent.append(s)
            if not math.isnan(t):
                tests[seed] = t
    return pd.Series(tests, dtype="float64"), (float(np.mean(spent)) if spent else math.nan)

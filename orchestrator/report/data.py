"""The numbers behind a study's report: per-trial results from the run folder, mean and 95% CI over seeds,
the grid point chosen on validation, and labels needed to reach a target accuracy.

Accuracy of a trial = its test accuracy at the step with the best validation accuracy (the last row's
`test_acc_at_best_val`). A grid search is one "method" whose value at a budget is the test accuracy of the
grid point with the best mean validation accuracy over seeds at that budget (never chosen on test).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from orchestrator.store.records import load_rows, trials_table
from orchestrator.store.schema import DONE as SCHEMA_DONE
from orchestrator.store.schema import WEIGHT_PREFIX, PlanFile, Trial, read_plan
from orchestrator.study.vocabulary import budget_fields

DONE = tuple(sorted(SCHEMA_DONE))      # trials whose results count (stopped: ended early by a scheduler)
# where a study without [budget] keeps its label budget: (setting, TrainConfig field), first non-zero wins


@dataclass
class RunData:
    """What a report is made of: the plan, one row per planned trial, every evaluation row."""

    plan: PlanFile
    trials: pd.DataFrame    # trials_table + effective budget_key/budget, accuracy and cost columns
    rows: pd.DataFrame      # load_rows (one per trial per evaluation)
    methods: list[str]      # study order
    weighting: dict[str, str]

    @property
    def done(self) -> pd.DataFrame:
        return self.trials[self.trials["status"].isin(DONE)]

    @property
    def budget_key(self) -> str:
        keys = self.trials["budget_key"].dropna().unique()
        return str(keys[0]) if len(keys) else "label_budget"

    @property
    def budgets(self) -> list[float]:
        return sorted(self.trials["budget"].dropna().unique().tolist())

    def is_grid(self, method: str) -> bool:
        rows = self.trials[self.trials["method"] == method]
        return self.weighting[method] == "fixed" and bool(rows["grid_point"].notna().any()) \
            and not self.is_search(method)

    def is_search(self, method: str) -> bool:
        """A Bayesian search (its weights drawn per trial, different in every seed)."""
        return "search" in self.trials and bool(
            self.trials.loc[self.trials["method"] == method, "search"].notna().any())

    def searches(self) -> list[str]:
        """The methods that search over fixed weights (grid searches, ASHA grids, TPE), in study order."""
        return [m for m in self.methods if self.is_grid(m) or self.is_search(m)]

    def scheduler(self, method: str) -> str | None:
        if "scheduler" not in self.trials:
            return None
        names = self.trials.loc[self.trials["method"] == method, "scheduler"].dropna()
        return str(names.iloc[0]) if len(names) else None

    def kind(self, method: str) -> str:
        """'grid', 'grid + asha', 'tpe', 'tpe + asha' or the weighting's name."""
        if self.is_search(method):
            base = str(self.trials.loc[self.trials["method"] == method, "search"].dropna().iloc[0])
        elif self.is_grid(method):
            base = "grid"
        else:
            return self.weighting[method]
        return base + (f" + {self.scheduler(method)}" if self.scheduler(method) else "")

    def reference(self, weighting: str) -> str | None:
        """The first method using `weighting` (the label 'uniform'/'arml' preferred)."""
        if self.weighting.get(weighting) == weighting:
            return weighting
        return next((m for m in self.methods if self.weighting[m] == weighting), None)

    @property
    def k(self) -> int:
        """The number of auxiliary tasks of these trials (a sweep's aux_count, else the study's)."""
        if "aux_count" in self.trials and len(self.trials):
            return int(self.trials["aux_count"].iloc[0])
        return len(self.plan.aux_names)

    @property
    def axes(self) -> list[str]:
        """The study's swept keys (no sweep: none)."""
        return list(self.plan.axes)

    def cells(self) -> list[tuple[dict[str, Any], RunData]]:
        """Per sweep cell (in plan order), its values and the run data of its trials alone: everything the
        report computes, it computes within a cell. Without a sweep: one empty cell holding everything."""
        if not self.axes:
            return [({}, self)]
        out = []
        keys = self.trials[self.axes].astype(str).agg("\x1f".join, axis=1)
        for key in dict.fromkeys(keys):
            trials = self.trials[keys == key]
            ids = set(trials["trial_id"])
            rows = self.rows[self.rows["trial_id"].isin(ids)] if len(self.rows) else self.rows
            methods = [m for m in self.methods if (trials["method"] == m).any()]
            cell = {axis: trials[axis].iloc[0] for axis in self.axes}
            names = self._cell_aux_names(ids, rows)
            plan = dataclasses.replace(self.plan, aux_names=names) if names else self.plan
            out.append((cell, RunData(plan, trials, rows, methods, self.weighting)))
        return out

    def _cell_aux_names(self, ids: set[str], rows: pd.DataFrame) -> list[str] | None:
        """The auxiliary tasks a cell trains with when they are not the first K of the study's (a sweep over the
        PACS target domain changes the source domains), told from its trials' configuration and checked against
        the weights its records hold; None to keep the study's."""
        from trainables.config import aux_names

        trial = next((t for t in self.plan.trials if t.trial_id in ids), None)
        try:
            names = list(aux_names(trial.config)) if trial is not None else []
        except Exception:   # a configuration this version cannot resolve: keep the study's names
            return None
        if not names or names == list(self.plan.aux_names[:len(names)]):
            return None
        recorded = rows.empty or all(f"{WEIGHT_PREFIX}{name}" in rows for name in names)
        return names if recorded else None


def weights_move(rows: pd.DataFrame, names: list[str]) -> bool:
    """Whether any trial's recorded auxiliary weights ever changed during it: Uniform, fixed weights and a grid's
    points have no trajectory to plot (told from the records, so the report needs no weighting's code)."""
    columns = [f"weight/{name}" for name in names if f"weight/{name}" in rows]
    if not columns or rows.empty:
        return False
    return bool((rows.groupby("trial_id")[columns].nunique(dropna=True) > 1).any().any())


def _budget_of(meta: Trial) -> tuple[str | None, Any]:
    """The trial's label budget: its [budget] value, else the one its config trains with."""
    if meta.budget is not None:
        return meta.budget_key, meta.budget
    for name in budget_fields(meta.config.setting):
        if getattr(meta.config, name):
            return name, getattr(meta.config, name)
    return None, None


def load_run(run_dir: str) -> RunData:
    """Reads a run folder (a UsageError if it is not a study's run folder)."""
    plan = read_plan(run_dir)
    trials = trials_table(run_dir)
    rows = load_rows(run_dir)
    budgets = [_budget_of(meta) for meta in plan.trials]
    trials["budget_key"] = [key for key, _ in budgets]
    trials["budget"] = pd.to_numeric(pd.Series([value for _, value in budgets], index=trials.index,
                                               dtype="object"), errors="coerce")
    trials["order"] = range(len(trials))   # plan order: the order Tune starts them in
    for column in ("best_val_acc", "test_acc_at_best_val", "wall_s", "cpu_s", "gpu_s"):
        trials[column] = pd.to_numeric(trials[column], errors="coerce") if column in trials else math.nan
    methods: list[str] = []
    weighting: dict[str, str] = {}
    for meta in plan.trials:
        if meta.method not in weighting:
            methods.append(meta.method)
            weighting[meta.method] = meta.weighting
    return RunData(plan, trials, rows, methods, weighting)


def mean_ci(values: Any) -> tuple[int, float, float]:
    """(n, mean, half width of the 95% Student-t interval); the half width is NaN for n < 2."""
    from scipy import stats

    series = pd.Series(values, dtype="float64").dropna()
    n = len(series)
    if n == 0:
        return 0, math.nan, math.nan
    mean = float(series.mean())
    if n < 2:
        return n, mean, math.nan
    half = float(stats.t.ppf(0.975, n - 1) * series.std(ddof=1) / math.sqrt(n))
    return n, mean, half


def _budget_rows(frame: pd.DataFrame, budget: float) -> pd.DataFrame:
    return frame[frame["budget"] == budget] if not math.isnan(budget) else frame[frame["budget"].isna()]


def _point_order(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["grid_point"].tolist()))


def chosen_grid_point(done: pd.DataFrame) -> str:
    """The grid point (JSON text) with the best mean validation accuracy over seeds among finished trials of
    one grid at one budget: the grid's choice, never made on test."""
    means = {point: done.loc[done["grid_point"] == point, "best_val_acc"].mean() for point in _point_order(done)}
    return max(means, key=lambda p: (-math.inf if math.isnan(means[p]) else means[p]))


def method_points(data: RunData) -> pd.DataFrame:
    """One row per (method, budget) with finished trials: n, test accuracy mean/CI (fractions), the mean
    best validation accuracy, and for a grid search the grid point chosen on validation ('[1, 0]')."""
    out = []
    done = data.done
    budgets = data.budgets or [math.nan]
    for method in data.methods:
        mine = done[done["method"] == method]
        for budget in budgets:
            here = _budget_rows(mine, budget)
            if here.empty:
                continue
            selected = ""
            if data.is_search(method):   # per seed, the sampled trial with the best validation accuracy
                valid = here[here["best_val_acc"].notna()]
                here = valid.loc[valid.groupby("seed")["best_val_acc"].idxmax()] if len(valid) else valid
            elif data.is_grid(method):
                selected = chosen_grid_point(here)
                here = here[here["grid_point"] == selected]
            n, mean, half = mean_ci(here["test_acc_at_best_val"])
            out.append({"method": method, "weighting": data.weighting[method], "budget_key": data.budget_key,
                        "budget": budget, "seeds": n, "test_acc_mean": mean, "test_acc_ci95": half,
                        "test_acc_low": mean - half, "test_acc_high": mean + half,
                        "val_acc_mean": float(here["best_val_acc"].mean()),
                        "selected_weights": weights_text(selected)})
    columns = ["method", "weighting", "budget_key", "budget", "seeds", "test_acc_mean", "test_acc_ci95",
               "test_acc_low", "test_acc_high", "val_acc_mean", "selected_weights"]
    return pd.DataFrame(out, columns=columns)


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


def final_weights(data: RunData, method: str, budget: float) -> pd.DataFrame:
    """Per auxiliary task: the weight at each finished trial's last evaluation, mean and CI over seeds."""
    names = list(data.plan.aux_names)
    done = _budget_rows(data.done[data.done["method"] == method], budget)
    rows = data.rows[data.rows["trial_id"].isin(done["trial_id"])] if len(data.rows) else data.rows
    last = rows.groupby("trial_id").tail(1) if len(rows) else rows
    out = []
    for name in names:
        column = f"weight/{name}"
        n, mean, half = mean_ci(last[column] if column in last else [])
        if n:
            out.append({"task": name, "seeds": n, "weight_mean": mean, "weight_ci95": half})
    return pd.DataFrame(out, columns=["task", "seeds", "weight_mean", "weight_ci95"])


def weight_trajectories(data: RunData) -> pd.DataFrame:
    """Mean auxiliary weight per step over finished seeds, for every method whose weights move."""
    names = list(data.plan.aux_names)
    out = []
    done = data.done
    for method in data.methods:
        if data.rows.empty or not weights_move(data.rows[data.rows["trial_id"].isin(
                done.loc[done["method"] == method, "trial_id"])], names):
            continue
        for budget in data.budgets or [math.nan]:
            ids = _budget_rows(done[done["method"] == method], budget)["trial_id"]
            rows = data.rows[data.rows["trial_id"].isin(ids)]
            for name in names:
                column = f"weight/{name}"
                if column not in rows or rows[column].isna().all():
                    continue
                for step, group in rows.groupby("step", sort=True):
                    n, mean, half = mean_ci(group[column])
                    if n:
                        out.append({"method": method, "budget": budget, "task": name, "step": int(step),
                                    "seeds": n, "weight_mean": mean, "weight_ci95": half})
    return pd.DataFrame(out, columns=["method", "budget", "task", "step", "seeds", "weight_mean", "weight_ci95"])


def not_done(data: RunData) -> pd.DataFrame:
    """Trials that did not finish (failed, pending, running, retrying), in plan order."""
    return data.trials[~data.trials["status"].isin(DONE)]


def weights_text(point: Any) -> str:
    """'[1, 0.5]' for a grid point stored as JSON text."""
    if not isinstance(point, str) or not point:
        return ""
    return "[" + ", ".join(f"{float(w):g}" for w in json.loads(point)) + "]"


def search_progress(data: RunData, method: str, budget: float, device: str) -> pd.DataFrame:
    """A search method's best result as it goes: after its i-th trial (plan order, per seed), the device-
    seconds spent so far and the test accuracy of the trial with the best validation accuracy so far,
    each the mean over seeds (a seed's curve holds its last value once its trials are done)."""
    column = "gpu_s" if device == "GPU" else "cpu_s"
    mine = _budget_rows(data.trials[data.trials["method"] == method], budget).sort_values("order")
    if data.is_grid(method):
        return _grid_progress(method, budget, mine, column)
    curves = []
    for _, rows in mine.groupby("seed"):
        spent, best_val, best_test, curve = 0.0, -math.inf, math.nan, []
        for _, r in rows.iterrows():
            spent += 0.0 if math.isnan(r[column]) else float(r[column])
            if r["status"] in DONE and not math.isnan(r["best_val_acc"]) and r["best_val_acc"] > best_val:
                best_val, best_test = float(r["best_val_acc"]), float(r["test_acc_at_best_val"])
            curve.append((spent, best_test))
        curves.append(curve)
    out = []
    for i in range(max((len(c) for c in curves), default=0)):
        at = [c[min(i, len(c) - 1)] for c in curves]
        n, mean, half = mean_ci([a for _, a in at])
        out.append({"method": method, "budget": budget, "trials": i + 1, "device_s": sum(s for s, _ in at) / len(at),
                    "seeds": n, "test_acc_mean": mean, "test_acc_ci95": half})
    return pd.DataFrame(out, columns=["method", "budget", "trials", "device_s", "seeds", "test_acc_mean",
                                      "test_acc_ci95"])


def _grid_progress(method: str, budget: float, mine: pd.DataFrame, column: str) -> pd.DataFrame:
    """A grid's best-so-far with the results table's rule: after its first i points (plan order), the point
    with the best mean validation accuracy over seeds among those finished; the mean test accuracy over seeds
    of that point (so the last value is the table's) and the mean device-seconds per seed spent so far."""
    order = _point_order(mine)
    seeds = max(1, mine["seed"].nunique())
    out = []
    for i in range(1, len(order) + 1):
        seen = mine[mine["grid_point"].isin(order[:i])]
        spent = float(seen[column].fillna(0).sum()) / seeds
        done = seen[seen["status"].isin(DONE) & seen["best_val_acc"].notna()]
        n, mean, half = (0, math.nan, math.nan)
        if len(done):
            point = chosen_grid_point(done)
            n, mean, half = mean_ci(done.loc[done["grid_point"] == point, "test_acc_at_best_val"])
        out.append({"method": method, "budget": budget, "trials": i, "device_s": spent, "seeds": n,
                    "test_acc_mean": mean, "test_acc_ci95": half})
    return pd.DataFrame(out, columns=["method", "budget", "trials", "device_s", "seeds", "test_acc_mean",
                                      "test_acc_ci95"])

"""The numbers behind a study's report, read from its run folder once: the plan, one row per planned trial, every
evaluation row (`RunData`, `load_run`), and what follows from them alone: the trials that did not finish, the
auxiliary weights at each trial's end and along the run.

Accuracy of a trial = its test accuracy at the step with the best validation accuracy (the last row's
`test_acc_at_best_val`). Which trial a method's value comes from (a grid's point, a search's draw) is its
selection's (orchestrator/analysis/selection.py), by the kind plan.json gives each trial.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from orchestrator.analysis.selection import SELECTIONS, Selection
from orchestrator.analysis.stats import mean_ci
from orchestrator.store.records import RunRecords
from orchestrator.store.schema import (
    BEST_VAL_ACC,
    COST_COLUMNS,
    ENDED,
    STEP,
    TEST_AT_BEST_VAL,
    WEIGHT_PREFIX,
    PlanFile,
    Trial,
)
from orchestrator.store.schema import DONE as SCHEMA_DONE
from orchestrator.store.tables import trials_table
from orchestrator.study.plan import SINGLE
from orchestrator.study.vocabulary import budget_fields

DONE = tuple(sorted(SCHEMA_DONE))      # trials whose results count (stopped: ended early by a scheduler)


@dataclass
class RunData:
    """What a report is made of: the plan, one row per planned trial, every evaluation row."""

    plan: PlanFile
    trials: pd.DataFrame    # trials_table + effective budget_key/budget, accuracy and cost columns
    rows: pd.DataFrame      # every evaluation row (one per trial per step)
    methods: list[str]      # study order
    weighting: dict[str, str]
    kinds: dict[str, str]   # each method's trial kind (single, grid, search): how it chooses among its trials

    @property
    def done(self) -> pd.DataFrame:
        """The finished trials whose results count: of a method that chooses among several trials per seed (a
        search's draws, a population's members, a grid's points), only the seeds all of whose trials have ended; a
        seed cut short by an interrupted run would otherwise count as a smaller search (`held_back`)."""
        return self.trials[self.trials["status"].isin(DONE) & ~self._in_open_seed]

    def held_back(self) -> pd.DataFrame:
        """Finished trials left out of `done` because other trials of the same method and seed have not ended."""
        return self.trials[self.trials["status"].isin(DONE) & self._in_open_seed]

    @functools.cached_property
    def _in_open_seed(self) -> pd.Series:
        """Per trial: of a method choosing among several trials per seed, in a seed with a trial not ended (read
        once: `done` is asked for in every table's loop)."""
        several = [m for m in self.methods if self.selection(m).kind != SINGLE]
        trials = self.trials
        if not several or trials.empty:
            return pd.Series(False, index=trials.index)
        keys = [trials[k].astype(str) for k in ("method", "seed", "budget", *self.axes) if k in trials]
        open_seed = (~trials["status"].isin(ENDED)).groupby(keys).transform("any")
        return open_seed & trials["method"].isin(several)

    @property
    def budget_key(self) -> str:
        keys = self.trials["budget_key"].dropna().unique()
        return str(keys[0]) if len(keys) else "label_budget"

    @property
    def budgets(self) -> list[float]:
        return sorted(self.trials["budget"].dropna().unique().tolist())

    def selection(self, method: str) -> Selection:
        """How `method` chooses among its trials (orchestrator/analysis/selection.py)."""
        return SELECTIONS[self.kinds.get(method, SINGLE)]

    def searches(self) -> list[str]:
        """The methods that search over fixed weights (grid searches, ASHA grids, TPE, random), in study order."""
        return [m for m in self.methods if self.selection(m).searches]

    def scheduler(self, method: str) -> str | None:
        if "scheduler" not in self.trials:
            return None
        names = self.trials.loc[self.trials["method"] == method, "scheduler"].dropna()
        return str(names.iloc[0]) if len(names) else None

    def kind(self, method: str) -> str:
        """'grid', 'grid + asha', 'tpe', 'tpe + asha' or the weighting's name: what a table calls the method."""
        base = self.selection(method).label(self, method)
        if base is None:
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
            out.append((cell, RunData(plan, trials, rows, methods, self.weighting, self.kinds)))
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
    columns = [f"{WEIGHT_PREFIX}{name}" for name in names if f"{WEIGHT_PREFIX}{name}" in rows]
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


def load_run(run_dir: str, records: RunRecords | None = None) -> RunData:
    """Reads a run folder once (a UsageError if it is not a study's run folder); `records`: a reading already
    made."""
    records = records or RunRecords.read(run_dir, require_plan=True)
    plan = records.plan
    trials = trials_table(records)
    rows = records.frame()
    budgets = [_budget_of(meta) for meta in plan.trials]
    trials["budget_key"] = [key for key, _ in budgets]
    trials["budget"] = pd.to_numeric(pd.Series([value for _, value in budgets], index=trials.index,
                                               dtype="object"), errors="coerce")
    trials["order"] = range(len(trials))   # plan order: the order Tune starts them in
    for column in (BEST_VAL_ACC, TEST_AT_BEST_VAL, *COST_COLUMNS):
        trials[column] = pd.to_numeric(trials[column], errors="coerce") if column in trials else math.nan
    methods: list[str] = []
    weighting: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for meta in plan.trials:
        if meta.method not in weighting:
            methods.append(meta.method)
            weighting[meta.method] = meta.weighting
            kinds[meta.method] = meta.kind
    return RunData(plan, trials, rows, methods, weighting, kinds)


def budget_rows(frame: pd.DataFrame, budget: float) -> pd.DataFrame:
    """The rows of `frame` at label budget `budget` (NaN: a study without budgets)."""
    return frame[frame["budget"] == budget] if not math.isnan(budget) else frame[frame["budget"].isna()]


def final_weights(data: RunData, method: str, budget: float) -> pd.DataFrame:
    """Per auxiliary task: the weight at each finished trial's last evaluation, mean and CI over seeds."""
    names = list(data.plan.aux_names)
    done = budget_rows(data.done[data.done["method"] == method], budget)
    rows = data.rows[data.rows["trial_id"].isin(done["trial_id"])] if len(data.rows) else data.rows
    last = rows.groupby("trial_id").tail(1) if len(rows) else rows
    out = []
    for name in names:
        column = f"{WEIGHT_PREFIX}{name}"
        n, mean, half = mean_ci(last[column] if column in last else [])
        if n:
            out.append({"task": name, "seeds": n, "weight_mean": mean, "weight_ci95": half})
    return pd.DataFrame(out, columns=["task", "seeds", "weight_mean", "weight_ci95"])


def weight_trajectories(data: RunData) -> pd.DataFrame:
    """Mean auxiliary weight per step over finished seeds, for every method whose weights move (a population's:
    the member each seed chose, with the jumps its exploits made)."""
    names = list(data.plan.aux_names)
    out = []
    done = data.done
    for method in data.methods:
        if data.rows.empty or not weights_move(data.rows[data.rows["trial_id"].isin(
                done.loc[done["method"] == method, "trial_id"])], names):
            continue
        for budget in data.budgets or [math.nan]:
            here = budget_rows(done[done["method"] == method], budget)
            ids = data.selection(method).chosen(here)[0]["trial_id"] if len(here) else here["trial_id"]
            rows = data.rows[data.rows["trial_id"].isin(ids)]
            for name in names:
                column = f"{WEIGHT_PREFIX}{name}"
                if column not in rows or rows[column].isna().all():
                    continue
                for step, group in rows.groupby(STEP, sort=True):
                    n, mean, half = mean_ci(group[column])
                    if n:
                        out.append({"method": method, "budget": budget, "task": name, "step": int(step),
                                    "seeds": n, "weight_mean": mean, "weight_ci95": half})
    return pd.DataFrame(out, columns=["method", "budget", "task", "step", "seeds", "weight_mean", "weight_ci95"])


def not_done(data: RunData) -> pd.DataFrame:
    """Trials that did not finish (failed, pending, running, retrying), in plan order."""
    return data.trials[~data.trials["status"].isin(DONE)]

"""Search baselines inside one Tune run: ASHA early stopping for a grid (or a search) and searches over the
fixed auxiliary weights through Ray Tune's `OptunaSearch`, with one of two Optuna samplers (`sampler = ...` in a
`weighting = "search"` method):

- "tpe" (default): Bayesian optimisation, Optuna's TPE (random draws for the first few trials, then guided by
  the validation accuracies seen so far);
- "random": random search, Optuna's RandomSampler (every trial an independent uniform draw in the space; the
  baseline Bergstra and Bengio found hard to beat in many dimensions).

Both act per group of comparable trials: the same method, label budget and seed; each group's sampler is
seeded from the group's name, so a run is reproducible and every seed draws its own weights. `StudyScheduler`
gives each group that asks for it its own successive-halving rungs (`Rungs`, ASHA's rule) on the main task's
validation accuracy (every other trial runs to the end). `StudySearcher` hands Tune the planned trials in plan
order; a search trial's weights are drawn, when it starts, by its group's OptunaSearch, which is told the trial's
best validation accuracy.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from orchestrator.store.schema import BEST_VAL_ACC, STEP, VAL_ACC
from orchestrator.study.vocabulary import SAMPLERS

METRIC = VAL_ACC                # what ASHA compares at each rung
SEARCH_METRIC = BEST_VAL_ACC     # what TPE maximises: the trial's best validation accuracy so far
TIME_ATTR = STEP


def grace_period(scheduler: dict[str, Any], steps: int, eval_every: int) -> int:
    """The study's grace period, or by default the evaluation step nearest steps / reduction_factor^2
    (three rungs over the run), never below the first evaluation."""
    if scheduler.get("grace_period"):
        return min(int(scheduler["grace_period"]), steps)
    guess = steps / scheduler["reduction_factor"] ** 2
    every = max(1, eval_every or steps)
    return int(min(steps, max(every, round(guess / every) * every)))


class Rungs:
    """Asynchronous successive halving for one group of comparable trials (Li et al., "A System for Massively
    Parallel Hyperparameter Tuning", 2020; the rule of Ray's ASHA with one bracket and `stop_last_trials=False`):
    rungs at grace * rf^i steps below `max_t`; a trial reaching a rung continues only if its metric is at least
    the (1 - 1/rf) quantile of what earlier trials had there. Written here rather than borrowed from Ray so that
    its state is plain data that a resumed study rebuilds from its records (`replay`)."""

    def __init__(self, grace: int, max_t: int, reduction_factor: float) -> None:
        self.rf = reduction_factor
        count = max(1, int(math.log(max_t / grace) / math.log(reduction_factor) + 1))
        self.rungs: list[tuple[float, dict[str, float]]] = [
            (grace * reduction_factor ** k, {}) for k in reversed(range(count))]

    def result(self, trial_id: str, step: float, value: float) -> bool:
        """Records a result at its rung (once per trial and rung); True when the trial should stop there."""
        for milestone, recorded in self.rungs:
            if step >= milestone and trial_id in recorded:
                return False   # its continuation at this rung was decided before
            if step < milestone:
                continue
            values = [v for v in recorded.values() if v == v]
            cutoff = float(np.percentile(values, (1 - 1 / self.rf) * 100)) if values else None
            recorded[trial_id] = value
            return cutoff is not None and value < cutoff
        return False


class StudyScheduler(FIFOScheduler):
    """FIFO for every trial, plus successive-halving rungs (`Rungs`) per group of trials whose method asks for
    `scheduler = "asha"`, and Ray Tune's population-based training per population of a `pbt` method (orchestrator/
    run/population.py). `replay` feeds a resumed study's recorded results into the rungs first.

    `meta`: planned trial id -> {"group", "scheduler" (dict or None), "population" (dict or None), "k", "steps",
    "eval_every"}."""

    def __init__(self, meta: dict[str, dict[str, Any]]) -> None:
        from orchestrator.run.population import Populations

        super().__init__()
        self.meta = meta
        self.groups: dict[str, Rungs] = {}
        self.stopped_ids: set[str] = set()
        self.populations = Populations(meta)

    def _rungs(self, planned: str | None) -> Rungs | None:
        meta = self.meta.get(planned or "")
        if not meta or not meta.get("scheduler"):
            return None
        group = meta["group"]
        if group not in self.groups:
            s = meta["scheduler"]
            self.groups[group] = Rungs(grace_period(s, meta["steps"], meta["eval_every"]), meta["steps"],
                                       s["reduction_factor"])
        return self.groups[group]

    def replay(self, rows: list[dict[str, Any]]) -> None:
        """Recorded evaluation rows (trial_id, step, val_acc), in the order they were recorded."""
        for row in rows:
            rungs = self._rungs(row.get("trial_id"))
            value = row.get(METRIC)
            if rungs is not None and isinstance(value, (int, float)) and isinstance(row.get(TIME_ATTR), (int, float)):
                rungs.result(row["trial_id"], row[TIME_ATTR], float(value))

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self.populations.on_trial_add(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        """A launch of population members runs them as their populations' PBT chooses; others first in first out."""
        if self.populations.groups:
            return self.populations.choose_trial_to_run(tune_controller)
        return super().choose_trial_to_run(tune_controller)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = self.populations.on_trial_result(tune_controller, trial, result)
        if decision is not None:
            return decision
        planned = trial.config.get("trial_id")
        rungs = self._rungs(planned)
        if rungs is None or TIME_ATTR not in result or METRIC not in result:
            return TrialScheduler.CONTINUE
        if rungs.result(planned, result[TIME_ATTR], float(result[METRIC])):
            self.stopped_ids.add(planned)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self.populations.on_trial_complete(tune_controller, trial, result)
        planned = trial.config.get("trial_id")
        rungs = self._rungs(planned)
        if rungs is not None and result and TIME_ATTR in result and METRIC in result:
            rungs.result(planned, result[TIME_ATTR], float(result[METRIC]))

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self.populations.on_trial_error(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self.populations.on_trial_remove(tune_controller, trial)

    def stopped(self) -> int:
        return len(self.stopped_ids)


def weights_from(params: dict[str, float], search: dict[str, Any], k: int) -> list[float]:
    """The K weights of sampled parameters w0..w{K-1}: as drawn in the box, or rescaled to sum K on the
    simplex (the draws are then relative sizes in (0, 1])."""
    raw = [float(params[f"w{i}"]) for i in range(k)]
    if search["space"] == "simplex":
        total = sum(raw)
        return [k * w / total for w in raw]
    return raw


def _seed(group: str) -> int:
    return int(hashlib.sha256(group.encode()).hexdigest()[:8], 16)


def make_sampler(search: dict[str, Any], group: str) -> Any:
    """The Optuna sampler of a search method's group, seeded from the group's name."""
    return SAMPLERS[search.get("sampler", "tpe")].make(search, _seed(group))


def sampled_params(weights: list[float], search: dict[str, Any]) -> dict[str, float]:
    """The sampler's parameters w0..w{K-1} that give these weights (`weights_from` inverted): the box as is, the
    simplex as relative sizes scaled so the largest is 1 (floored at the space's lower end, 1e-3)."""
    if search["space"] == "simplex":
        top = max(weights) or 1.0
        return {f"w{i}": max(1e-3, float(w) / top) for i, w in enumerate(weights)}
    return {f"w{i}": float(w) for i, w in enumerate(weights)}


class StudySearcher(Searcher):
    """The study's trials in plan order; a search trial's weights come from its group's OptunaSearch (TPE or
    random sampler).

    `order`: the planned trial ids to run; `meta`: id -> {"group", "search" (dict or None)}; `k`: auxiliary
    tasks. A resumed study passes what its records hold: `history`, per group the (weights, best validation
    accuracy) of its finished search trials, told to the sampler before it draws; `preset`, the weights already
    drawn for trials that started but did not finish (they run again with the same weights)."""

    def __init__(self, order: list[str], meta: dict[str, dict[str, Any]], k: int,
                 history: dict[str, list[tuple[list[float], float]]] | None = None,
                 preset: dict[str, list[float]] | None = None) -> None:
        super().__init__(metric=SEARCH_METRIC, mode="max")
        self.order, self.meta, self.k = list(order), meta, k
        self.history, self.preset = dict(history or {}), dict(preset or {})
        self.position = 0
        self.planned: dict[str, str] = {}         # Tune's trial id -> planned trial id
        self.optuna: dict[str, Any] = {}           # group -> OptunaSearch

    def _optuna(self, group: str, search: dict[str, Any], k: int | None = None) -> Any:
        if group not in self.optuna:
            k = k or self.k
            import optuna
            from ray.tune.search.optuna import OptunaSearch

            high = search["w_max"] if search["space"] == "box" else 1.0
            low = 0.0 if search["space"] == "box" else 1e-3
            space = {f"w{i}": optuna.distributions.FloatDistribution(low, high) for i in range(k)}
            sampler = make_sampler(search, group)
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            searcher = OptunaSearch(space=space, metric=SEARCH_METRIC, mode="max", sampler=sampler)
            for weights, value in self.history.get(group, []):
                params = {key: min(high, max(low, v)) for key, v in sampled_params(weights, search).items()}
                searcher.add_evaluated_point(params, float(value))
            self.optuna[group] = searcher
        return self.optuna[group]

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict | str | None:
        if trial_id in self.planned:
            planned = self.planned[trial_id]
        elif self.position >= len(self.order):
            return Searcher.FINISHED
        else:
            planned = self.order[self.position]
            self.position += 1
            self.planned[trial_id] = planned
        meta = self.meta[planned]
        if not meta.get("search"):
            return {"trial_id": planned}
        if planned in self.preset:
            return {"trial_id": planned, "weights": list(self.preset[planned])}
        k = meta.get("k") or self.k   # a sweep over aux_count: each cell's own number of weights
        params = self._optuna(meta["group"], meta["search"], k).suggest(trial_id)
        return {"trial_id": planned, "weights": weights_from(params, meta["search"], k)}

    def _search_of(self, trial_id: str) -> Any:
        planned = self.planned.get(trial_id)
        meta = self.meta.get(planned, {}) if planned else {}
        if not meta.get("search") or planned in self.preset:
            return None
        return self.optuna.get(meta["group"])

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        searcher = self._search_of(trial_id)
        if searcher is not None and SEARCH_METRIC in result:
            searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        planned = self.planned.get(trial_id)
        if planned in self.preset:   # drawn before the resume: the sampler learns its result as a given point
            meta = self.meta[planned]
            if result and SEARCH_METRIC in result and not error:
                self._optuna(meta["group"], meta["search"], meta.get("k")).add_evaluated_point(
                    sampled_params(self.preset[planned], meta["search"]), float(result[SEARCH_METRIC]))
            return
        searcher = self._search_of(trial_id)
        if searcher is not None:
            searcher.on_trial_complete(trial_id, result if result and SEARCH_METRIC in result else None, error)

    def get_state(self) -> dict:
        return {"order": self.order, "meta": self.meta, "k": self.k, "position": self.position,
                "planned": self.planned, "optuna": self.optuna, "history": self.history, "preset": self.preset}

    def set_state(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))

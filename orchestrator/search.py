"""Search baselines inside one Tune run: ASHA early stopping for a grid (or a search) and searches over the
fixed auxiliary weights through Ray Tune's `OptunaSearch`, with one of two Optuna samplers (`sampler = ...` in a
`weighting = "search"` method):

- "tpe" (default): Bayesian optimisation, Optuna's TPE (random draws for the first few trials, then guided by
  the validation accuracies seen so far);
- "random": random search, Optuna's RandomSampler (every trial an independent uniform draw in the space; the
  baseline Bergstra and Bengio found hard to beat in many dimensions).

Both act per group of comparable trials: the same method, label budget and seed; each group's sampler is
seeded from the group's name, so a run is reproducible and every seed draws its own weights. `StudyScheduler`
gives each group that asks for it its own `AsyncHyperBandScheduler` on the main task's validation accuracy
(every other trial runs to the end). `StudySearcher` hands Tune the planned trials in plan order; a search
trial's weights are drawn, when it starts, by its group's OptunaSearch, which is told the trial's best
validation accuracy.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

METRIC = "val_acc"             # what ASHA compares at each rung
SEARCH_METRIC = "best_val_acc"  # what TPE maximises: the trial's best validation accuracy so far
TIME_ATTR = "step"


def grace_period(scheduler: dict[str, Any], steps: int, eval_every: int) -> int:
    """The study's grace period, or by default the evaluation step nearest steps / reduction_factor^2
    (three rungs over the run), never below the first evaluation."""
    if scheduler.get("grace_period"):
        return min(int(scheduler["grace_period"]), steps)
    guess = steps / scheduler["reduction_factor"] ** 2
    every = max(1, eval_every or steps)
    return int(min(steps, max(every, round(guess / every) * every)))


class StudyScheduler(FIFOScheduler):
    """FIFO for every trial, plus one ASHA per group of trials whose method asks for `scheduler = "asha"`.

    `meta`: planned trial id -> {"group", "scheduler" (dict or None), "steps", "eval_every"}."""

    def __init__(self, meta: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        self.meta = meta
        self.groups: dict[str, AsyncHyperBandScheduler] = {}

    def _asha(self, trial: Any) -> AsyncHyperBandScheduler | None:
        meta = self.meta.get(trial.config.get("trial_id"))
        if not meta or not meta.get("scheduler"):
            return None
        group = meta["group"]
        if group not in self.groups:
            s = meta["scheduler"]
            self.groups[group] = AsyncHyperBandScheduler(
                time_attr=TIME_ATTR, metric=METRIC, mode="max", max_t=meta["steps"],
                grace_period=grace_period(s, meta["steps"], meta["eval_every"]),
                reduction_factor=s["reduction_factor"], brackets=1, stop_last_trials=False)
        return self.groups[group]

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        asha = self._asha(trial)
        if asha is not None:
            asha.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        asha = self._asha(trial)
        if asha is None or trial.trial_id not in asha._trial_info:
            return TrialScheduler.CONTINUE
        return asha.on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        asha = self._asha(trial)
        if asha is not None and trial.trial_id in asha._trial_info:
            asha.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        asha = self._asha(trial)
        if asha is not None:
            asha._trial_info.pop(trial.trial_id, None)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self.on_trial_remove(tune_controller, trial)

    def stopped(self) -> int:
        return sum(a._num_stopped for a in self.groups.values())


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


def _tpe(search: dict[str, Any], seed: int) -> Any:
    import optuna

    startup = min(10, max(2, search["num_samples"] // 3))
    return optuna.samplers.TPESampler(n_startup_trials=startup, seed=seed)


def _random(search: dict[str, Any], seed: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


# sampler name (a search's `sampler`) -> its Optuna sampler for one group's search settings and seed
SAMPLERS: dict[str, Callable[[dict[str, Any], int], Any]] = {"tpe": _tpe, "random": _random}


def make_sampler(search: dict[str, Any], group: str) -> Any:
    """The Optuna sampler of a search method's group, seeded from the group's name."""
    return SAMPLERS[search.get("sampler", "tpe")](search, _seed(group))


class StudySearcher(Searcher):
    """The study's trials in plan order; a search trial's weights come from its group's OptunaSearch (TPE or
    random sampler).

    `order`: planned trial ids; `meta`: id -> {"group", "search" (dict or None)}; `k`: auxiliary tasks."""

    def __init__(self, order: list[str], meta: dict[str, dict[str, Any]], k: int) -> None:
        super().__init__(metric=SEARCH_METRIC, mode="max")
        self.order, self.meta, self.k = list(order), meta, k
        self.position = 0
        self.planned: dict[str, str] = {}         # Tune's trial id -> planned trial id
        self.optuna: dict[str, Any] = {}           # group -> OptunaSearch

    def _optuna(self, group: str, search: dict[str, Any]) -> Any:
        if group not in self.optuna:
            import optuna
            from ray.tune.search.optuna import OptunaSearch

            high = search["w_max"] if search["space"] == "box" else 1.0
            low = 0.0 if search["space"] == "box" else 1e-3
            space = {f"w{i}": optuna.distributions.FloatDistribution(low, high) for i in range(self.k)}
            sampler = make_sampler(search, group)
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self.optuna[group] = OptunaSearch(space=space, metric=SEARCH_METRIC, mode="max", sampler=sampler)
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
        params = self._optuna(meta["group"], meta["search"]).suggest(trial_id)
        return {"trial_id": planned, "weights": weights_from(params, meta["search"], self.k)}

    def _search_of(self, trial_id: str) -> Any:
        planned = self.planned.get(trial_id)
        meta = self.meta.get(planned, {}) if planned else {}
        return self.optuna.get(meta["group"]) if meta.get("search") else None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        searcher = self._search_of(trial_id)
        if searcher is not None and SEARCH_METRIC in result:
            searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        searcher = self._search_of(trial_id)
        if searcher is not None:
            searcher.on_trial_complete(trial_id, result if result and SEARCH_METRIC in result else None, error)

    def get_state(self) -> dict:
        return {"order": self.order, "meta": self.meta, "k": self.k, "position": self.position,
                "planned": self.planned, "optuna": self.optuna}

    def set_state(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))

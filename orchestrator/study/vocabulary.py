"""The names a study speaks, each defined once: settings, label-budget kinds, the pseudo-weightings of a grid and a
search, samplers, schedulers and search spaces. Study checks, plans, dry runs, verdict sentences, tables and
figures all read them from here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainables.config import SETTINGS  # noqa: F401  (the settings, as trainables defines them)


@dataclass(frozen=True)
class BudgetKind:
    """A kind of label budget: its `[budget]` key, the TrainConfig field it sets, the settings it fits, how one
    value is written ("250 labels") and what a figure's axis says."""

    key: str
    field: str
    settings: tuple[str, ...]
    words: str
    axis: str
    percent: bool = False            # written as a percentage (a fraction of the training images)

    def text(self, value: float) -> str:
        return self.words.format(value * 100 if self.percent else value)


BUDGET_KINDS = (
    BudgetKind("labels", "label_budget", ("ssl", "mlc"), "{:g} labels", "labeled training images"),
    BudgetKind("per_class", "per_class", ("dg",), "{:g}/class", "labeled target images per class"),
    BudgetKind("fraction", "label_fraction", ("mlc",), "{:g}% labels", "fraction of training images labeled",
               percent=True),
)
BY_KEY = {kind.key: kind for kind in BUDGET_KINDS}
BY_FIELD = {kind.field: kind for kind in BUDGET_KINDS}


def budget_fields(setting: str) -> tuple[str, ...]:
    """The TrainConfig fields that hold a setting's label budget, in the order a budget is looked for."""
    return tuple(kind.field for kind in BUDGET_KINDS if setting in kind.settings)


# [train] keys that other sections set, and where to set them instead
RESERVED_TRAIN = {
    "seed": "[study] seeds", "setting": "[study] setting", "dataset": "[study] dataset",
    "weighting": "[methods.LABEL]", "weighting_options": "the keys of [methods.LABEL]",
    "label_budget": "[budget] labels", "per_class": "[budget] per_class",
    "label_fraction": "[budget] fraction",
}


GRID = "grid"      # the pseudo-weighting of a grid search: every combination of `values` as fixed weights
SEARCH = "search"  # the pseudo-weighting of a search over the fixed weights (a sampler below)
PBT = "pbt"        # the pseudo-weighting of population-based training of the fixed weights (Ray Tune's PBT)


@dataclass(frozen=True)
class Sampler:
    """A search's sampler: what a sentence calls it, and the Optuna sampler that draws its weights."""

    words: str
    optuna_class: str                               # a class of optuna.samplers
    options: Callable[[dict[str, Any]], dict[str, Any]] = lambda search: {}   # its arguments for a search's settings

    def make(self, search: dict[str, Any], seed: int) -> Any:
        """The Optuna sampler for one search group (its settings, its seed); Optuna is imported here only."""
        import optuna

        return getattr(optuna.samplers, self.optuna_class)(seed=seed, **self.options(search))


# the one table of samplers: Optuna's TPE (its start-up draws a third of the search's, within 2..10) and random
SAMPLERS = {
    "tpe": Sampler("TPE search", "TPESampler",
                   lambda search: {"n_startup_trials": min(10, max(2, search["num_samples"] // 3))}),
    "random": Sampler("random search", "RandomSampler"),
}
SCHEDULERS = {"asha": "ASHA"}   # successive halving on validation accuracy
SPACES = ("box", "simplex")
DEFAULT_MARGIN = 1.0   # [report] margin: the non-inferiority margin of the paired verdicts, in accuracy points


def search_words(kind: str) -> str:
    """What a method of this kind is called in a sentence: 'grid' -> 'grid search', 'random + asha' ->
    'ASHA-pruned random search'; another weighting's name is itself."""
    base, _, scheduler = kind.partition(" + ")
    words = "grid search" if base == GRID else "population-based training" if base == PBT else \
        SAMPLERS[base].words if base in SAMPLERS else base
    return f"{SCHEDULERS.get(scheduler, scheduler)}-pruned {words}" if scheduler else words

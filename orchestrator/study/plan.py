"""A Study -> its trials: methods x label budgets x seeds (x grid points), each a complete TrainConfig
with a stable id hashed from what the trial means (never from paths, devices or machines)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import StudyError
from orchestrator.study.spec import MethodSpec, Resources, Study
from orchestrator.study.sweep import cell_label
from trainables.config import TrainConfig

# TrainConfig fields that say where or how fast a trial runs, not what it computes: left out of ids.
NOT_IN_ID = ("data_root", "device", "num_workers", "channels_last", "compile")
# TrainConfig fields added after run folders already existed: left out of ids while at their default, so every
# trial planned before they existed keeps its id (finished trials are found again on --resume, published tables
# stay reproducible from the same ids).
ADDED_LATER = ("diagnostics", "val_labels")
# Weighting options added after run folders existed, with what trials computed before: an option at that value is
# left out of ids, so a run folder planned before it resumes when the study file names it (`directional =
# "central"`), while the new default (written into the options by the study reader) gives new ids.
FORMER_OPTIONS = {"directional": "central"}
HARD_LIMIT = 100_000  # trials, even with --allow-large: beyond it a plan does not fit in memory


# How a method's trials are chosen among, written into plan.json per trial: one run per seed ("single"), a point of
# a grid chosen on mean validation accuracy over seeds ("grid"), a search's draw chosen per seed ("search"), a
# member of a population trained together (population-based training), the best one per seed ("population")
SINGLE, GRID, SEARCH, POPULATION = "single", "grid", "search", "population"
TRIAL_KINDS = (SINGLE, GRID, SEARCH, POPULATION)


def perturbation_interval(population: dict, steps: int, eval_every: int) -> int:
    """Steps between a population's perturbations: its `interval` (at least one evaluation), or about a fifth of the
    run, at an evaluation step. Its members checkpoint exactly then (what population-based training copies)."""
    every = max(1, eval_every or steps)
    if population.get("interval"):
        return max(every, int(population["interval"]))
    return int(max(every, round(steps / 5 / every) * every))


def kind_of(grid_point: Any, search: dict | None, population: dict | None = None) -> str:
    """A trial's kind from what it is: a population's member, a search's draw, a grid's point, or a single run."""
    return POPULATION if population else SEARCH if search else GRID if grid_point else SINGLE


@dataclass(frozen=True)
class Trial:
    """One training run, the one record of a trial: built by `make_plan`, written to plan.json and read back
    (`to_dict`/`from_dict`) by the run, the records, MLflow and the report. `config` is complete (seed,
    weighting, budget set)."""

    trial_id: str
    method: str                              # the method's label in the study
    weighting: str
    weighting_options: dict
    budget: int | float | None               # the value of `budget_key`, None without [budget]
    budget_key: str | None                   # the TrainConfig field: label_budget, per_class, label_fraction
    seed: int
    grid_point: tuple[float, ...] | None
    config: TrainConfig
    sample: int | None = None                # a search's sample or a population's member number
    scheduler: dict | None = None            # ASHA settings when the method is early-stopped
    search: dict | None = None               # the method's search settings (TPE) when its weights are drawn
    cell: dict = field(default_factory=dict)  # its sweep cell (axis -> value as written); {} without a sweep
    kind: str = ""                           # how its method chooses among its trials: TRIAL_KINDS
    population: dict | None = None           # PBT settings when the trial is a member of a population

    def __post_init__(self) -> None:
        if not self.kind:   # plan.json written before kinds were: told from what the trial is, as make_plan does
            object.__setattr__(self, "kind", kind_of(self.grid_point, self.search, self.population))

    @property
    def group(self) -> str:
        """The trials a scheduler or searcher compares this one with: same method, cell, budget and seed."""
        cell = "|".join(f"{key}={value}" for key, value in self.cell.items())
        return f"{self.method}|{self.budget}|{self.seed}" + (f"|{cell}" if cell else "")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as plan.json holds them."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.update(config=self.config.to_dict(), grid_point=list(self.grid_point) if self.grid_point else None,
                   weighting_options=dict(self.weighting_options))
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Trial:
        """From plan.json (written by any version: keys it does not know are left out, missing ones default)."""
        known = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in values.items() if k in known}
        kept["config"] = TrainConfig.from_stored(kept.get("config") or {})   # as it was run, by any version
        kept["grid_point"] = tuple(kept["grid_point"]) if kept.get("grid_point") else None
        kept.setdefault("weighting_options", {})
        return cls(**kept)


@dataclass(frozen=True)
class Plan:
    """All trials of a study, in file order of methods, then budgets, seeds and grid points."""

    study: Study
    trials: tuple[Trial, ...]
    aux_names: tuple[str, ...]
    smoke: bool = False
    tune_home: str = ""            # where Ray keeps the trials' checkpoints (STORAGE/STUDY), set by the runner

    def counts_by_method(self) -> dict[str, int]:
        counts = {m.label: 0 for m in self.study.methods}
        for trial in self.trials:
            counts[trial.method] += 1
        return counts

    def __len__(self) -> int:
        return len(self.trials)

    def aux_names_by_cell(self) -> dict[str, tuple[str, ...]]:
        """Per sweep cell (its label), the auxiliary tasks its trials train with, when some cell's are not the
        first K of the study's: a sweep over the PACS target domain changes the source domains. Empty when every
        cell trains with a prefix of `aux_names` (no sweep, or one over aux_count)."""
        from orchestrator.study.sweep import cell_label
        from trainables.config import aux_names

        out: dict[str, tuple[str, ...]] = {}
        for trial in self.trials:
            label = cell_label(trial.cell)
            if label not in out:
                out[label] = tuple(aux_names(trial.config))
        if all(names == self.aux_names[:len(names)] for names in out.values()):
            return {}
        return out


def grid_points(method: MethodSpec, num_aux: int) -> list[tuple[float, ...]] | None:
    """Every K-tuple of the method's grid values, or None for a method that is not a grid search."""
    if method.grid_values is None:
        return None
    return list(itertools.product(method.grid_values, repeat=num_aux))


def count_trials(study: Study) -> int:
    """How many trials `make_plan` would build, without building them."""
    per_method = [len(m.grid_values) ** study.k(m, cell) if m.is_grid else
                  m.trials_per_run for m in study.methods for cell in study.cells(m)]
    budgets = len(study.budget.values) if study.budget else 1
    return sum(per_method) * budgets * len(study.seeds)


def trial_id(config: TrainConfig, method: str, sample: int | None = None, cell: dict | None = None) -> str:
    """First 12 hex digits of sha256 over the canonical JSON of the config (minus NOT_IN_ID), the label and,
    for a search, the sample number."""
    defaults = TrainConfig()
    meaning = {k: v for k, v in config.to_dict().items() if k not in NOT_IN_ID
               and not (k in ADDED_LATER and v == getattr(defaults, k, None))}
    if meaning.get("weighting_options"):
        meaning["weighting_options"] = {k: v for k, v in meaning["weighting_options"].items()
                                        if FORMER_OPTIONS.get(k, ...) != v}
    what: dict[str, Any] = {"config": meaning, "method": method}
    if sample is not None:
        what["sample"] = sample
    if cell:   # a smoke run's cells can shrink to the same config (steps): its ids name the cell too
        what["cell"] = {key: list(v) if isinstance(v, tuple) else v for key, v in cell.items()}
    text = json.dumps(what, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def make_plan(study: Study, allow_large: bool = False) -> Plan:
    """Every trial of `study`; more than `[study] max_trials` is an error unless `allow_large`."""
    total = count_trials(study)
    if (total > study.max_trials and not allow_large) or total > HARD_LIMIT:
        ks = {m.label: max(study.k(m, cell) for cell in study.cells(m)) for m in study.methods if m.is_grid}
        grids = [f"[methods.{m.label}] {len(m.grid_values)}^{ks[m.label]} = {len(m.grid_values) ** ks[m.label]} "
                 "points" for m in study.methods if m.is_grid]
        detail = f" ({'; '.join(grids)})" if grids else ""
        fix = ("run with --allow-large or raise [study] max_trials, or use fewer grid values, auxiliary "
               "tasks, budgets or seeds" if total <= HARD_LIMIT else
               f"that is over the hard limit of {HARD_LIMIT:,}; use fewer grid values or auxiliary tasks")
        raise StudyError(f"{study.path}: [study] max_trials = {study.max_trials} but the plan has "
                         f"{total:,} trials{detail}; {fix}")
    budgets: list[Any] = list(study.budget.values) if study.budget else [None]
    budget_key = study.budget.field if study.budget else None
    trials: list[Trial] = []
    for method, cell in ((m, c) for m in study.methods for c in study.cells(m)):
        base = study.trial_config(method, cell)
        k = study.k(method, cell)
        if "weights" in method.options and len(method.options["weights"]) != k:
            raise StudyError(f"{study.path}: [methods.{method.label}] weights has {len(method.options['weights'])} "
                             f"numbers but the cell {cell_label(cell)} has {k} auxiliary tasks; give the method "
                             "weights per cell count (cells = ...) or no fixed weights")
        points: list[Any] = grid_points(method, k) or [None]
        samples: list[Any] = list(range(method.trials_per_run)) if method.is_search or method.is_population \
            else [None]
        for budget, seed, point, sample in itertools.product(budgets, study.seeds, points, samples):
            weighting, options = method.weighting, dict(method.options)
            if point is not None:
                options = {"weights": list(point)}
            changes: dict[str, Any] = {"seed": seed, "weighting": weighting, "weighting_options": options}
            if budget_key == "label_budget":
                changes.update(label_budget=budget, label_fraction=0.0)
            elif budget_key == "label_fraction":
                changes.update(label_fraction=budget, label_budget=0)
            elif budget_key is not None:
                changes[budget_key] = budget
            if method.population:   # a member checkpoints when its population perturbs
                changes["checkpoint_every"] = perturbation_interval(method.population, base.steps, base.eval_every)
            config = base.replace(**changes)
            trials.append(Trial(trial_id(config, method.label, sample), method.label, weighting, options, budget,
                                budget_key, seed, point, config, sample, method.scheduler, method.search,
                                dict(cell), kind_of(point, method.search, method.population), method.population))
    _check_unique(study, trials)
    longest = max((study.k(m, c) for m in study.methods for c in study.cells(m)), default=len(study.aux_names))
    names = study.aux_names if not study.sweep or longest == len(study.aux_names) else study.aux_names[:longest]
    return Plan(study=study, trials=tuple(trials), aux_names=tuple(names))


def _check_unique(study: Study, trials: list[Trial]) -> None:
    seen: dict[str, Trial] = {}
    for trial in trials:
        if trial.trial_id in seen:
            other = seen[trial.trial_id]
            raise StudyError(f"{study.path}: trials of [methods.{other.method}] and [methods.{trial.method}] "
                             f"are identical (id {trial.trial_id}); remove the duplicate")
        seen[trial.trial_id] = trial


def map_configs(plan: Plan, change: Callable[[TrainConfig], TrainConfig], smoke: bool | None = None) -> Plan:
    """The plan with `change` applied to every trial's config (ids recomputed)."""
    trials = []
    for trial in plan.trials:
        config = change(trial.config)
        cell = trial.cell if (smoke if smoke is not None else plan.smoke) else None
        trials.append(dataclasses.replace(trial, config=config, trial_id=trial_id(config, trial.method,
                                                                                  trial.sample, cell)))
    _check_unique(plan.study, trials)
    return dataclasses.replace(plan, trials=tuple(trials), smoke=plan.smoke if smoke is None else smoke)


def smoke(plan: Plan) -> Plan:
    """The same trials, shrunk to seconds each: <= 4 steps, evaluation every 2, <= 64 eval items,
    batches <= 16. Their ids differ from the full trials' (they compute something else)."""

    def shrink(config: TrainConfig) -> TrainConfig:
        return config.replace(
            steps=min(config.steps, 4), eval_every=2, max_eval_items=64,
            batch_size=min(config.batch_size, 16), aux_batch_size=min(config.aux_batch_size, 16),
            eval_batch_size=min(config.eval_batch_size, 16),
            checkpoint_every=min(config.checkpoint_every, 2) if config.checkpoint_every else 0,
        )

    return map_configs(plan, shrink, smoke=True)


def build_plan(study: Study, *, allow_large: bool = False, data_root: str | None = None,
               smoke_run: bool = False) -> Plan:
    """A study's plan as `arml run` runs it: reading from `data_root` if given, shrunk by `smoke_run`."""
    plan = make_plan(study, allow_large=allow_large)
    if data_root:
        plan = with_data_root(plan, data_root)
    return smoke(plan) if smoke_run else plan


def with_data_root(plan: Plan, data_root: str) -> Plan:
    """The plan reading data from `data_root` (ids unchanged: the data root is not in them)."""
    return map_configs(plan, lambda config: config.replace(data_root=data_root))


def describe_resources(resources: Resources) -> str:
    """'1 CPU, 0.25 GPU, 1 worker' for messages."""

    def n(x: float, unit: str) -> str:
        text = f"{x:g}"
        return f"{text} {unit}" + ("" if x == 1 else "s")

    return (f"{n(resources.cpus_per_trial, 'CPU')}, {n(resources.gpus_per_trial, 'GPU')}, "
            f"{n(resources.workers_per_trial, 'worker')}")


__all__ = ["Plan", "Trial", "count_trials", "make_plan", "smoke",
           "trial_id", "with_data_root"]

"""Study files (TOML) -> a validated, frozen `Study`; every mistake is one `StudyError` naming the key.

A study file is data, never executed: `[study]` (name, preset, seeds), `[train]` (overrides of the
preset), `[methods.LABEL]` (weightings and their options, or a grid search), `[budget]` (label
budgets), `[resources]` (per trial) and `[report]` (targets). See studies/quickstart.toml.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator
from pydantic.dataclasses import dataclass as validated

from orchestrator.errors import MissingComponentError, StudyError
from orchestrator.study.checks import build_config, check_budgets, check_model_options, check_names
from orchestrator.study.methods import check_method
from orchestrator.study.overrides import merge, nest
from orchestrator.study.reader import Reader, build, scan, show
from orchestrator.study.sweep import AUX_COUNT, Axis, cells, check_cell, method_train, parse_sweep, train_values
from orchestrator.study.vocabulary import BUDGET_KINDS, BY_KEY, DEFAULT_MARGIN, RESERVED_TRAIN
from trainables.config import FIELDS as TRAIN_FIELDS
from trainables.config import PRESETS, TrainConfig, aux_names
from trainables.errors import TrainablesError, UnknownNameError

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,100}")
MAX_DESCRIPTION = 300   # characters
SECTIONS = ("study", "train", "sweep", "methods", "budget", "resources", "report")
STUDY_KEYS = ("name", "description", "preset", "setting", "dataset", "seeds", "max_trials")
BUDGET_KEYS = tuple(BY_KEY)   # [budget] keys (orchestrator/study/vocabulary.py)


@dataclass(frozen=True)
class MethodSpec:
    """One `[methods.LABEL]`: a weighting with options, or a grid search (`grid_values` set)."""

    label: str
    weighting: str                          # a name in arml.WEIGHTINGS ("fixed" for a grid search)
    options: dict = field(default_factory=dict)
    grid_values: tuple[float, ...] | None = None
    scheduler: dict | None = None           # {"name": "asha", "grace_period", "reduction_factor"}
    search: dict | None = None              # {"sampler": "tpe", "num_samples", "space", "w_max"}
    population: dict | None = None          # PBT: {"size", "interval", "w_max", "quantile", "resample_probability"}
    train: dict = field(default_factory=dict)   # [methods.LABEL.train]: values this method trains with
    cells: dict | None = None               # the sweep cells it runs in (axis -> values); None: every cell
    aux_names: tuple[str, ...] = ()         # its auxiliary tasks before a sweep's aux_count takes the first K

    @property
    def is_grid(self) -> bool:
        return self.grid_values is not None

    @property
    def is_search(self) -> bool:
        return self.search is not None

    @property
    def is_population(self) -> bool:
        return self.population is not None

    @property
    def trials_per_run(self) -> int:
        """Trials per label budget, seed and cell: a search's samples, a population's members, else 1 (a grid's
        points are counted by the plan, which knows K)."""
        return self.search["num_samples"] if self.is_search else self.population["size"] if self.is_population \
            else 1


@dataclass(frozen=True)
class BudgetSpec:
    """The label-budget sweep: `key` as written in the file, `field` the TrainConfig field it sets."""

    key: str
    field: str
    values: tuple


@validated(frozen=True, config=ConfigDict(strict=True))
class Resources:
    """What each trial asks Ray for (`[resources]`, validated when built; what the cluster can hold is
    checked when Ray has started: orchestrator.run.trial_worker.check_cluster_fits)."""

    cpus_per_trial: Annotated[float, Field(gt=0)] = 1.0
    gpus_per_trial: Annotated[float, Field(ge=0)] = 0.0
    workers_per_trial: Annotated[int, Field(ge=1)] = 1
    max_concurrent: Annotated[int, Field(ge=0)] = 0     # 0: as many as the resources allow
    max_failures: Annotated[int, Field(ge=0)] = 2

    @field_validator("gpus_per_trial")
    @classmethod
    def _gpu_share(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError("be a fraction in [0, 1] or a whole number")
        return value


@validated(frozen=True)
class ReportSpec:
    """`[report]`: accuracies for the "labels needed to reach" tables (sorted, each once) and the margin, in
    accuracy points, of the paired verdicts (better / as good / worse / not decided)."""

    targets: tuple[float, ...] = ()
    margin: float = Field(default=DEFAULT_MARGIN, ge=0, lt=100)   # non-inferiority margin of the verdicts, points

    @field_validator("targets", mode="before")
    @classmethod
    def _accuracies(cls, value: Any) -> tuple[float, ...]:
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t <= 1 for t in value):
            raise ValueError("be accuracies 0 < t <= 1")
        return tuple(sorted({float(t) for t in value}))


@dataclass(frozen=True)
class Study:
    """A validated study file; `config` is the base TrainConfig every trial starts from."""

    name: str
    description: str
    preset: str
    seeds: tuple[int, ...]
    max_trials: int
    train: dict
    methods: tuple[MethodSpec, ...]
    budget: BudgetSpec | None
    resources: Resources
    report: ReportSpec
    path: Path
    setting: str = "ssl"
    dataset: str = "digits"
    config: TrainConfig = field(default_factory=TrainConfig)
    aux_names: tuple[str, ...] = ()
    sweep: tuple[Axis, ...] = ()           # [sweep.train]: the axes, in file order

    def cells(self, method: MethodSpec | None = None) -> list[dict[str, Any]]:
        """The sweep's cells (all, or those `method` runs in); one empty cell without a sweep."""
        return cells(self.sweep, method.cells if method is not None else None)

    def trial_config(self, method: MethodSpec, cell: dict[str, Any]) -> TrainConfig:
        """What a trial of `method` in `cell` trains with (before its seed, weighting and budget are set)."""
        values = {**method.train, **train_values(cell, method.aux_names or self.aux_names, self.setting)}
        return self.config.replace(**values) if values else self.config

    def k(self, method: MethodSpec, cell: dict[str, Any]) -> int:
        """The number of auxiliary tasks of `method`'s trials in `cell`."""
        return int(cell.get(AUX_COUNT, len(method.aux_names or self.aux_names)))


def weighting_registry() -> Any:
    """`arml.WEIGHTINGS` (imported here, not at module import; tests replace this function)."""
    try:
        from arml import WEIGHTINGS
    except ImportError as error:
        raise MissingComponentError(f"arml.WEIGHTINGS is not available ({error}); is arml/ complete?") \
            from None
    return WEIGHTINGS


def load_study(path: str | Path, overrides: dict | None = None) -> Study:
    """Reads and validates one study file; `overrides`, a nested dict like {"train": {"steps": 100}}, is
    merged into the file's document first and validated with it (the CLI's `--set key=value`)."""
    path = Path(path)
    if not path.is_file():
        hint = ""
        if path.is_dir():
            hint = "; that is a folder: give a .toml file inside it"
        elif path.parent.is_dir():
            siblings = sorted(str(p) for p in path.parent.glob("*.toml"))
            hint = f"; study files there: {', '.join(siblings)}" if siblings else ""
        raise StudyError(f"{path}: no such study file{hint}")
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise StudyError(f"{path}: cannot read the file ({error}); save it as UTF-8 text") from None
    doc = _toml(text, path)
    if not overrides:
        return parse_study_doc(doc, path)
    try:
        return parse_study_doc(merge(doc, overrides), path)
    except StudyError as error:
        raise _blame_override(error, doc, overrides, path) from None


def _flat(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            out.update(_flat(value, dotted))
        else:
            out[dotted] = value
    return out


def _blame_override(error: StudyError, doc: dict, overrides: dict, path: Path) -> StudyError:
    """The error names the `--set` that caused it when the study file is fine without that override."""
    flat = _flat(overrides)
    for key, value in flat.items():
        others = {k: v for k, v in flat.items() if k != key}
        try:
            parse_study_doc(merge(doc, nest(others)) if others else doc, path)
        except StudyError:
            continue
        message = str(error).removeprefix(f"{path}:").strip()
        return StudyError(f"--set {key}={show(value)}: {message}")
    return error


def parse_study(text: str, path: str | Path = "<study>", overrides: dict | None = None) -> Study:
    """Validates the TOML text of a study (with `overrides` merged in, as in `load_study`); `path` is only used
    in messages and `Study.path`."""
    doc = _toml(text, path)
    return parse_study_doc(merge(doc, overrides) if overrides else doc, path)


def _toml(text: str, path: str | Path) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise StudyError(f"{path}: TOML syntax error: {error}; fix the file there") from None
    except (RecursionError, UnicodeError, ValueError) as error:
        raise StudyError(f"{path}: not a readable TOML file ({type(error).__name__})") from None


def parse_study_doc(doc: dict, path: str | Path = "<study>") -> Study:
    """Validates a study document (the parsed TOML, as a dict); `path` is used in messages and `Study.path`."""
    r = Reader(str(path))
    scan(r, doc)
    r.keys(doc, "", SECTIONS, required=("study", "methods"), what="section")
    head = r.keys(r.table(doc, "study"), "study", STUDY_KEYS, required=("name", "preset"))

    name = r.get(head, "study", "name", "str")
    if not NAME_PATTERN.fullmatch(name):
        r.fail("study", f"name must be 1-100 letters, digits, _ or - (it names a folder), got {show(name)}")
    preset = r.get(head, "study", "preset", "str")
    if preset not in PRESETS:
        r.fail("study", f"preset {show(preset)} is unknown{r.close(preset, PRESETS)}; "
                        f"valid names: {', '.join(sorted(PRESETS))}")
    setting = PRESETS[preset].get("setting", TrainConfig.setting)
    if "setting" in head and r.get(head, "study", "setting", "str") != setting:
        r.fail("study", f"setting = {show(head['setting'])} but preset {preset} is {show(setting)}; "
                        f"remove setting or pick a preset of that setting")
    seeds = r.get(head, "study", "seeds", "list", [0])
    if not seeds or not all(_is_int(s) and 0 <= s < 2**32 for s in seeds) or len(set(seeds)) < len(seeds):
        r.fail("study", f"seeds must be a non-empty list of distinct integers 0 <= s < 2^32, "
                        f"got {show(seeds)}")
    description = r.get(head, "study", "description", "str", "")
    if "\n" in description or "\r" in description:
        r.fail("study", "description must be one line (`arml list` shows it); put more in a # comment")
    if len(description) > MAX_DESCRIPTION:
        r.fail("study", f"description has {len(description):,} characters; keep it under {MAX_DESCRIPTION} "
                        "(`arml list` shows it on one line) and put more in a # comment")
    max_trials = r.get(head, "study", "max_trials", "int", 256)
    if max_trials < 1:
        r.fail("study", f"max_trials must be at least 1, got {max_trials}")

    train = _train(r, r.table(doc, "train"))
    if "dataset" in head:
        train_with_dataset = {**train, "dataset": r.get(head, "study", "dataset", "str")}
    else:
        train_with_dataset = train
    config = build_config(r, preset, train_with_dataset, train)
    train = {key: getattr(config, key) for key in train}   # as checked: lists as tuples, integers as floats
    check_names(r, config)
    check_model_options(r, config)
    names = _aux_names(r, config)

    axes = parse_sweep(r, r.table(doc, "sweep"), train, setting)
    registry = weighting_registry()
    methods_table = r.table(doc, "methods")
    if not methods_table:
        r.fail("methods", "needs at least one method, e.g. [methods.uniform] and [methods.arml]")
    methods = []
    for label, table in methods_table.items():
        table, own = method_train(r, label, table, axes)
        base = build_config(r, preset, {**train_with_dataset, **own.train}, {**train, **own.train},
                            section=f"methods.{label}.train") if own.train else config
        aux = tuple(_aux_names(r, base)) if own.train else tuple(names)
        methods.append(MethodSpec(label, *check_method(r, label, table, registry, aux), train=dict(own.train),
                                  cells=own.cells, aux_names=aux if own.train else ()))
        for cell in cells(axes, own.cells):
            check_cell(r, preset, {**train_with_dataset, **own.train}, {**train, **own.train}, cell, aux, setting)
    methods = tuple(methods)
    budget = _budget(r, doc, setting)
    check_budgets(r, config, budget)

    return Study(
        name=name, description=description, preset=preset,
        seeds=tuple(seeds), max_trials=max_trials, train=train, methods=methods,
        budget=budget, resources=_resources(r, r.table(doc, "resources")),
        report=_report(r, r.table(doc, "report")), path=Path(path), setting=setting,
        dataset=config.dataset, config=config, aux_names=tuple(names), sweep=axes,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _train(r: Reader, table: dict) -> dict:
    """The `[train]` overrides by name (their values are TrainConfig's to check, when the config is built)."""
    allowed = [k for k in TRAIN_FIELDS if k not in RESERVED_TRAIN]
    for key in table:
        if key in RESERVED_TRAIN:
            r.fail("train", f"{key} cannot be set in [train]; set it with {RESERVED_TRAIN[key]}")
    r.keys(table, "train", allowed)
    return dict(table)


def _aux_names(r: Reader, config: TrainConfig) -> list[str]:
    try:
        names = aux_names(config)
    except (TrainablesError, UnknownNameError, ValueError, KeyError) as error:
        r.fail("train", f"cannot tell the auxiliary tasks of this configuration: {error}")
    if not names:
        r.fail("train", f"this configuration has no auxiliary tasks "
                        f"(aux_tasks = {show(list(config.aux_tasks))}, "
                        f"aux_attributes = {show(list(config.aux_attributes))}); name at least one")
    return names


def _budget(r: Reader, doc: dict, setting: str) -> BudgetSpec | None:
    if "budget" not in doc:
        return None
    table = r.keys(r.table(doc, "budget"), "budget", BUDGET_KEYS)
    if len(table) != 1:
        r.fail("budget", f"needs exactly one of {', '.join(BUDGET_KEYS)}, got {len(table)}")
    key, values = next(iter(table.items()))
    config_field, settings = BY_KEY[key].field, BY_KEY[key].settings
    if setting not in settings:
        fits = [kind.key for kind in BUDGET_KINDS if setting in kind.settings]
        r.fail("budget", f"{key} is for the {'/'.join(settings)} setting but this study is {setting}; "
                         f"use {' or '.join(fits)}")
    if key == "fraction":
        ok = isinstance(values, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1 for v in values)
        what = "numbers 0 < f <= 1"
    else:
        ok = isinstance(values, list) and all(_is_int(v) and v >= 1 for v in values)
        what = "integers >= 1"
    if not ok or not values or len(set(values)) < len(values):
        r.fail("budget", f"{key} must be a non-empty list of distinct {what}, got {show(values)}")
    values = tuple(float(v) for v in values) if key == "fraction" else tuple(values)
    return BudgetSpec(key=key, field=config_field, values=values)


def _resources(r: Reader, table: dict) -> Resources:
    r.keys(table, "resources", tuple(Resources.__dataclass_fields__))
    return build(r, "resources", Resources, table)


def _report(r: Reader, table: dict) -> ReportSpec:
    r.keys(table, "report", ("targets", "margin"))
    return build(r, "report", ReportSpec, table)

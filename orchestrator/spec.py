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
from typing import Any

from orchestrator.errors import MissingComponentError, StudyError
from orchestrator.spec_checks import Reader, check_method, check_names, scan, show
from trainables.config import PRESETS, TrainConfig, check_fields, resolve_config
from trainables.errors import ConfigError, TrainablesError, UnknownNameError

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,100}")
SECTIONS = ("study", "train", "methods", "budget", "resources", "report")
STUDY_KEYS = ("name", "description", "preset", "setting", "dataset", "seeds", "max_trials")
# [train] keys that other sections set, and where to set them instead
RESERVED_TRAIN = {
    "seed": "[study] seeds", "setting": "[study] setting", "dataset": "[study] dataset",
    "weighting": "[methods.LABEL]", "weighting_options": "the keys of [methods.LABEL]",
    "label_budget": "[budget] labels", "per_class": "[budget] per_class",
    "label_fraction": "[budget] fraction",
}
# [budget] key -> (TrainConfig field, settings it applies to)
BUDGET_KEYS = {
    "labels": ("label_budget", ("ssl", "mlc")),
    "per_class": ("per_class", ("dg",)),
    "fraction": ("label_fraction", ("mlc",)),
}
LIST_OF_STR = ("aux_tasks", "aux_attributes")


@dataclass(frozen=True)
class MethodSpec:
    """One `[methods.LABEL]`: a weighting with options, or a grid search (`grid_values` set)."""

    label: str
    weighting: str                          # a name in arml.WEIGHTINGS ("fixed" for a grid search)
    options: dict = field(default_factory=dict)
    grid_values: tuple[float, ...] | None = None
    scheduler: dict | None = None           # {"name": "asha", "grace_period", "reduction_factor"}
    search: dict | None = None              # {"sampler": "tpe", "num_samples", "space", "w_max"}

    @property
    def is_grid(self) -> bool:
        return self.grid_values is not None

    @property
    def is_search(self) -> bool:
        return self.search is not None


@dataclass(frozen=True)
class BudgetSpec:
    """The label-budget sweep: `key` as written in the file, `field` the TrainConfig field it sets."""

    key: str
    field: str
    values: tuple


@dataclass(frozen=True)
class Resources:
    """What each trial asks Ray for."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    workers_per_trial: int = 1
    max_concurrent: int = 0                 # 0: as many as the resources allow
    max_failures: int = 2


@dataclass(frozen=True)
class ReportSpec:
    targets: tuple[float, ...] = ()         # accuracies for "labels needed to reach" tables


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


def weighting_registry() -> Any:
    """`arml.WEIGHTINGS` (imported here, not at module import; tests replace this function)."""
    try:
        from arml import WEIGHTINGS
    except ImportError as error:
        raise MissingComponentError(f"arml.WEIGHTINGS is not available ({error}); is arml/ complete?") \
            from None
    return WEIGHTINGS


def load_study(path: str | Path, overrides: dict | None = None) -> Study:
    """Reads and validates one study file; `overrides` (a nested dict, e.g. {"train": {"steps": 100}}) is
    merged into the TOML document before validation."""
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
    return parse_study(text, path, overrides)


def _merge(doc: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            _merge(doc[key], value)
        else:
            doc[key] = value
    return doc


def parse_study(text: str, path: str | Path = "<study>", overrides: dict | None = None) -> Study:
    """Validates the TOML text of a study; `path` is only used in messages and `Study.path`."""
    try:
        doc = _merge(tomllib.loads(text), overrides or {})
    except tomllib.TOMLDecodeError as error:
        raise StudyError(f"{path}: TOML syntax error: {error}; fix the file there") from None
    except (RecursionError, UnicodeError, ValueError) as error:
        raise StudyError(f"{path}: not a readable TOML file ({type(error).__name__})") from None
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
    max_trials = r.get(head, "study", "max_trials", "int", 256)
    if max_trials < 1:
        r.fail("study", f"max_trials must be at least 1, got {max_trials}")

    train = _train(r, r.table(doc, "train"))
    if "dataset" in head:
        train_with_dataset = {**train, "dataset": r.get(head, "study", "dataset", "str")}
    else:
        train_with_dataset = train
    try:
        config = resolve_config(preset, **train_with_dataset)
    except (ConfigError, UnknownNameError) as error:
        r.fail("train", str(error).removeprefix("config: "))
    check_names(r, config)
    aux_names = _aux_names(r, config)

    registry = weighting_registry()
    methods_table = r.table(doc, "methods")
    if not methods_table:
        r.fail("methods", "needs at least one method, e.g. [methods.uniform] and [methods.arml]")
    methods = tuple(MethodSpec(label, *check_method(r, label, table, registry, aux_names))
                    for label, table in methods_table.items())

    return Study(
        name=name, description=description, preset=preset,
        seeds=tuple(seeds), max_trials=max_trials, train=train, methods=methods,
        budget=_budget(r, doc, setting), resources=_resources(r, r.table(doc, "resources")),
        report=_report(r, r.table(doc, "report")), path=Path(path), setting=setting,
        dataset=config.dataset, config=config, aux_names=tuple(aux_names),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _train(r: Reader, table: dict) -> dict:
    """The `[train]` overrides, names and types checked against TrainConfig."""
    allowed = [k for k in TrainConfig.__dataclass_fields__ if k not in RESERVED_TRAIN]
    for key in table:
        if key in RESERVED_TRAIN:
            r.fail("train", f"{key} cannot be set in [train]; set it with {RESERVED_TRAIN[key]}")
    r.keys(table, "train", allowed)
    try:
        values = check_fields(table, "config")
    except ConfigError as error:
        r.fail("train", str(error).removeprefix("config: "))
    for key in LIST_OF_STR:
        if key in values and not all(isinstance(v, str) for v in values[key]):
            r.fail("train", f"{key} must be a list of names (strings), got {show(table[key])}")
    if "lr_milestones" in values and not all(_is_int(v) and v >= 0 for v in values["lr_milestones"]):
        r.fail("train", f"lr_milestones must be a list of step numbers, got {show(table['lr_milestones'])}")
    return values


def _aux_names(r: Reader, config: TrainConfig) -> list[str]:
    from orchestrator.plan import aux_names_for  # plan builds on spec; imported here to avoid a cycle

    try:
        names = aux_names_for(config)
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
    table = r.keys(r.table(doc, "budget"), "budget", tuple(BUDGET_KEYS))
    if len(table) != 1:
        r.fail("budget", f"needs exactly one of {', '.join(BUDGET_KEYS)}, got {len(table)}")
    key, values = next(iter(table.items()))
    config_field, settings = BUDGET_KEYS[key]
    if setting not in settings:
        fits = [k for k, (_, s) in BUDGET_KEYS.items() if setting in s]
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
    names = ("cpus_per_trial", "gpus_per_trial", "workers_per_trial", "max_concurrent", "max_failures")
    r.keys(table, "resources", names)
    default = Resources()
    cpus = r.get(table, "resources", "cpus_per_trial", "number", default.cpus_per_trial)
    gpus = r.get(table, "resources", "gpus_per_trial", "number", default.gpus_per_trial)
    workers = r.get(table, "resources", "workers_per_trial", "int", default.workers_per_trial)
    concurrent = r.get(table, "resources", "max_concurrent", "int", default.max_concurrent)
    failures = r.get(table, "resources", "max_failures", "int", default.max_failures)
    if cpus <= 0:
        r.fail("resources", f"cpus_per_trial must be > 0, got {show(cpus)}")
    if gpus < 0 or (gpus > 1 and gpus != int(gpus)):
        r.fail("resources", f"gpus_per_trial must be a fraction in [0, 1] or a whole number, "
                            f"got {show(gpus)}")
    for key, value, low in (("workers_per_trial", workers, 1), ("max_concurrent", concurrent, 0),
                            ("max_failures", failures, 0)):
        if value < low:
            r.fail("resources", f"{key} must be >= {low}, got {value}")
    return Resources(float(cpus), float(gpus), workers, concurrent, failures)


def _report(r: Reader, table: dict) -> ReportSpec:
    r.keys(table, "report", ("targets",))
    targets = r.get(table, "report", "targets", "list", [])
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t <= 1 for t in targets):
        r.fail("report", f"targets must be accuracies 0 < t <= 1, got {show(targets)}")
    return ReportSpec(targets=tuple(sorted({float(t) for t in targets})))

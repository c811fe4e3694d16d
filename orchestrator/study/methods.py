"""One `[methods.LABEL]` checked: a weighting by name with its options against the weighting's constructor, or a
grid search or a search over the fixed weights with their own keys (names from orchestrator/study/vocabulary.py)."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Sequence
from typing import Any

from orchestrator.study.reader import KINDS, Reader, coerce, key_text, show
from orchestrator.study.vocabulary import GRID, PBT, SAMPLERS, SCHEDULERS, SEARCH, SPACES

SCHEDULER_KEYS = ("scheduler", "grace_period", "reduction_factor")
LABEL_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,100}")
# constructor parameters the trainable fills in, never the study
FILLED_IN = {"num_aux": "the number of auxiliary tasks", "task_names": "the auxiliary task names"}


POPULATION_KEYS = ("population", "interval", "w_max", "quantile", "resample_probability")


def check_method(r: Reader, label: str, table: Any, registry: Any, aux_names: Sequence[str]
                 ) -> tuple[str, dict, tuple[float, ...] | None, dict | None, dict | None, dict | None]:
    """(weighting, options, grid_values, scheduler, search, population) of `[methods.LABEL]`; options checked
    against the weighting's constructor, a grid's, a search's or a population's keys against theirs."""
    section = f"methods.{key_text(label)}"
    if not isinstance(table, dict):
        r.fail("methods", f"{key_text(label)} = {show(table)} is not a method; write a section [{section}] "
                          f"with its options")
    if not LABEL_PATTERN.fullmatch(label):
        r.fail(section, "a method label must be 1-100 letters, digits, _ or - (it names runs and files)")
    names = [*registry.names(), GRID, SEARCH, PBT]
    valid = (f"valid names: {', '.join(names)} ({GRID}: grid search over fixed weights, {SEARCH}: TPE or random "
             f"search over them, {PBT}: population-based training of them)")
    if "weighting" in table:
        weighting = r.get(table, section, "weighting", "str")
        if weighting not in names:
            r.fail(section, f"weighting {show(weighting)} is unknown{r.close(weighting, names)}; {valid}")
    else:
        weighting = label
        if label not in names:
            r.fail(section, f"{show(label)} is not a weighting name{r.close(label, names)}; add "
                            f"weighting = \"<name>\" to the section or rename it; {valid}")
    options = {k: v for k, v in table.items() if k != "weighting"}
    if weighting == GRID:
        r.keys(options, section, ("values", *SCHEDULER_KEYS), required=("values",))
        return "fixed", {}, _grid_values(r, section, options), _scheduler(r, section, options), None, None
    if weighting == SEARCH:
        r.keys(options, section, ("num_samples", "sampler", "space", "w_max", *SCHEDULER_KEYS),
               required=("num_samples",))
        return ("fixed", {}, None, _scheduler(r, section, options), _search(r, section, options, len(aux_names)),
                None)
    if weighting == PBT:
        r.keys(options, section, POPULATION_KEYS, required=("population",))
        return "fixed", {}, None, None, None, _population(r, section, options, len(aux_names))
    for key in ("values", "num_samples", "population", *SCHEDULER_KEYS):
        if key in options:
            r.fail(section, f"{key} is only for a grid search ([methods.{GRID}]), a search ([methods.{SEARCH}]) "
                            f"or a population ([methods.{PBT}]), not for weighting {weighting}")
    return (weighting, _options(r, section, weighting, registry.get(weighting), options, aux_names), None, None,
            None, None)


def _scheduler(r: Reader, section: str, options: dict) -> dict | None:
    """`scheduler = "asha"` with its grace period (steps, default: chosen from the run's length) and
    reduction factor (default 3); None without a scheduler."""
    if "scheduler" not in options:
        for key in ("grace_period", "reduction_factor"):
            if key in options:
                r.fail(section, f"{key} needs scheduler = \"asha\"; add it or remove {key}")
        return None
    name = r.get(options, section, "scheduler", "str")
    if name not in SCHEDULERS:
        r.fail(section, f"scheduler {show(name)} is unknown{r.close(name, SCHEDULERS)}; valid: {', '.join(SCHEDULERS)}")
    grace = r.get(options, section, "grace_period", "int", 0)
    if "grace_period" in options and grace < 1:
        r.fail(section, f"grace_period must be at least 1 step, got {grace}")
    factor = float(r.get(options, section, "reduction_factor", "number", 3.0))
    if not factor > 1:
        r.fail(section, f"reduction_factor must be greater than 1, got {show(options['reduction_factor'])}")
    return {"name": name, "grace_period": grace, "reduction_factor": factor}


def _search(r: Reader, section: str, options: dict, k: int) -> dict:
    """num_samples (trials per label budget and seed), sampler "tpe" or "random", space "box" ([0, w_max] per weight)
    or "simplex" (non-negative weights summing to K, as ARML's), w_max (default 2)."""
    samples = r.get(options, section, "num_samples", "int")
    if not 1 <= samples <= 10_000:
        r.fail(section, f"num_samples must be between 1 and 10000 (trials per budget and seed), got {samples}")
    sampler = r.get(options, section, "sampler", "str", "tpe")
    if sampler not in SAMPLERS:
        r.fail(section, f"sampler {show(sampler)} is unknown{r.close(sampler, SAMPLERS)}; valid: {', '.join(SAMPLERS)}")
    space = r.get(options, section, "space", "str", "box")
    if space not in SPACES:
        r.fail(section, f"space {show(space)} is unknown{r.close(space, SPACES)}; valid: box ([0, w_max] per "
                        "weight) or simplex (weights >= 0 summing to the number of auxiliary tasks)")
    w_max = float(r.get(options, section, "w_max", "number", 2.0))
    if not (w_max > 0 and math.isfinite(w_max)):
        r.fail(section, f"w_max must be a positive number, got {show(options['w_max'])}")
    if space == "simplex" and "w_max" in options:
        r.fail(section, "w_max is only for space = \"box\" (on the simplex the weights sum to K)")
    if k < 1:
        r.fail(section, "a search needs at least one auxiliary task")
    return {"sampler": sampler, "num_samples": samples, "space": space, "w_max": w_max}


def _population(r: Reader, section: str, options: dict, k: int) -> dict:
    """Population-based training of the K fixed weights (Ray Tune's PopulationBasedTraining, per label budget,
    seed and cell): `population` members (2-64), each weight first drawn in [0, w_max] (default 2); every
    `interval` steps (default 0: about a fifth of the run, at an evaluation) a member in the bottom `quantile`
    (default 0.25) by validation accuracy continues from a top member's checkpoint with its weights, each resampled
    with probability `resample_probability` (default 0.25), else multiplied by 0.8 or 1.2."""
    size = r.get(options, section, "population", "int")
    if not 2 <= size <= 64:
        r.fail(section, f"population must be between 2 and 64 (members per budget and seed), got {size}")
    interval = r.get(options, section, "interval", "int", 0)
    if interval < 0:
        r.fail(section, f"interval must be a number of steps >= 1 (or 0: about a fifth of the run), got {interval}")
    w_max = float(r.get(options, section, "w_max", "number", 2.0))
    if not (w_max > 0 and math.isfinite(w_max)):
        r.fail(section, f"w_max must be a positive number, got {show(options['w_max'])}")
    quantile = float(r.get(options, section, "quantile", "number", 0.25))
    if not 0 < quantile <= 0.5:
        r.fail(section, f"quantile must be in (0, 0.5] (the share of members that exploit and are copied), got "
                        f"{show(options['quantile'])}")
    resample = float(r.get(options, section, "resample_probability", "number", 0.25))
    if not 0 <= resample <= 1:
        r.fail(section, f"resample_probability must be in [0, 1], got {show(options['resample_probability'])}")
    if k < 1:
        r.fail(section, "population-based training of the weights needs at least one auxiliary task")
    return {"size": size, "interval": interval, "w_max": w_max, "quantile": quantile,
            "resample_probability": resample}


def _grid_values(r: Reader, section: str, options: dict) -> tuple[float, ...]:
    values = options["values"]
    if not isinstance(values, list) or not values or not all(
            KINDS["number"][1](v) and v >= 0 for v in values) or len(set(values)) < len(values):
        r.fail(section, f"values must be a non-empty list of distinct numbers >= 0 (the weights each "
                        f"auxiliary task takes in the grid), got {show(values)}")
    return tuple(float(v) for v in values)


def _options(r: Reader, section: str, weighting: str, constructor: Any, options: dict,
             aux_names: Sequence[str]) -> dict:
    """The options checked by name against `constructor(num_aux, *, option=default)` and by type
    against the defaults; numbers become floats where the default is a float (stable trial ids)."""
    k = len(aux_names)
    for key, what in FILLED_IN.items():
        if key in options:
            r.fail(section, f"{key} is filled in for each trial ({what}, here {k}); remove it")
    try:
        params = list(inspect.signature(constructor).parameters.values())
    except (TypeError, ValueError):
        params = [inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)]
    any_key = any(p.kind is p.VAR_KEYWORD for p in params)
    named = {p.name: p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
             and p.name != "self" and p.name not in FILLED_IN}
    for key in options:
        if key not in named and not any_key:
            r.fail(section, f"{key_text(key)} is not an option of weighting {weighting}"
                            f"{r.close(key, named)}; its options: {', '.join(named) or 'none'}")
    missing = [n for n, p in named.items() if p.default is p.empty and n not in options]
    if weighting == "fixed" and "weights" not in options and "weights" not in missing:
        missing.append("weights")
    if missing:
        r.fail(section, f"weighting {weighting} needs {', '.join(missing)}; add "
                        f"{' and '.join(m + ' = ...' for m in missing)}")
    out = {key: coerce(r, section, key, value, named.get(key)) for key, value in options.items()}
    # defaults that changed what a method computes are written in: trials run under the old default keep
    # their ids, trials under the new one get new ids (a --resume re-runs them)
    for key, value in getattr(constructor, "recorded_defaults", {}).items():
        if key in named:
            out.setdefault(key, value)
    if weighting == "fixed":
        weights = out["weights"]
        if not isinstance(weights, list) or not all(KINDS["number"][1](w) and w >= 0 for w in weights):
            r.fail(section, f"weights must be a list of numbers >= 0, got {show(weights)}")
        if len(weights) != k:
            r.fail(section, f"weights has {len(weights)} numbers but there are {k} auxiliary tasks "
                            f"({', '.join(aux_names)}); give one weight per task, in that order")
        out["weights"] = [float(w) for w in weights]
    if k > 0:  # values the constructor refuses (lr <= 0, an unknown mode...) are usage errors, found now
        try:
            constructor(k, **out)
        except (TypeError, ValueError) as error:
            r.fail(section, f"weighting {weighting} refuses these options: {error}")
    return out

"""Helpers of the orchestrator's tests: stand-ins for parts written elsewhere (arml.WEIGHTINGS,
trainables.data.aux_names; `install(monkeypatch)` puts them in place), a valid study `BASE` with
`changed`/`write`, and a small TOML writer (`to_toml`)."""

from __future__ import annotations

import copy
import datetime
import math
import re
from pathlib import Path
from typing import Any

import pytest

from arml.registry import Registry

# a valid study exercising every section; tests change one value at a time with `changed`
BASE: dict[str, Any] = {
    "study": {"name": "t", "description": "a test study", "preset": "digits_mlc", "seeds": [0, 1]},
    "train": {"aux_attributes": ["is_0", "is_6", "random_0"], "steps": 30},
    "methods": {
        "uniform": {},
        "arml": {"lr": 0.05},
        "arml_slow": {"weighting": "arml", "lr": 0.005, "update_every": 2},
        "fixed_rot": {"weighting": "fixed", "weights": [1, 0.0, 0.5]},
        "grid": {"values": [0.0, 1.0]},
    },
    "budget": {"labels": [20, 50]},
    "resources": {"cpus_per_trial": 0.5, "gpus_per_trial": 0.25, "workers_per_trial": 2,
                  "max_concurrent": 4, "max_failures": 1},
    "report": {"targets": [0.85, 0.8]},
}

DIGITS_ATTRIBUTES = ["odd", "ge5", "has_loop", "prime", *(f"is_{d}" for d in range(10)),
                     *(f"random_{i}" for i in range(4))]
DIGITS_DOMAINS = ["original", "inverted", "rotated", "noisy"]


def fake_registry() -> Registry:
    """The weightings of DESIGN.md with constructors of the real interface `(num_aux, *, options)`."""
    weightings: Registry = Registry("weighting")

    class Uniform:
        def __init__(self, num_aux: int) -> None: ...

    class Fixed:
        def __init__(self, num_aux: int, *, weights: list | None = None) -> None: ...

    class ARML:
        def __init__(self, num_aux: int, *, lr: float = 0.05, update_every: int = 1, langevin: bool = True,
                     noise_scale: float = 1e-3, projection: str = "simplex", init: list | None = None,
                     fd_eps: float | None = None, task_names: list | None = None) -> None: ...

    class GradNorm:
        def __init__(self, num_aux: int, *, alpha: float = 1.5, lr: float = 0.025) -> None: ...

    class OlAux:
        def __init__(self, num_aux: int, *, lr: float = 0.1, horizon: int = 5, extra: Any = None) -> None: ...

    for name, cls in (("uniform", Uniform), ("fixed", Fixed), ("arml", ARML), ("adaloss", Uniform),
                      ("gradnorm", GradNorm), ("cosinesim", Uniform), ("olaux", OlAux)):
        weightings.register(name)(cls)
    return weightings


def fake_aux_names(dataset: str, request: Any) -> list[str]:
    """Digits only: mlc attributes (all but the main one unless named) and dg source domains."""
    if dataset != "digits":
        from trainables.errors import UnknownNameError

        raise UnknownNameError(f"unknown data set {dataset!r}; valid names: digits")
    if request.setting == "mlc":
        if request.main_attribute not in DIGITS_ATTRIBUTES:
            raise ValueError(f"unknown attribute {request.main_attribute!r}")
        for name in request.aux_attributes:
            if name not in DIGITS_ATTRIBUTES or name == request.main_attribute:
                raise ValueError(f"unknown auxiliary attribute {name!r}")
        return list(request.aux_attributes) or [a for a in DIGITS_ATTRIBUTES if a != request.main_attribute]
    return [d for d in DIGITS_DOMAINS if d != request.target_domain]


def install(monkeypatch: pytest.MonkeyPatch) -> None:
    import orchestrator.plan
    import orchestrator.spec

    monkeypatch.setattr(orchestrator.spec, "weighting_registry", fake_registry)
    monkeypatch.setattr(orchestrator.plan, "data_aux_names", fake_aux_names)


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_value(key)


def toml_value(value: Any) -> str:
    """A TOML value (strings escaped by hand: JSON's escapes are not all valid TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else
                          "\\" + c if c in '"\\' else c for c in value)
        return f'"{escaped}"'
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, (int, datetime.date, datetime.time)):
        return value.isoformat() if not isinstance(value, int) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def to_toml(doc: dict) -> str:
    """A document: top-level scalars, then [section] with [section.sub] for tables inside sections."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for name, table in doc.items():
        if not isinstance(table, dict):
            continue
        lines.append(f"[{toml_key(name)}]")
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
        for sub, inner in table.items():
            if isinstance(inner, dict):
                lines.append(f"[{toml_key(name)}.{toml_key(sub)}]")
                lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in inner.items()]
    return "\n".join(lines) + "\n"


def write(folder: Path, doc: dict, name: str = "x.toml") -> Path:
    path = folder / name
    path.write_text(to_toml(doc))
    return path


def changed(path: str, value: Any) -> dict:
    """BASE with `section.key` (or `methods.label.key`) set to value; None deletes it."""
    doc = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    table = doc
    for part in parents:
        table = table.setdefault(part, {})
    if value is None:
        table.pop(last, None)
    else:
        table[last] = value
    return doc

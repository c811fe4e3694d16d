"""Study files for the orchestrator's tests: a valid study `BASE` exercising every section (checked against the
real registries) with `changed`/`write`, a small TOML writer (`to_toml`), and `tiny_study`, the few-second study
the run tests share."""

from __future__ import annotations

import copy
import datetime
import math
import re
from pathlib import Path
from typing import Any

# a valid study exercising every section; tests change one value at a time with `changed`
BASE: dict[str, Any] = {
    "study": {"name": "t", "description": "a test study", "preset": "digits_mlc", "seeds": [0, 1]},
    "train": {"aux_attributes": ["is_0", "is_6", "random_0"], "steps": 30, "lr_milestones": [20]},
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

def uniform_vs_arml(folder: Path, name: str, *, steps: int = 400, eval_every: int = 50, width: int = 16,
                    batch_size: int | None = None, aux_batch_size: int = 32, seeds: tuple[int, ...] = (0, 1, 2),
                    extra: str = "") -> Path:
    """FOLDER/NAME.toml: Uniform and ARML on digits multi-label (two auxiliary attributes), the study the driver,
    Ray Jobs and multi-node tests run in a subprocess, long enough (`steps`) to be stopped half-way; `extra` is
    appended (e.g. a [resources] table)."""
    batch = f"batch_size = {batch_size}\n" if batch_size else ""
    path = folder / f"{name}.toml"
    path.write_text(f"""[study]
name = "{name}"
preset = "digits_mlc"
seeds = {list(seeds)}
[train]
aux_attributes = ["is_0", "random_0"]
model_options = {{ width = {width} }}
{batch}aux_batch_size = {aux_batch_size}
steps = {steps}
eval_every = {eval_every}
[methods.uniform]
[methods.arml]
{extra}""")
    return path


def mlc_head(name: str, steps: int = 20, eval_every: int = 2) -> str:
    """The head of a small digits multi-label study (two auxiliary attributes, a width-8 CNN, one seed) that the
    search and scheduler tests add their methods to."""
    return f"""
[study]
name = "{name}"
preset = "digits_mlc"
seeds = [0]
[train]
aux_attributes = ["is_0", "random_0"]
model_options = {{ width = 8 }}
steps = {steps}
eval_every = {eval_every}
batch_size = 16
aux_batch_size = 16
"""


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


def tiny_study(folder: Path, name: str, *, seeds: tuple[int, ...] = (0, 1, 2), steps: int = 4, eval_every: int = 2,
               methods: str = "[methods.uniform]\n[methods.arml]\n", extra: str = "") -> str:
    """A study of a few seconds per trial (digits multi-label, two auxiliary attributes, `steps` steps): the
    run tests' shared study. `methods` and `extra` (more sections or keys, TOML) change it; returns its path."""
    import textwrap

    text = (f'[study]\nname = "{name}"\npreset = "digits_mlc"\nseeds = [{", ".join(map(str, seeds))}]\n'
            f'[train]\naux_attributes = ["is_0", "random_0"]\nsteps = {steps}\neval_every = {eval_every}\n'
            + textwrap.dedent(methods) + textwrap.dedent(extra))
    path = Path(folder) / f"{name}.toml"
    path.write_text(text)
    return str(path)

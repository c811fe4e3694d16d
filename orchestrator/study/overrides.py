"""Overrides of a study file's values (`--set SECTION.KEY=VALUE`, `orchestrator.run(..., steps=...)`): dotted keys as a
nested dict, and that dict merged into the parsed file. Plain dicts only, so the catalogue and the CLI use it without
importing the study's validation."""

from __future__ import annotations

import copy
from typing import Any

from orchestrator.errors import UsageError


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"train.steps": 100} -> {"train": {"steps": 100}}; a key without a dot stays at the top."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        if not all(parts):
            raise UsageError(f"override {key!r}: write SECTION.KEY, e.g. train.steps")
        here = out
        for part in parts[:-1]:
            here = here.setdefault(part, {})
            if not isinstance(here, dict):
                raise UsageError(f"override {key!r} conflicts with another override of {part!r}")
        here[parts[-1]] = value
    return out


def merge(doc: dict, overrides: dict) -> dict:
    """A copy of `doc` with `overrides` merged in: tables merge key by key, any other value replaces."""
    out = copy.deepcopy(doc)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out

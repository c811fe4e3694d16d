"""The pieces of study-file validation: a `Reader` that raises messages naming file, section and key, how a value
is shown in them, and a value checked against a constructor parameter's type (`coerce`)."""

from __future__ import annotations

import difflib
import inspect
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

from orchestrator.errors import StudyError

REQUIRED: Any = object()
KINDS = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "number": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "list": ("a list", lambda v: isinstance(v, list)),
    "table": ("a table", lambda v: isinstance(v, dict)),
}


def key_text(key: str) -> str:
    """A key as written in TOML: bare if it can be, else quoted (so messages stay on one line)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def show(value: Any, limit: int = 80) -> str:
    """A value as it would be written in TOML, shortened for messages."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show(v, limit) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{key_text(k)} = {show(v, limit)}" for k, v in value.items()) + "}"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Reader:
    """Reads one study file's values; every problem is a StudyError that names the file and section."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, section: str, message: str) -> NoReturn:
        where = f" [{section}]" if section else ""
        raise StudyError(f"{self.file}:{where} {message}")

    @staticmethod
    def close(name: str, choices: Iterable[str], fmt: Callable[[str], str] = str) -> str:
        """' (did you mean x?)' for a misspelt name, else ''."""
        choices = list(choices)
        close = difflib.get_close_matches(str(name), choices, n=3, cutoff=0.6)
        if not close and len(str(name)) >= 3:  # gpus -> gpus_per_trial
            close = [c for c in choices if str(name).lower() in c.lower()][:3]
        return f" (did you mean {' or '.join(map(fmt, close))}?)" if close else ""

    def table(self, doc: dict, section: str) -> dict:
        value = doc.get(section, {})
        if not isinstance(value, dict):
            self.fail("", f"{section} must be a section ([{section}]), got {section} = {show(value)}")
        return value

    def keys(self, table: dict, section: str, allowed: Sequence[str], required: Sequence[str] = (),
             what: str = "key") -> dict:
        """Refuses unknown keys (suggesting close ones) and missing required ones; returns `table`."""
        fmt = (lambda k: f"[{key_text(k)}]") if what == "section" else key_text
        for key in table:
            if key not in allowed:
                self.fail(section, f"unknown {what} {fmt(key)}{self.close(key, allowed, fmt)}; "
                                   f"valid {what}s: {', '.join(fmt(k) for k in allowed)}")
        for key in required:
            if key not in table:
                self.fail(section, f"missing {what} {fmt(key)}; add it" +
                          (f" (e.g. {key} = ...)" if what == "key" else ""))
        return table

    def get(self, table: dict, section: str, key: str, kind: str, default: Any = REQUIRED) -> Any:
        """`table[key]` checked to be of `kind` (str, int, number, bool, list, table)."""
        if key not in table:
            if default is REQUIRED:
                self.fail(section, f"missing key {key}; add it")
            return default
        what, ok = KINDS[kind]
        value = table[key]
        if not ok(value):
            self.fail(section, f"{key} must be {what}, got {show(value)}")
        return value


def build(r: Reader, section: str, model: Callable[..., Any], table: dict) -> Any:
    """`model(**table)` (a pydantic model or dataclass); its first validation error becomes one line naming
    the section, the key and what the value must be (`trainables.config.first_problem`)."""
    from pydantic import ValidationError

    from trainables.config import first_problem

    try:
        return model(**table)
    except ValidationError as error:
        loc, need, value = first_problem(error)
        key = ".".join(str(part) for part in loc) or section
        r.fail(section, f"{key} must {need}, got {show(value)}")


def scan(r: Reader, doc: dict) -> None:
    """Refuses TOML dates/times and nan/inf anywhere: no study value needs them."""

    def walk(value: Any, section: str, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, section, f"{key}.{key_text(k)}" if key else key_text(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, section, key)
        elif isinstance(value, float) and not math.isfinite(value):
            r.fail(section, f"{key} must be a finite number, got {show(value)}")
        elif not isinstance(value, (str, int, float, bool)):
            r.fail(section, f"{key} must not be a date or time, got {show(value)}")

    for section, table in doc.items():
        if isinstance(table, dict) and section == "methods":
            for label, sub in table.items():
                if isinstance(sub, dict):
                    walk(sub, f"methods.{key_text(label)}", "")
                else:
                    walk(sub, "methods", key_text(label))
        elif isinstance(table, dict):
            walk(table, key_text(section), "")
        else:
            walk(table, "", key_text(section))


def coerce(r: Reader, section: str, key: str, value: Any, param: inspect.Parameter | None) -> Any:
    """`value` checked against the type of the parameter's default, else its simple annotation
    (`float | None`, `Sequence[float]`); unchecked if neither tells."""
    kind = _kind_of(param) if param is not None else None
    if kind is None:
        return value
    what, ok = KINDS[kind]
    if not ok(value):
        r.fail(section, f"{key} must be {what}, got {show(value)}")
    return float(value) if kind == "number" else value


def _kind_of(param: inspect.Parameter) -> str | None:
    for kind, types in (("bool", bool), ("int", int), ("number", float), ("str", str),
                        ("list", (list, tuple)), ("table", dict)):
        if isinstance(param.default, types):
            return kind
    annotation = param.annotation if isinstance(param.annotation, str) else getattr(
        param.annotation, "__name__", "")
    parts = {p.strip() for p in annotation.split("|")} - {"None", "Optional"}
    if len(parts) != 1:
        return None
    (part,) = parts
    simple = {"bool": "bool", "int": "int", "float": "number", "str": "str", "dict": "table"}
    if part in simple:
        return simple[part]
    return "list" if re.fullmatch(r"(Sequence|list|tuple)(\[.*\])?", part) else None

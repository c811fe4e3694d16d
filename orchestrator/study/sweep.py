"""Sweeps: any `[train]` value as an axis, so that a whole table or a map of regimes is one study file.

    [sweep.train]
    steps = [100, 400]
    aux_count = [4, 16]          # the first K auxiliary tasks (of aux_attributes, of the data set's list, or of
                                 # aux_tasks): a compact axis for the number of auxiliary tasks
    [methods.fada.train]         # values one method trains with
    dg_variant = "fada"
    [methods.grid]
    cells = { aux_count = [4] }  # a method that runs only in some cells

The cells are the product of the axes in file order; every trial belongs to one cell, and everything the report
compares is compared within a cell. A swept key cannot also be set in `[train]` or a method's `train` (one place
says which value a trial gets). Every cell's configuration is checked like `[train]` when the study is read.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from orchestrator.study.checks import build_config
from orchestrator.study.reader import Reader, key_text, show
from orchestrator.study.vocabulary import RESERVED_TRAIN
from trainables.config import FIELDS as TRAIN_FIELDS

AUX_COUNT = "aux_count"
TRAIN_KEYS = [key for key in TRAIN_FIELDS if key not in RESERVED_TRAIN]


@dataclass(frozen=True)
class Axis:
    """One swept key and its values, as written."""

    key: str
    values: tuple


@dataclass(frozen=True)
class MethodTrain:
    """What one method adds to the sweep: its own `train` values and the cells it runs in (None: all)."""

    train: dict = field(default_factory=dict)
    cells: dict | None = None


def cells(axes: tuple[Axis, ...], only: dict | None = None) -> list[dict[str, Any]]:
    """Every cell of the axes (a dict key -> value), in file order; `only` keeps the cells whose values are in
    its lists. One empty cell without axes."""
    out = []
    for values in itertools.product(*(axis.values for axis in axes)):
        cell = dict(zip((axis.key for axis in axes), values))
        if only and any(cell[key] not in allowed for key, allowed in only.items()):
            continue
        out.append(cell)
    return out


# swept values that stand for something else: what a label says for them
VALUE_WORDS = {("val_labels", 0): "all"}   # val_labels = 0: the whole validation split


def cell_label(cell: dict[str, Any]) -> str:
    """'steps = 100, target_domain = photo' ('' for the one cell of a study without axes; val_labels = 0 reads
    'val_labels = all', the whole validation split)."""
    return ", ".join(f"{key} = {_words(key, value)}" for key, value in cell.items())


def _words(key: str, value: Any) -> Any:
    return VALUE_WORDS.get((key, value), value) if isinstance(value, (int, float, str)) else value


def train_values(cell: dict[str, Any], aux: tuple[str, ...], setting: str) -> dict[str, Any]:
    """The TrainConfig values of a cell: its keys as they are, aux_count as the first K auxiliary tasks of `aux`
    (aux_attributes in the multi-label setting, aux_tasks in the semi-supervised one)."""
    out = {key: value for key, value in cell.items() if key != AUX_COUNT}
    if AUX_COUNT in cell:
        field_name = "aux_tasks" if setting == "ssl" else "aux_attributes"
        out[field_name] = tuple(aux[:cell[AUX_COUNT]])
    return out


def parse_sweep(r: Reader, table: dict, train: dict, setting: str) -> tuple[Axis, ...]:
    """`[sweep.train]`: each key a `[train]` key (or aux_count) with a non-empty list of distinct values."""
    r.keys(table, "sweep", ("train",))
    swept = table.get("train", {})
    if not isinstance(swept, dict):
        r.fail("sweep", f"train must be a table ([sweep.train]) of lists, got train = {show(swept)}")
    r.keys(swept, "sweep.train", [*TRAIN_KEYS, AUX_COUNT])
    axes = []
    for key, values in swept.items():
        if key in train:
            r.fail("sweep.train", f"{key} is set in [train] and swept in [sweep.train]; keep it in one place: "
                                  "[train] for one value, [sweep.train] for several")
        if not isinstance(values, list) or not values:
            r.fail("sweep.train", f"{key} must be a non-empty list of values to sweep, got {show(values)}")
        if len({show(v, 10**6) for v in values}) < len(values):
            r.fail("sweep.train", f"{key} lists a value twice: {show(values)}")
        if key == AUX_COUNT:
            if setting == "dg":
                r.fail("sweep.train", "aux_count takes the first K auxiliary tasks: for the semi-supervised and "
                                      "multi-label settings (domain generalization's are its source domains)")
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
                r.fail("sweep.train", f"aux_count must be a list of integers >= 1, got {show(values)}")
        axes.append(Axis(key, tuple(tuple(v) if isinstance(v, list) else v for v in values)))
    return tuple(axes)


def method_train(r: Reader, label: str, table: dict, axes: tuple[Axis, ...]) -> tuple[dict, MethodTrain]:
    """`[methods.LABEL]` without its `train` and `cells` keys, and what they say."""
    if not isinstance(table, dict):
        return table, MethodTrain()
    section = f"methods.{key_text(label)}"
    rest = {k: v for k, v in table.items() if k not in ("train", "cells")}
    own = table.get("train", {})
    if not isinstance(own, dict):
        r.fail(section, f"train must be a table ([{section}.train]) of [train] values, got train = {show(own)}")
    swept = {axis.key for axis in axes}
    for key in own:
        if key in RESERVED_TRAIN:
            r.fail(f"{section}.train", f"{key} cannot be set here; set it with {RESERVED_TRAIN[key]}")
        if key in swept:
            r.fail(f"{section}.train", f"{key} is swept in [sweep.train]; a method cannot also set it")
    r.keys(own, f"{section}.train", TRAIN_KEYS)
    only = table.get("cells")
    if only is not None:
        if not isinstance(only, dict) or not only:
            r.fail(section, f"cells must be a table of axis = [values], e.g. cells = {{ aux_count = [2, 4] }}, "
                            f"got {show(only)}")
        values = {axis.key: axis.values for axis in axes}
        r.keys(only, f"{section}.cells", tuple(values), what="axis")
        for key, allowed in only.items():
            listed = allowed if isinstance(allowed, list) else [allowed]
            wrong = [v for v in listed if (tuple(v) if isinstance(v, list) else v) not in values[key]]
            if wrong:
                r.fail(section, f"cells: {key} = {show(wrong)} is not a value of the axis (it has "
                                f"{show(list(values[key]))})")
        only = {key: tuple(v if isinstance(v, list) else [v]) for key, v in only.items()}
    return rest, MethodTrain(dict(own), only)


def check_cell(r: Reader, preset: str, values: dict, train: dict, cell: dict[str, Any], aux: tuple[str, ...],
               setting: str) -> None:
    """A cell's configuration built and checked like `[train]` (a problem is a `[sweep.train]` error naming
    the cell)."""
    if not cell:
        return
    if cell.get(AUX_COUNT, 0) > len(aux):
        r.fail("sweep.train", f"aux_count = {cell[AUX_COUNT]} but this study has {len(aux)} auxiliary tasks; use "
                              f"values up to {len(aux)} (or list more in aux_attributes)")
    build_config(r, preset, {**values, **train_values(cell, aux, setting)}, {**train, **cell}, "sweep.train",
                 context=cell_label(cell))

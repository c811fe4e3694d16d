"""The data set registry, `build_data`, the status table, and helpers shared by the data set modules."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from arml.registry import Registry
from trainables.data.base import DataRequest, DatasetStatus, DGData, MLCData, SSLData
from trainables.data.splits import restrict_validation
from trainables.errors import ConfigError, DataNotFoundError, PluginError, UnknownNameError

ENTRY_POINT_GROUP = "trainables.datasets"


class Dataset(Protocol):
    """What every entry of `DATASETS` offers."""

    settings: tuple[str, ...]

    def build(self, request: DataRequest) -> SSLData | MLCData | DGData: ...

    def check(self, data_root: str) -> DatasetStatus: ...

    def aux_names(self, request: DataRequest) -> list[str]: ...


class DatasetRegistry(Registry[Dataset]):
    """The built-in data sets plus those that installed packages declare as entry points in the group
    `trainables.datasets` (name = the data set's name, value = `module:object`, the object being a data set
    or a class made with no arguments). Entry points are listed on the first lookup and each one is
    imported when its name is first asked for; a built-in name always wins."""

    def __init__(self, kind: str, group: str) -> None:
        super().__init__(kind)
        self.group = group
        self._entry_points: dict[str, importlib.metadata.EntryPoint] | None = None
        self._plugins: set[str] = set()

    def entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        """Entry points of the group by name (read once; `reload_plugins` reads them again)."""
        if self._entry_points is None:
            found = importlib.metadata.entry_points(group=self.group)
            self._entry_points = {ep.name: ep for ep in found if ep.name not in self._items}
        return self._entry_points

    def reload_plugins(self) -> None:
        """Forgets loaded plug-ins and the entry-point list (after installing a package in a running process)."""
        for name in self._plugins:
            del self._items[name]
        self._plugins.clear()
        self._entry_points = None

    def _load(self, name: str) -> None:
        ep = self.entry_points()[name]
        package = f" of package {ep.dist.name}" if ep.dist is not None else ""
        where = f"data set plug-in {name!r} (entry point {name} = {ep.value!r} in group {self.group}{package})"
        try:
            loaded: Any = ep.load()
            dataset = loaded() if isinstance(loaded, type) else loaded
        except Exception as error:
            raise PluginError(f"{where} failed to load: {type(error).__name__}: {error}. Fix or uninstall that"
                              " package.") from error
        missing = [a for a in ("settings", "build", "check", "aux_names") if not hasattr(dataset, a)]
        if missing:
            raise PluginError(f"{where} lacks {', '.join(missing)}: a data set offers settings, build(request),"
                              " check(data_root) and aux_names(request)")
        self._items[name] = dataset
        self._plugins.add(name)

    def get(self, name: str) -> Dataset:
        if name not in self._items and name in self.entry_points():
            self._load(name)
        if name not in self._items:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted({*self._items, *self.entry_points()})

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self.entry_points()


DATASETS: DatasetRegistry = DatasetRegistry("data set", ENTRY_POINT_GROUP)


def get_dataset(name: str, setting: str) -> Dataset:
    """The registered data set `name`, checked to support `setting`."""
    dataset = DATASETS.get(name)
    if setting not in dataset.settings:
        raise ConfigError(
            f"data set {name!r} supports settings: {', '.join(dataset.settings)}; got {setting!r}"
        )
    return dataset


def build_data(name: str, request: DataRequest) -> SSLData | MLCData | DGData:
    """The bundle of data set `name` for `request.setting` (SSLData, MLCData or DGData), its validation split cut
    to `request.val_labels` images drawn for the request's seed (`splits.restrict_validation`; 0 keeps it whole).
    The cut is made here, once for every data set (plug-ins included), so that whatever reads validation
    metrics (the best step, a grid's or a search's choice, --until-decided) sees only those labels."""
    data = get_dataset(name, request.setting).build(request)
    return restrict_validation(data, request, f"{name} ({request.setting})")


def aux_names(name: str, request: DataRequest) -> list[str]:
    """Auxiliary attribute names (mlc), source domain names (dg) or [] (ssl); reads no files."""
    return get_dataset(name, request.setting).aux_names(request)


def max_budget(name: str, request: DataRequest) -> int | None:
    """The largest label_budget (ssl, mlc) or per_class (dg) data set `name` can give for `request`, told
    without reading images; None when it cannot be told here."""
    limit = getattr(get_dataset(name, request.setting), "max_budget", None)
    return limit(request) if limit is not None else None


def val_size(name: str, request: DataRequest) -> int | None:
    """How many labeled images the validation split of data set `name` holds for `request` (the most
    `val_labels` can draw), told without reading images; None when it cannot be told here."""
    size = getattr(get_dataset(name, request.setting), "val_size", None)
    return size(request) if size is not None else None


def status_table(data_root: str) -> str:
    """A text table: each data set found or missing under `data_root`, its counts and what to do; then the
    attributes of data sets that describe them (`describe()`)."""
    rows = [("data set", "status", "counts", "path looked at")]
    advice: dict[int, str] = {}
    described: dict[str, Callable[[], str]] = {}
    for name in DATASETS.names():
        try:
            dataset = DATASETS.get(name)
            if hasattr(dataset, "describe"):
                described[name] = dataset.describe
            status = dataset.check(data_root)
        except Exception as error:  # a damaged file: show it, keep checking the others
            status = DatasetStatus(name, False, {}, data_root, f"could not read it: {error}")
        counts = ", ".join(f"{k} {v}" for k, v in status.splits.items()) or "-"
        rows.append((name, "found" if status.found else "MISSING", counts, status.path))
        if not status.found and status.advice:
            advice[len(rows) - 1] = status.advice
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
        if i in advice:
            lines.append(f"    -> {advice[i]}")
    for name, describe in described.items():  # data sets that document their attributes (digits) list them
        lines += ["", f"{name}: multi-label attributes (default set, or opt-in by name in aux_attributes)",
                  describe()]
    return "\n".join(lines)


def not_found_message(name: str, path: str, missing: list[str], source: str, layout: str) -> str:
    """What a DataNotFoundError says: the exact path, what is missing, where to get it, the layout."""
    what = f" (missing: {', '.join(missing)})" if missing else ""
    return (
        f"{name}: no data at {path}{what}. Get it from {source} and put it there as {layout}."
        " Point --data-root or the ARML_DATA environment variable at the folder holding it."
    )


def data_not_found(name: str, path: str, missing: list[str], source: str, layout: str) -> DataNotFoundError:
    """A DataNotFoundError with `not_found_message`."""
    return DataNotFoundError(not_found_message(name, path, missing, source, layout))


def resize_images(images: torch.Tensor, size: int, chunk: int = 2048) -> torch.Tensor:
    """Bilinear resize of [N, C, H, W] images to size x size, keeping the dtype (uint8 rounded)."""
    if size <= 0 or images.shape[-2:] == (size, size):
        return images
    out = []
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].float()
        y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out.append(y.round().clamp(0, 255).to(torch.uint8) if images.dtype == torch.uint8 else y.clamp(0, 1))
    if not out:
        return images.new_zeros((0, images.shape[1], size, size))
    return torch.cat(out)


@dataclass(frozen=True)
class ImageFileLoader:
    """Decodes an image file to float [3, size, size] in [0, 1]: RGB, optional center crop, resize."""

    size: int
    crop: int = 0  # > 0: center crop to crop x crop (at most the image) before resizing

    def __call__(self, path: str) -> torch.Tensor:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if self.crop > 0:
                side = min(self.crop, *image.size)
                left, top = (image.width - side) // 2, (image.height - side) // 2
                image = image.crop((left, top, left + side, top + side))
            if image.size != (self.size, self.size):
                image = image.resize((self.size, self.size), Image.Resampling.BILINEAR)
            array = np.array(image, dtype=np.uint8)
        return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)

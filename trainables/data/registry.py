"""The data set registry, `build_data`, the status table, and helpers shared by the data set modules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from arml.registry import Registry
from trainables.data.base import DataRequest, DatasetStatus, DGData, MLCData, SSLData
from trainables.errors import ConfigError, DataNotFoundError


class Dataset(Protocol):
    """What every entry of `DATASETS` offers."""

    settings: tuple[str, ...]

    def build(self, request: DataRequest) -> SSLData | MLCData | DGData: ...

    def check(self, data_root: str) -> DatasetStatus: ...

    def aux_names(self, request: DataRequest) -> list[str]: ...


DATASETS: Registry[Dataset] = Registry("data set")


def get_dataset(name: str, setting: str) -> Dataset:
    """The registered data set `name`, checked to support `setting`."""
    dataset = DATASETS.get(name)
    if setting not in dataset.settings:
        raise ConfigError(
            f"data set {name!r} supports settings: {', '.join(dataset.settings)}; got {setting!r}"
        )
    return dataset


def build_data(name: str, request: DataRequest) -> SSLData | MLCData | DGData:
    """The bundle of data set `name` for `request.setting` (SSLData, MLCData or DGData)."""
    return get_dataset(name, request.setting).build(request)


def aux_names(name: str, request: DataRequest) -> list[str]:
    """Auxiliary attribute names (mlc), source domain names (dg) or [] (ssl); reads no files."""
    return get_dataset(name, request.setting).aux_names(request)


def max_budget(name: str, request: DataRequest) -> int | None:
    """The largest label_budget (ssl, mlc) or per_class (dg) data set `name` can give for `request`, told
    without reading images; None when it cannot be told here."""
    limit = getattr(get_dataset(name, request.setting), "max_budget", None)
    return limit(request) if limit is not None else None


def status_table(data_root: str) -> str:
    """A text table: each data set found or missing under `data_root`, its counts and what to do."""
    rows = [("data set", "status", "counts", "path looked at")]
    advice: dict[int, str] = {}
    for name in DATASETS.names():
        try:
            status = DATASETS.get(name).check(data_root)
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

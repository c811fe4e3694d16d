"""Checkpoints of a training run: everything needed to continue bit for bit, loadable with weights_only."""

from __future__ import annotations

import contextlib
import os
import zipfile
from collections.abc import Callable
from typing import IO, Any

import torch

FILE = "state.pt"


def save(directory: str, state: dict[str, Any]) -> str:
    """Writes `state` to `directory/state.pt` atomically and durably (`write_durably`)."""
    os.makedirs(directory, exist_ok=True)
    write_durably(os.path.join(directory, FILE), lambda f: torch.save(state, f), binary=True)
    return directory


def write_durably(path: str, write: Callable[[IO], Any], binary: bool = False) -> None:
    """`write(file)` under a temporary name, flushed to the disk, then renamed to `path`: a crash or a full disk
    never leaves a cut or empty file under the real name (and no temporary one either)."""
    try:
        with open(path + ".tmp", "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(path + ".tmp")
        raise


def is_complete(directory: str) -> bool:
    """True when `directory` holds a whole state.pt (torch's zip format, readable to its central directory): a
    checkpoint cut by a crash or a full disk, or an empty file, is not."""
    path = os.path.join(directory, FILE)
    try:
        return os.path.isfile(path) and os.path.getsize(path) > 0 and zipfile.is_zipfile(path)
    except OSError:
        return False


def load(directory: str) -> dict[str, Any]:
    """Reads a checkpoint written by `save`; never unpickles code (torch.load(weights_only=True))."""
    path = os.path.join(directory, FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location="cpu", weights_only=True)

"""Checkpoints of a training run: everything needed to continue bit for bit, loadable with weights_only."""

from __future__ import annotations

import os
from typing import Any

import torch

FILE = "state.pt"


def save(directory: str, state: dict[str, Any]) -> str:
    """Writes `state` to `directory/state.pt` (atomically: a crash never leaves half a file)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, FILE)
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)
    return directory


def load(directory: str) -> dict[str, Any]:
    """Reads a checkpoint written by `save`; never unpickles code (torch.load(weights_only=True))."""
    path = os.path.join(directory, FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location="cpu", weights_only=True)

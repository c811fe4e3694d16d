"""scikit-learn's bundled digits, read: the 1797 8x8 images and their labels, the raw material of the digits data
set (digits.py) and of its attribute table (digits_attributes.py), kept apart so that neither imports the other."""

from __future__ import annotations

import os

import torch


def load() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 images as float [N, 1, 8, 8] in [0, 1] and their digit labels [N]: scikit-learn's bundled
    digits.csv.gz read directly (what `load_digits` reads, without importing scikit-learn: a second saved on
    every command that checks a digits study); `load_digits` itself where that file is not found."""
    import importlib.util

    import numpy as np

    spec = importlib.util.find_spec("sklearn")
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = os.path.join(folders[0], "datasets", "data", "digits.csv.gz") if folders else ""
    if path and os.path.exists(path):
        table = np.loadtxt(path, delimiter=",")
        data, target = table[:, :-1], table[:, -1].astype(np.int64)
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        data, target = digits.data, digits.target
    images = torch.tensor(data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    return images, torch.tensor(target, dtype=torch.long)

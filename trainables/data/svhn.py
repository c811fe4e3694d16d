"""SVHN (semi-supervised): torchvision's train_32x32.mat and test_32x32.mat in `<root>/` or `<root>/svhn/`.

A fixed split of the 73,257 training images into 65,932/7,325 train/val; a balanced label budget
(paper: 1000).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from trainables.data.base import DataInfo, DataRequest, DatasetStatus, SSLData
from trainables.data.cifar10 import ssl_bundle
from trainables.data.registry import data_not_found, not_found_message

FILES = ("train_32x32.mat", "test_32x32.mat")
SOURCE = "http://ufldl.stanford.edu/housenumbers/ (Format 2: train_32x32.mat, test_32x32.mat)"
LAYOUT = "the two files train_32x32.mat and test_32x32.mat side by side"
VAL_FRACTION = 7325 / 73257
MEAN, STD = (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)


def read_mat(path: str, images: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Images uint8 [N, 3, 32, 32] (None unless `images`) and digit labels [N] (10 -> 0) of one .mat file."""
    from scipy.io import loadmat

    mat = loadmat(path, variable_names=["X", "y"] if images else ["y"])
    labels = torch.from_numpy(np.asarray(mat["y"], dtype=np.int64).reshape(-1) % 10)
    if not images:
        return None, labels
    x = np.ascontiguousarray(np.asarray(mat["X"], dtype=np.uint8).transpose(3, 2, 0, 1))
    return torch.from_numpy(x), labels


class Svhn:
    """The svhn entry of `DATASETS` (ssl only)."""

    settings = ("ssl",)

    def folder(self, data_root: str) -> tuple[str | None, list[str]]:
        """The first of `<root>`, `<root>/svhn` holding both files (or None) and the paths looked at."""
        candidates = [data_root, os.path.join(data_root, "svhn")]
        for path in candidates:
            if all(os.path.isfile(os.path.join(path, f)) for f in FILES):
                return path, candidates
        return None, candidates

    def _missing(self, candidates: list[str]) -> tuple[str, list[str]]:
        where = " or ".join(candidates)
        missing = [f for f in FILES if not any(os.path.isfile(os.path.join(p, f)) for p in candidates)]
        return where, missing or ["the two files in one folder"]

    def build(self, request: DataRequest) -> SSLData:
        path, candidates = self.folder(request.data_root)
        if path is None:
            where, missing = self._missing(candidates)
            raise data_not_found("svhn", where, missing, SOURCE, LAYOUT)
        train = read_mat(os.path.join(path, FILES[0]))
        test = read_mat(os.path.join(path, FILES[1]))
        size = request.image_size or 32
        info = DataInfo("svhn", (3, size, size), 10, MEAN, STD, augment="crop")
        n_val = round(VAL_FRACTION * len(train[1]))
        return ssl_bundle("svhn", request, train, test, n_val, info)  # type: ignore[arg-type]

    def check(self, data_root: str) -> DatasetStatus:
        path, candidates = self.folder(data_root)
        if path is None:
            where, missing = self._missing(candidates)
            return DatasetStatus(
                "svhn", False, {}, where, not_found_message("svhn", where, missing, SOURCE, LAYOUT)
            )
        n_train = len(read_mat(os.path.join(path, FILES[0]), images=False)[1])
        n_test = len(read_mat(os.path.join(path, FILES[1]), images=False)[1])
        n_val = round(VAL_FRACTION * n_train)
        return DatasetStatus("svhn", True, {"train": n_train - n_val, "val": n_val, "test": n_test}, path)

    def aux_names(self, request: DataRequest) -> list[str]:
        return []

    def max_budget(self, request: DataRequest) -> int:
        """An upper bound on label_budget: the 73,257 training images less the validation split (a balanced
        budget near it can still fail on SVHN's smallest class; that is found when the trial starts)."""
        return 73_257 - round(VAL_FRACTION * 73_257)

    def val_size(self, request: DataRequest) -> int:
        """The most `val_labels` can draw: the validation split of SVHN's 73,257 training images (7,325)."""
        return round(VAL_FRACTION * 73_257)

"""CIFAR-10 (semi-supervised): torchvision's python batches under `<root>/cifar-10-batches-py/`.

The pickles are read with an unpickler that only allows what numpy arrays need (no code execution).
A fixed 9:1 train/val split of the training images (45,000/5,000), a balanced label budget (paper: 4000).
"""

from __future__ import annotations

import importlib
import os
import pickle
from typing import Any

import numpy as np
import torch

from trainables.data.base import DataInfo, DataRequest, DatasetStatus, SSLData, TensorImageSet
from trainables.data.registry import data_not_found, not_found_message, resize_images
from trainables.data.splits import SPLIT_SEED, balanced_budget, split_fraction

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
FILES = (*TRAIN_FILES, "test_batch", "batches.meta")
SOURCE = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (the CIFAR-10 python version)"
LAYOUT = f"the extracted folder {FOLDER}/ with data_batch_1..data_batch_5, test_batch, batches.meta"
VAL_FRACTION = 0.1  # 5,000 of the 50,000 training images
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

_ALLOWED = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # bytes pickled at protocol 2 by Python 3
}


class RestrictedUnpickler(pickle.Unpickler):
    """Refuses every global but numpy's array reconstruction helpers: loading cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        key = (module.replace("numpy.core.", "numpy._core.", 1), name)
        if key not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return getattr(importlib.import_module(key[0]), name)


def read_batch(path: str) -> dict[str, Any]:
    """One CIFAR batch file as a dict with str keys ("data", "labels", ...)."""
    with open(path, "rb") as f:
        try:
            raw = RestrictedUnpickler(f, encoding="latin1").load()
        except pickle.UnpicklingError as error:
            raise pickle.UnpicklingError(f"{path}: {error}") from None
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _images_labels(batches: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    data = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
    labels = np.concatenate([np.asarray(b["labels"], dtype=np.int64) for b in batches])
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)


def ssl_bundle(
    name: str,
    request: DataRequest,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    val_size: int,
    info: DataInfo,
) -> SSLData:
    """Fixed train/val split of `train`, balanced labeled subset (request seed), the rest unlabeled."""
    images, labels = resize_images(train[0], request.image_size), train[1]
    rest, val = split_fraction(labels, val_size / len(labels), SPLIT_SEED)
    chosen = balanced_budget(labels[rest], 10, request.label_budget, request.seed, name)
    is_labeled = torch.zeros(len(rest), dtype=torch.bool)
    is_labeled[chosen] = True
    labeled, unlabeled = rest[is_labeled], rest[~is_labeled]
    return SSLData(
        info=info,
        labeled=TensorImageSet(images[labeled], labels[labeled]),
        unlabeled=TensorImageSet(images[unlabeled], torch.full((len(unlabeled),), -1, dtype=torch.long)),
        val=TensorImageSet(images[val], labels[val]),
        test=TensorImageSet(resize_images(test[0], request.image_size), test[1]),
    )


class Cifar10:
    """The cifar10 entry of `DATASETS` (ssl only)."""

    settings = ("ssl",)

    def folder(self, data_root: str) -> tuple[str, list[str]]:
        path = os.path.join(data_root, FOLDER)
        return path, [f for f in FILES if not os.path.isfile(os.path.join(path, f))]

    def build(self, request: DataRequest) -> SSLData:
        path, missing = self.folder(request.data_root)
        if missing:
            raise data_not_found("cifar10", path, missing, SOURCE, LAYOUT)
        train = _images_labels([read_batch(os.path.join(path, f)) for f in TRAIN_FILES])
        test = _images_labels([read_batch(os.path.join(path, "test_batch"))])
        size = request.image_size or 32
        info = DataInfo("cifar10", (3, size, size), 10, MEAN, STD, augment="flip_crop")
        return ssl_bundle("cifar10", request, train, test, round(VAL_FRACTION * len(train[1])), info)

    def check(self, data_root: str) -> DatasetStatus:
        path, missing = self.folder(data_root)
        if missing:
            advice = not_found_message("cifar10", path, missing, SOURCE, LAYOUT)
            return DatasetStatus("cifar10", False, {}, path, advice)
        n_train = sum(len(read_batch(os.path.join(path, f))["labels"]) for f in TRAIN_FILES)
        n_test = len(read_batch(os.path.join(path, "test_batch"))["labels"])
        n_val = round(VAL_FRACTION * n_train)
        return DatasetStatus("cifar10", True, {"train": n_train - n_val, "val": n_val, "test": n_test}, path)

    def aux_names(self, request: DataRequest) -> list[str]:
        return []

    def max_budget(self, request: DataRequest) -> int:
        """The largest label_budget: the 50,000 training images less the validation split (5,000 per class)."""
        return 50_000 - round(VAL_FRACTION * 50_000)

    def val_size(self, request: DataRequest) -> int:
        """The most `val_labels` can draw: the validation split of CIFAR-10's 50,000 training images (5,000)."""
        return round(VAL_FRACTION * 50_000)

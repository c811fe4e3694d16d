"""Data sets by name (cifar10, svhn, celeba, pacs, digits), read from a data root, never downloaded.
`build_data(name, request)` returns the setting's bundle (its validation split cut to `request.val_labels`);
`python -m trainables.data` checks a root."""

from __future__ import annotations

from trainables.data import celeba, cifar10, digits, pacs, svhn
from trainables.data.registry import DATASETS, aux_names, build_data, max_budget, status_table, val_size

for _name, _dataset in (("celeba", celeba.CelebA()), ("cifar10", cifar10.Cifar10()), ("digits", digits.Digits()),
                        ("pacs", pacs.Pacs()), ("svhn", svhn.Svhn())):
    DATASETS.register(_name)(_dataset)

__all__ = ["DATASETS", "aux_names", "build_data", "max_budget", "status_table", "val_size"]

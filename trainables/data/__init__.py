"""Data sets by name (cifar10, svhn, celeba, pacs, digits), read from a data root, never downloaded.
`build_data(name, request)` returns the setting's bundle; `python -m trainables.data` checks a root."""

from __future__ import annotations

from trainables.data import celeba, cifar10, digits, pacs, svhn  # noqa: F401  (registers each data set)
from trainables.data.registry import DATASETS, aux_names, build_data, max_budget, status_table

__all__ = ["DATASETS", "aux_names", "build_data", "max_budget", "status_table"]

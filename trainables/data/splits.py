"""Seeded index helpers: fixed stratified splits, balanced label budgets, hidden main labels, validation draws.

Every function takes an explicit seed and builds its own `torch.Generator`; the global RNG is never used.
Positions returned are sorted, so a split depends only on the seed, never on the caller's order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

from trainables.data.base import DataRequest
from trainables.errors import ConfigError

SPLIT_SEED = 0  # the seed of every fixed train/val/test split: identical across trials


def generator(seed: int) -> torch.Generator:
    """A fresh CPU generator seeded with `seed`."""
    return torch.Generator().manual_seed(int(seed))


def proportional_counts(sizes: Sequence[int], total: int) -> list[int]:
    """Splits `total` over groups in proportion to `sizes` (largest remainder, ties to earlier groups)."""
    n = sum(sizes)
    if not 0 <= total <= n:
        raise ValueError(f"cannot take {total} of {n} items")
    if n == 0:
        return [0] * len(sizes)
    quotas = [s * total / n for s in sizes]
    counts = [int(q) for q in quotas]
    order = sorted(range(len(sizes)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _by_class(labels: torch.Tensor) -> tuple[list[int], list[torch.Tensor]]:
    classes = sorted(int(c) for c in torch.unique(labels))
    return classes, [(labels == c).nonzero().flatten() for c in classes]


def stratified_split(labels: torch.Tensor, n_first: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions (first, rest) with exactly `n_first` in the first part, each class in proportion."""
    g = generator(seed)
    _, groups = _by_class(labels)
    counts = proportional_counts([len(idx) for idx in groups], n_first)
    first, rest = [], []
    for idx, k in zip(groups, counts):
        idx = idx[torch.randperm(len(idx), generator=g)]
        first.append(idx[:k])
        rest.append(idx[k:])
    return _sorted_cat(first), _sorted_cat(rest)


def stratified_parts(labels: torch.Tensor, sizes: Sequence[int], seed: int) -> list[torch.Tensor]:
    """Disjoint stratified parts of the given sizes (summing to len(labels)), taken one after another."""
    if sum(sizes) != len(labels):
        raise ValueError(f"part sizes {list(sizes)} do not add up to {len(labels)}")
    remaining = torch.arange(len(labels))
    parts = []
    for i, size in enumerate(sizes[:-1]):
        first, rest = stratified_split(labels[remaining], size, seed + i)
        parts.append(remaining[first])
        remaining = remaining[rest]
    return parts + [remaining]


def split_fraction(labels: torch.Tensor, fraction: float, seed: int = SPLIT_SEED) -> tuple[torch.Tensor, ...]:
    """(rest, held out) positions with round(fraction * N) held out, stratified: a fixed 9:1 split."""
    held, rest = stratified_split(labels, round(fraction * len(labels)), seed)
    return rest, held


def pick_per_class(
    labels: torch.Tensor, num_classes: int, counts: Sequence[int], seed: int, what: str
) -> torch.Tensor:
    """Positions of `counts[c]` random items of each class c; ConfigError when a class has too few."""
    g = generator(seed)
    chosen = []
    for c in range(num_classes):
        idx = (labels == c).nonzero().flatten()
        if counts[c] > len(idx):
            raise ConfigError(
                f"{what} needs {counts[c]} images of class {c} but there are only {len(idx)}"
                f" (fewest in any class: {min(int((labels == k).sum()) for k in range(num_classes))})"
            )
        chosen.append(idx[torch.randperm(len(idx), generator=g)[: counts[c]]])
    return _sorted_cat(chosen)


def balanced_budget(
    labels: torch.Tensor, num_classes: int, budget: int, seed: int, where: str
) -> torch.Tensor:
    """`budget` positions split equally over classes; the remainder goes to the lowest class indices."""
    if budget <= 0:
        raise ConfigError(f"label_budget must be > 0 for {where}, got {budget}")
    if budget > len(labels):
        raise ConfigError(
            f"label_budget {budget} is larger than the {len(labels)} training images of {where}"
            f" (valid: 1..{len(labels)})"
        )
    per, extra = divmod(budget, num_classes)
    counts = [per + (1 if c < extra else 0) for c in range(num_classes)]
    return pick_per_class(labels, num_classes, counts, seed, f"label_budget {budget} (balanced, {where})")


def per_class_pick(
    labels: torch.Tensor, num_classes: int, per_class: int, seed: int, where: str
) -> torch.Tensor:
    """`per_class` positions of every class (the N_m labeled target images of domain generalization)."""
    fewest = min(int((labels == c).sum()) for c in range(num_classes))
    if not 0 < per_class <= fewest:
        raise ConfigError(f"per_class must be in 1..{fewest} for {where} (images per class), got {per_class}")
    return pick_per_class(labels, num_classes, [per_class] * num_classes, seed, f"per_class {per_class}")


def select_attributes(names: Sequence[str], request: DataRequest, where: str,
                      defaults: Sequence[str] | None = None) -> tuple[str, list[str]]:
    """(main, auxiliary) attribute names of a multi-label request; ConfigError on unknown names.
    Without aux_attributes: every name of `defaults` (else of `names`) but the main one."""
    valid = ", ".join(names)
    if request.main_attribute not in names:
        raise ConfigError(
            f"unknown main_attribute {request.main_attribute!r} for {where}; valid names: {valid}"
        )
    aux = list(request.aux_attributes) or [n for n in (defaults or names) if n != request.main_attribute]
    for name in aux:
        if name not in names:
            raise ConfigError(f"unknown auxiliary attribute {name!r} for {where}; valid names: {valid}")
    if request.main_attribute in aux or len(set(aux)) != len(aux):
        raise ConfigError(f"aux_attributes {aux} must be distinct and must not contain the main attribute")
    return request.main_attribute, aux


def main_label_count(request: DataRequest, n_train: int, where: str) -> int:
    """How many training images keep their main label: label_budget, else round(label_fraction * N)."""
    if request.label_budget > 0 and request.label_fraction > 0:
        raise ConfigError(
            f"set label_budget ({request.label_budget}) or label_fraction ({request.label_fraction}),"
            " not both"
        )
    if request.label_budget < 0 or not 0 <= request.label_fraction <= 1:
        raise ConfigError(
            f"label_budget must be >= 0 and label_fraction in [0, 1]; got {request.label_budget}"
            f" and {request.label_fraction}"
        )
    count = request.label_budget or round(request.label_fraction * n_train)
    if count <= 0:
        raise ConfigError(
            f"{where} (mlc) needs label_budget > 0 or label_fraction > 0 (got {request.label_budget},"
            f" {request.label_fraction}: 0 labeled images)"
        )
    if count > n_train:
        raise ConfigError(
            f"label_budget {count} is larger than the {n_train} training images of {where}"
            f" (valid: 1..{n_train})"
        )
    return count


def hide_main_labels(targets: torch.Tensor, request: DataRequest, where: str) -> torch.Tensor:
    """A copy of [N, 1+K] targets with column 0 set to -1 except on the label budget (stratified, seeded)."""
    count = main_label_count(request, len(targets), where)
    _, hide = stratified_split(targets[:, 0], count, request.seed)
    out = targets.clone()
    out[hide, 0] = -1
    return out


def val_draw_seed(seed: int, part: int = 0) -> int:
    """The seed of a trial's validation draw (of one part of the validation split): a function of the trial's
    seed, so that the same seed draws the same validation images for every method, but not the seed itself, so
    that the draw is independent of the label budget's (which is seeded with the trial's seed)."""
    digest = hashlib.sha256(f"val_labels/{seed}/{part}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def main_labels(targets: torch.Tensor) -> torch.Tensor:
    """The main task's labels of [N] or [N, 1 + K] targets (multi-label: column 0, the main attribute)."""
    return targets if targets.dim() == 1 else targets[:, 0]


def draw_validation(labels: Sequence[torch.Tensor], count: int, seed: int, where: str,
                    words: str = "its validation split") -> list[torch.Tensor]:
    """Positions of `count` validation images in all, one tensor per part of the validation split (`labels`: each
    part's main labels): the parts get counts in proportion to their sizes, and within a part each class in
    proportion (`stratified_split`), with a generator of the trial's own (`val_draw_seed`). 0: every position."""
    sizes = [len(part) for part in labels]
    total = sum(sizes)
    if count < 0:
        raise ConfigError(f"val_labels must be >= 0 (0: the whole validation split), got {count}")
    if count == 0:
        return [torch.arange(n) for n in sizes]
    if count > total:
        raise ConfigError(f"val_labels {count} is more than {where} holds in {words}: {total} labeled images; "
                          f"use 1..{total}, or 0 for all of them")
    counts = proportional_counts(sizes, count)
    return [stratified_split(part, k, val_draw_seed(seed, i))[0] for i, (part, k) in enumerate(zip(labels, counts))]


def restrict_validation(data: Any, request: DataRequest, where: str) -> Any:
    """The bundle with its validation split cut to `request.val_labels` images drawn for `request.seed` (see
    `draw_validation`); the bundle itself when val_labels is 0. Only the validation split changes: training
    images, their labels and the test split are those of the bundle."""
    if request.val_labels == 0:
        return data
    sets = data.val_sets()
    drawn = draw_validation([main_labels(s.targets) for s in sets.values()], request.val_labels, request.seed,
                            where, data.val_words)
    return data.with_val_sets({name: s.subset(positions) for (name, s), positions in zip(sets.items(), drawn)})


def _sorted_cat(parts: list[torch.Tensor]) -> torch.Tensor:
    if not parts:
        return torch.zeros(0, dtype=torch.long)
    return torch.sort(torch.cat(parts)).values

"""scikit-learn's 8x8 digits (1797 images, always available): CPU-sized twins of all three settings.

ssl: a balanced label budget; mlc: named binary attributes (of the digit, of the image, random controls;
see trainables/data/digits_attributes.py);
dg: four visibly different domains (original, inverted, rotated, noisy) from disjoint quarters.
Validation: ssl and mlc a fixed 15% split (270 images), dg each source domain's held-out tenth; `val_labels`
draws a part of it per seed (`trainables.data.build_data`).
"""

from __future__ import annotations

from functools import lru_cache

import torch

from trainables.data.base import (
    DataInfo,
    DataRequest,
    DatasetStatus,
    DGData,
    MLCData,
    SSLData,
    TensorImageSet,
)
from trainables.data.digits_attributes import (
    ALL_ATTRIBUTES,
    ATTRIBUTES,
    attribute_table,
    class_attributes,
)
from trainables.data.digits_attributes import describe as describe_attributes
from trainables.data.digits_source import load
from trainables.data.registry import resize_images
from trainables.data.splits import (
    SPLIT_SEED,
    balanced_budget,
    generator,
    hide_main_labels,
    per_class_pick,
    select_attributes,
    split_fraction,
    stratified_parts,
)
from trainables.errors import ConfigError

NUM_CLASSES = 10
TEST_FRACTION, VAL_FRACTION = 0.30, 0.15
DG_VAL_FRACTION = 0.1  # dg: each source domain's held-out part (validation)
DOMAINS = ("original", "inverted", "rotated", "noisy")
NOISE_SD, NOISE_SEED = 0.25, 2000
PATH = "sklearn.datasets.load_digits (bundled with scikit-learn)"


@lru_cache(maxsize=1)
def fixed_split(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train, val, test) positions: a fixed stratified 55/15/30 split."""
    n = len(labels)
    n_test, n_val = round(TEST_FRACTION * n), round(VAL_FRACTION * n)
    test, val, train = stratified_parts(labels, [n_test, n_val, n - n_test - n_val], SPLIT_SEED)
    return train, val, test


def attributes(labels: torch.Tensor) -> torch.Tensor:
    """The [N, 18] 0/1 matrix of the default attributes (`ATTRIBUTES` order) for digit `labels`."""
    return class_attributes(labels, ATTRIBUTES)


def domain_images(name: str, images: torch.Tensor) -> torch.Tensor:
    """`images` as seen in domain `name` (fixed transforms; noise drawn with a fixed seed)."""
    if name == "original":
        return images.clone()
    if name == "inverted":
        return 1.0 - images
    if name == "rotated":
        return torch.rot90(images, 1, dims=(2, 3)).contiguous()
    if name == "noisy":
        noise = torch.randn(images.shape, generator=generator(NOISE_SEED)) * NOISE_SD
        return (images + noise).clamp_(0.0, 1.0)
    raise ConfigError(f"unknown target_domain {name!r} for digits; valid names: {', '.join(DOMAINS)}")


class Digits:
    """The digits data set entry of `DATASETS`."""

    settings = ("ssl", "mlc", "dg")

    def info(self, request: DataRequest, num_classes: int) -> DataInfo:
        size = request.image_size or 8
        return DataInfo("digits", (1, size, size), num_classes, (0.3053,), (0.3760,), augment="none")

    def build(self, request: DataRequest) -> SSLData | MLCData | DGData:
        images, labels = load()
        images = resize_images(images, request.image_size)
        if request.setting == "ssl":
            return self._ssl(request, images, labels)
        if request.setting == "mlc":
            return self._mlc(request, images, labels)
        if request.setting == "dg":
            return self._dg(request, images, labels)
        raise ConfigError(
            f"data set 'digits' supports settings: {', '.join(self.settings)}; got {request.setting!r}"
        )

    def _ssl(self, request: DataRequest, images: torch.Tensor, labels: torch.Tensor) -> SSLData:
        train, val, test = fixed_split(labels)
        chosen = balanced_budget(labels[train], NUM_CLASSES, request.label_budget, request.seed, "digits")
        is_labeled = torch.zeros(len(train), dtype=torch.bool)
        is_labeled[chosen] = True
        rest = train[~is_labeled]
        return SSLData(
            info=self.info(request, NUM_CLASSES),
            labeled=TensorImageSet(images[train[chosen]], labels[train[chosen]]),
            unlabeled=TensorImageSet(images[rest], torch.full((len(rest),), -1, dtype=torch.long)),
            val=TensorImageSet(images[val], labels[val]),
            test=TensorImageSet(images[test], labels[test]),
        )

    def _mlc(self, request: DataRequest, images: torch.Tensor, labels: torch.Tensor) -> MLCData:
        main, aux = select_attributes(ALL_ATTRIBUTES, request, "digits", defaults=ATTRIBUTES)
        columns = [ALL_ATTRIBUTES.index(n) for n in [main, *aux]]
        targets = attribute_table()[:, columns]
        train, val, test = fixed_split(labels)
        return MLCData(
            info=self.info(request, 2),
            main_name=main,
            aux_names=aux,
            train=TensorImageSet(images[train], hide_main_labels(targets[train], request, "digits")),
            val=TensorImageSet(images[val], targets[val]),
            test=TensorImageSet(images[test], targets[test]),
        )

    def _dg(self, request: DataRequest, images: torch.Tensor, labels: torch.Tensor) -> DGData:
        sources = self.aux_names(request)
        quarters = dict(zip(DOMAINS, domain_parts(labels)))
        sets: dict[str, TensorImageSet] = {}
        vals: dict[str, TensorImageSet] = {}
        for name in sources:
            idx = quarters[name]
            domain = TensorImageSet(domain_images(name, images[idx]), labels[idx])
            train, val = split_fraction(domain.targets, DG_VAL_FRACTION)
            sets[name], vals[name] = domain.subset(train), domain.subset(val)
        idx = quarters[request.target_domain]
        target = TensorImageSet(domain_images(request.target_domain, images[idx]), labels[idx])
        chosen = per_class_pick(target.targets, NUM_CLASSES, request.per_class, request.seed, "digits")
        return DGData(
            info=self.info(request, NUM_CLASSES),
            target_domain=request.target_domain,
            sources=sets,
            source_val=vals,
            target_labeled=target.subset(chosen),
            target_test=target,
            class_names=[str(d) for d in range(10)],
        )

    def check(self, data_root: str) -> DatasetStatus:
        _, labels = load()
        train, val, test = fixed_split(labels)
        return DatasetStatus("digits", True, {"train": len(train), "val": len(val), "test": len(test)}, PATH)

    def describe(self) -> str:
        """The multi-label attributes: name, kind, default or opt-in, share positive, definition."""
        return describe_attributes()

    def aux_names(self, request: DataRequest) -> list[str]:
        if request.setting == "mlc":
            return select_attributes(ALL_ATTRIBUTES, request, "digits", defaults=ATTRIBUTES)[1]
        if request.setting == "dg":
            return source_domains(request.target_domain)
        return []

    def val_size(self, request: DataRequest) -> int:
        """Labeled images of the validation split, the most `val_labels` can draw: ssl and mlc the fixed 15%
        split (270); dg the source domains' held-out tenths together."""
        _, labels = load()
        if request.setting == "dg":
            parts = domain_parts(labels)
            sources = source_domains(request.target_domain)
            return sum(round(DG_VAL_FRACTION * len(parts[DOMAINS.index(d)])) for d in sources)
        return len(fixed_split(labels)[1])

    def max_budget(self, request: DataRequest) -> int:
        """The largest label_budget (ssl: balanced over the classes of the training split; mlc: its size) or
        per_class (dg: the target quarter's smallest class), from the labels alone."""
        _, labels = load()
        if request.setting == "dg":
            source_domains(request.target_domain)  # refuses an unknown target domain
            target = domain_parts(labels)[DOMAINS.index(request.target_domain)]
            return min(int((labels[target] == c).sum()) for c in range(NUM_CLASSES))
        train, _, _ = fixed_split(labels)
        if request.setting == "mlc":
            return len(train)
        counts = [int((labels[train] == c).sum()) for c in range(NUM_CLASSES)]
        extra = next((c for c in range(NUM_CLASSES) if counts[c] <= min(counts)), NUM_CLASSES)
        return NUM_CLASSES * min(counts) + extra  # the remainder of a budget goes to the lowest classes


def source_domains(target: str) -> list[str]:
    """The other three domains, in `DOMAINS` order; ConfigError for an unknown target domain."""
    if target not in DOMAINS:
        raise ConfigError(f"unknown target_domain {target!r} for digits; valid names: {', '.join(DOMAINS)}")
    return [d for d in DOMAINS if d != target]


def domain_parts(labels: torch.Tensor) -> list[torch.Tensor]:
    """Positions of the four disjoint stratified quarters of all images, in `DOMAINS` order (fixed)."""
    n = len(labels)
    sizes = [n // 4 + (1 if i < n % 4 else 0) for i in range(4)]
    return stratified_parts(labels, sizes, SPLIT_SEED)

"""What every data set hands to the training loop: image sets and one bundle per setting.

Images are float tensors [C, H, W] in [0, 1] of one fixed size per data set (augmentation happens
on batches in the training loop); normalisation constants travel with the bundle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset


class ImageSet(Dataset):
    """A split: `images` indexable by position, `targets` a LongTensor [N] or [N, T] in memory."""

    targets: torch.Tensor

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [B, C, H, W] and targets for `indices` (the loop's fast path for in-memory sets)."""
        items = [self[int(i)] for i in indices]
        return torch.stack([x for x, _ in items]), self.targets[indices]

    @property
    def in_memory(self) -> bool:
        return False

    def subset(self, indices: torch.Tensor) -> ImageSet:
        """The items at `indices` (positions into this set), in that order."""
        return IndexedImageSet(self, indices)


class IndexedImageSet(ImageSet):
    """Some items of another image set, by position: `subset` of a set that has no faster one."""

    def __init__(self, base: ImageSet, indices: torch.Tensor) -> None:
        self.base, self.indices = base, indices.long()
        self.targets = base.targets[self.indices]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base[int(self.indices[i])][0], self.targets[i]


class TensorImageSet(ImageSet):
    """Images held in memory as uint8 [N, C, H, W] (0-255) or float [N, C, H, W] (0-1)."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        if images.shape[0] != targets.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {targets.shape[0]} targets")
        self.images = images
        self.targets = targets.long()

    def _to_float(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._to_float(self.images[i]), self.targets[i]

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._to_float(self.images[indices]), self.targets[indices]

    def subset(self, indices: torch.Tensor) -> TensorImageSet:
        return TensorImageSet(self.images[indices], self.targets[indices])

    @property
    def in_memory(self) -> bool:
        return True


class FileImageSet(ImageSet):
    """Images read from files on demand (CelebA, PACS), decoded with `load` to a fixed-size tensor."""

    def __init__(self, paths: Sequence[str], targets: torch.Tensor, load: Callable[[str], torch.Tensor]):
        if len(paths) != targets.shape[0]:
            raise ValueError(f"{len(paths)} files but {targets.shape[0]} targets")
        self.paths = list(paths)
        self.targets = targets.long()
        self.load = load

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.load(self.paths[i]), self.targets[i]

    def subset(self, indices: torch.Tensor) -> FileImageSet:
        return FileImageSet([self.paths[int(i)] for i in indices], self.targets[indices], self.load)


@dataclass
class DataInfo:
    """Facts the model and the loop need, whatever the setting."""

    name: str
    image_shape: tuple[int, int, int]       # (C, H, W) of every image
    num_classes: int                         # main task classes (2 for a binary attribute)
    mean: tuple[float, ...]                  # per-channel normalisation
    std: tuple[float, ...]
    augment: str = "none"                    # train-time batch augmentation: see trainables.augment


@dataclass
class SSLData:
    """Semi-supervised: a few labeled images, many unlabeled ones (labels hidden: targets are -1)."""

    info: DataInfo
    labeled: ImageSet
    unlabeled: ImageSet
    val: ImageSet
    test: ImageSet
    val_words = "its validation split"       # what the validation split is, in messages

    def val_sets(self) -> dict[str, ImageSet]:
        """The validation split by part (one part here; dg has one per source domain)."""
        return {"val": self.val}

    def with_val_sets(self, sets: dict[str, ImageSet]) -> SSLData:
        return dataclasses.replace(self, val=sets["val"])


@dataclass
class MLCData:
    """Multi-label: targets [N, 1 + K]: column 0 the main attribute (-1 where unlabeled), then K auxiliary."""

    info: DataInfo
    main_name: str
    aux_names: list[str]
    train: ImageSet          # all training images; main label present on the label budget only
    val: ImageSet            # every label present
    test: ImageSet
    val_words = "its validation split"

    def val_sets(self) -> dict[str, ImageSet]:
        return {"val": self.val}

    def with_val_sets(self, sets: dict[str, ImageSet]) -> MLCData:
        return dataclasses.replace(self, val=sets["val"])


@dataclass
class DGData:
    """Domain generalization: source domains (auxiliary tasks) and a target domain (the main task).

    Validation is on the source domains' held-out parts, never on target labels (the target's few labels train
    the main task, its images are the test set): `val_labels` draws that many labeled source images, over the
    domains in proportion to their held-out parts and per class within each (`splits.restrict_validation`)."""

    info: DataInfo
    target_domain: str
    sources: dict[str, ImageSet]             # each source domain's training split (9 of 10 parts)
    source_val: dict[str, ImageSet]          # each source domain's validation split (1 of 10 parts)
    target_labeled: ImageSet                 # N_m labeled target images per class
    target_test: ImageSet                    # the whole target domain
    class_names: list[str] = field(default_factory=list)
    val_words = "its validation split (the source domains' held-out parts)"

    def val_sets(self) -> dict[str, ImageSet]:
        return dict(self.source_val)

    def with_val_sets(self, sets: dict[str, ImageSet]) -> DGData:
        return dataclasses.replace(self, source_val={name: sets[name] for name in self.source_val})


BUNDLES: dict[str, type] = {"ssl": SSLData, "mlc": MLCData, "dg": DGData}   # each setting's bundle


@dataclass(frozen=True)
class DataRequest:
    """What the training loop asks a data set for."""

    setting: str                 # "ssl", "mlc" or "dg"
    data_root: str
    seed: int = 0
    label_budget: int = 0        # ssl: labeled images, balanced per class; mlc: images with the main label
    label_fraction: float = 0.0  # mlc: fraction of training images with the main label
    per_class: int = 0           # dg: N_m labeled target images per class
    main_attribute: str = ""     # mlc
    aux_attributes: tuple[str, ...] = ()  # mlc: empty -> every other attribute
    target_domain: str = ""      # dg
    image_size: int = 0          # 0 -> the data set's native size
    val_labels: int = 0          # labeled validation images drawn per seed from the validation split; 0 -> all


@dataclass
class DatasetStatus:
    """One row of `python -m trainables.data`: found or missing, counts per split, what to do."""

    name: str
    found: bool
    splits: dict[str, int] = field(default_factory=dict)
    path: str = ""
    advice: str = ""

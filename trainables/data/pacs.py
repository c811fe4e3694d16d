"""PACS (domain generalization): `<root>/pacs/<domain>/<class>/*.{jpg,jpeg,png}`, four domains, seven classes.

The three source domains are auxiliary tasks (fixed 9:1 train/val split each); the target domain gives
N_m labeled images per class (request seed) and is tested on all of its images.

Validation is on the source domains' held-out tenths, never on target labels: the target domain's few labels
are the main task's training labels (N_m per class) and its images are the test set. `val_labels` therefore
draws labeled source images (`trainables.data.build_data`): over the source domains in proportion to their
held-out parts, per class within each.
"""

from __future__ import annotations

import os

import torch

from trainables.data.base import DataInfo, DataRequest, DatasetStatus, DGData, FileImageSet
from trainables.data.registry import ImageFileLoader, data_not_found, not_found_message
from trainables.data.splits import per_class_pick, split_fraction
from trainables.errors import ConfigError

FOLDER = "pacs"
VAL_FRACTION = 0.1  # each source domain's held-out part (validation)
DOMAINS = ("photo", "art_painting", "cartoon", "sketch")
CLASSES = ("dog", "elephant", "giraffe", "guitar", "horse", "house", "person")
EXTENSIONS = (".jpg", ".jpeg", ".png")
SOURCE = "https://domaingeneralization.github.io/#data (the PACS image folders, e.g. 'kfold/')"
LAYOUT = f"{FOLDER}/<domain>/<class>/*.jpg for domains {', '.join(DOMAINS)} and classes {', '.join(CLASSES)}"
DEFAULT_SIZE = 224
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's, as for pretrained ResNets


def list_domain(folder: str) -> tuple[list[str], torch.Tensor]:
    """Sorted image paths of one domain folder and their class indices (`CLASSES` order)."""
    paths, labels = [], []
    for c, name in enumerate(CLASSES):
        class_dir = os.path.join(folder, name)
        if not os.path.isdir(class_dir):
            continue
        files = sorted(f for f in os.listdir(class_dir) if f.lower().endswith(EXTENSIONS))
        paths += [os.path.join(class_dir, f) for f in files]
        labels += [c] * len(files)
    return paths, torch.tensor(labels, dtype=torch.long)


def check_target(target: str) -> list[str]:
    """The source domains (the others, in `DOMAINS` order) of a valid target domain."""
    if target not in DOMAINS:
        raise ConfigError(f"unknown target_domain {target!r} for pacs; valid names: {', '.join(DOMAINS)}")
    return [d for d in DOMAINS if d != target]


class Pacs:
    """The pacs entry of `DATASETS` (dg only)."""

    settings = ("dg",)

    def folder(self, data_root: str) -> tuple[str, list[str]]:
        path = os.path.join(data_root, FOLDER)
        return path, [d + "/" for d in DOMAINS if not os.path.isdir(os.path.join(path, d))]

    def build(self, request: DataRequest) -> DGData:
        sources = check_target(request.target_domain)
        path, missing = self.folder(request.data_root)
        if missing:
            raise data_not_found("pacs", path, missing, SOURCE, LAYOUT)
        size = request.image_size or DEFAULT_SIZE
        load = ImageFileLoader(size)
        domains = {}
        for name in DOMAINS:
            paths, labels = list_domain(os.path.join(path, name))
            if not paths:
                raise data_not_found("pacs", os.path.join(path, name), ["images"], SOURCE, LAYOUT)
            domains[name] = FileImageSet(paths, labels, load)
        train_sets, val_sets = {}, {}
        for name in sources:
            train, val = split_fraction(domains[name].targets, VAL_FRACTION)
            train_sets[name], val_sets[name] = domains[name].subset(train), domains[name].subset(val)
        target = domains[request.target_domain]
        where = f"pacs target domain {request.target_domain}"
        chosen = per_class_pick(target.targets, len(CLASSES), request.per_class, request.seed, where)
        return DGData(
            info=DataInfo("pacs", (3, size, size), len(CLASSES), MEAN, STD, augment="resized_crop_flip"),
            target_domain=request.target_domain,
            sources=train_sets,
            source_val=val_sets,
            target_labeled=target.subset(chosen),
            target_test=target,
            class_names=list(CLASSES),
        )

    def check(self, data_root: str) -> DatasetStatus:
        path, missing = self.folder(data_root)
        counts = {d: len(list_domain(os.path.join(path, d))[0]) for d in DOMAINS if d + "/" not in missing}
        missing += [d + "/ (no images)" for d, n in counts.items() if n == 0]
        if missing:
            return DatasetStatus(
                "pacs", False, counts, path, not_found_message("pacs", path, missing, SOURCE, LAYOUT)
            )
        return DatasetStatus("pacs", True, counts, path)

    def aux_names(self, request: DataRequest) -> list[str]:
        return check_target(request.target_domain)

    def max_budget(self, request: DataRequest) -> int | None:
        """The largest per_class: the target domain's smallest class (file names listed, no image read);
        None when the data is not under the data root here (a cluster's nodes may have it elsewhere)."""
        check_target(request.target_domain)
        folder = os.path.join(request.data_root, FOLDER, request.target_domain)
        if not os.path.isdir(folder):
            return None
        _, labels = list_domain(folder)
        return min(int((labels == c).sum()) for c in range(len(CLASSES)))

    def val_size(self, request: DataRequest) -> int | None:
        """The most `val_labels` can draw: the source domains' held-out tenths together (file names listed, no
        image read); None when a source domain is not under the data root here."""
        folders = [os.path.join(request.data_root, FOLDER, d) for d in check_target(request.target_domain)]
        if not all(os.path.isdir(f) for f in folders):
            return None
        return sum(round(VAL_FRACTION * len(list_domain(f)[0])) for f in folders)

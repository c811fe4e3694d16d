"""CelebA (multi-label): torchvision's layout under `<root>/celeba/`, text files parsed here (no MD5 checks).

One main attribute (paper: 5_o_Clock_Shadow) labeled on a fraction of the training images, the other 39
auxiliary; images center-cropped to 178x178 and resized (default 64).
"""

from __future__ import annotations

import os

import torch

from trainables.data.base import DataInfo, DataRequest, DatasetStatus, FileImageSet, MLCData
from trainables.data.registry import ImageFileLoader, data_not_found, not_found_message
from trainables.data.splits import hide_main_labels, select_attributes
from trainables.errors import ConfigError

FOLDER = "celeba"
IMAGES, ATTR_FILE, PARTITION_FILE = "img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt"
SOURCE = (
    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Align&Cropped Images img_align_celeba.zip,"
    " Anno/list_attr_celeba.txt, Eval/list_eval_partition.txt)"
)
LAYOUT = f"{FOLDER}/{IMAGES}/*.jpg, {FOLDER}/{ATTR_FILE} and {FOLDER}/{PARTITION_FILE}"
ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair"
    " Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair"
    " Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face"
    " Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair"
    " Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
CROP, DEFAULT_SIZE = 178, 64
MEAN, STD = (0.5063, 0.4258, 0.3832), (0.3107, 0.2904, 0.2897)
SPLITS = ("train", "val", "test")
VAL_IMAGES = 19_867  # the validation part of CelebA's standard partition


def read_attributes(path: str) -> tuple[list[str], list[str], torch.Tensor]:
    """(attribute names, file names, 0/1 LongTensor [N, 40]) from list_attr_celeba.txt."""
    with open(path) as f:
        lines = f.read().splitlines()
    names = lines[1].split()
    files, rows = [], []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise ConfigError(
                f"{path}:{number}: expected a file name and {len(names)} values, got {len(parts)} fields"
            )
        files.append(parts[0])
        rows.append([int(v) for v in parts[1:]])
    values = torch.tensor(rows, dtype=torch.long).reshape(-1, len(names))
    return names, files, (values > 0).long()


def read_partition(path: str) -> dict[str, int]:
    """File name -> 0 train, 1 val, 2 test, from list_eval_partition.txt."""
    with open(path) as f:
        return {parts[0]: int(parts[1]) for parts in (line.split() for line in f) if parts}


class CelebA:
    """The celeba entry of `DATASETS` (mlc only)."""

    settings = ("mlc",)

    def folder(self, data_root: str) -> tuple[str, list[str]]:
        path = os.path.join(data_root, FOLDER)
        missing = [f for f in (ATTR_FILE, PARTITION_FILE) if not os.path.isfile(os.path.join(path, f))]
        if not os.path.isdir(os.path.join(path, IMAGES)):
            missing.append(IMAGES + "/")
        return path, missing

    def build(self, request: DataRequest) -> MLCData:
        path, missing = self.folder(request.data_root)
        if missing:
            raise data_not_found("celeba", path, missing, SOURCE, LAYOUT)
        names, files, values = read_attributes(os.path.join(path, ATTR_FILE))
        main, aux = select_attributes(names, request, "celeba")
        targets = values[:, [names.index(n) for n in [main, *aux]]]
        partition = read_partition(os.path.join(path, PARTITION_FILE))
        part = torch.tensor([partition.get(f, -1) for f in files])
        image_dir = os.path.join(path, IMAGES)
        first = os.path.join(image_dir, files[0]) if files else image_dir
        if not os.path.isfile(first):
            raise data_not_found("celeba", image_dir, [os.path.basename(first)], SOURCE, LAYOUT)
        size = request.image_size or DEFAULT_SIZE
        load = ImageFileLoader(size, CROP)

        def split(k: int, hide: bool = False) -> FileImageSet:
            idx = (part == k).nonzero().flatten()
            t = hide_main_labels(targets[idx], request, "celeba") if hide else targets[idx]
            return FileImageSet([os.path.join(image_dir, files[int(i)]) for i in idx], t, load)

        return MLCData(
            info=DataInfo("celeba", (3, size, size), 2, MEAN, STD, augment="flip"),
            main_name=main,
            aux_names=aux,
            train=split(0, hide=True),
            val=split(1),
            test=split(2),
        )

    def check(self, data_root: str) -> DatasetStatus:
        path, missing = self.folder(data_root)
        if missing:
            return DatasetStatus(
                "celeba", False, {}, path, not_found_message("celeba", path, missing, SOURCE, LAYOUT)
            )
        partition = read_partition(os.path.join(path, PARTITION_FILE))
        counts = {s: sum(1 for v in partition.values() if v == k) for k, s in enumerate(SPLITS)}
        present = sum(1 for e in os.scandir(os.path.join(path, IMAGES)) if e.name.endswith(".jpg"))
        if present < len(partition):
            advice = not_found_message(
                "celeba",
                path,
                [f"{len(partition) - present} of {len(partition)} images in {IMAGES}/"],
                SOURCE,
                LAYOUT,
            )
            return DatasetStatus("celeba", False, {**counts, "images": present}, path, advice)
        return DatasetStatus("celeba", True, counts, path)

    def aux_names(self, request: DataRequest) -> list[str]:
        return select_attributes(ATTRIBUTES, request, "celeba")[1]

    def max_budget(self, request: DataRequest) -> int:
        """The largest label_budget: the 162,770 training images of CelebA's standard partition."""
        return 162_770

    def val_size(self, request: DataRequest) -> int:
        """The most `val_labels` can draw: the validation part of list_eval_partition.txt when it is under the
        data root (a text file, no image read), else the standard partition's 19,867."""
        path = os.path.join(request.data_root, FOLDER, PARTITION_FILE)
        if not os.path.isfile(path):
            return VAL_IMAGES
        return sum(1 for v in read_partition(path).values() if v == 1)

"""Writers of tiny fake data sets in exactly the real on-disk formats, for tests that load through real code.

Each `write_fake_*(root, ...)` writes under `root` the layout `trainables.data` reads and returns nothing.
Labels are balanced (image i has class i % num_classes) and pixels are random but seeded.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence

import numpy as np
from PIL import Image

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair"
    " Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair"
    " Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face"
    " Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair"
    " Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
PACS_DOMAINS = ("photo", "art_painting", "cartoon", "sketch")
PACS_CLASSES = ("dog", "elephant", "giraffe", "guitar", "horse", "house", "person")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _cifar_batch(path: str, labels: list[int], rng: np.random.Generator, name: str) -> None:
    batch = {
        b"batch_label": name.encode(),
        b"labels": labels,
        b"data": rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8),
        b"filenames": [f"fake_{i}.png".encode() for i in range(len(labels))],
    }
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def write_fake_cifar10(root: str | os.PathLike, n_train: int = 100, n_test: int = 20, seed: int = 0) -> None:
    """`root/cifar-10-batches-py/`: data_batch_1..5 (n_train images in all), test_batch, batches.meta."""
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = [i % 10 for i in range(n_train)]
    for b, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        _cifar_batch(os.path.join(folder, f"data_batch_{b}"), [labels[i] for i in part], rng, f"batch {b}")
    _cifar_batch(os.path.join(folder, "test_batch"), [i % 10 for i in range(n_test)], rng, "test batch")
    meta = {b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_cases_per_batch": n_train // 5}
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump(meta, f, protocol=2)


def write_fake_svhn(
    root: str | os.PathLike, n_train: int = 100, n_test: int = 20, subfolder: bool = False, seed: int = 0
) -> None:
    """`root/{train,test}_32x32.mat` (or under `root/svhn/`): X [32,32,3,N] uint8, y [N,1] in 1..10."""
    from scipy.io import savemat

    folder = os.path.join(root, "svhn") if subfolder else os.fspath(root)
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, n in (("train_32x32.mat", n_train), ("test_32x32.mat", n_test)):
        digits = np.arange(n) % 10
        y = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(n, 1)
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        savemat(os.path.join(folder, name), {"X": x, "y": y})


def write_fake_celeba(
    root: str | os.PathLike,
    partition: Sequence[int] = (20, 6, 6),
    size: tuple[int, int] = (178, 218),
    seed: int = 0,
) -> None:
    """`root/celeba/`: img_align_celeba/NNNNNN.jpg, list_attr_celeba.txt, list_eval_partition.txt.

    `partition`: train/val/test counts; `size`: (width, height); 5_o_Clock_Shadow alternates, the rest random.
    """
    folder = os.path.join(root, "celeba")
    images = os.path.join(folder, "img_align_celeba")
    os.makedirs(images, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = sum(partition)
    files = [f"{i + 1:06d}.jpg" for i in range(n)]
    values = np.where(rng.random((n, len(CELEBA_ATTRIBUTES))) < 0.5, 1, -1)
    values[:, 0] = np.where(np.arange(n) % 2 == 0, 1, -1)  # the paper's main attribute: balanced
    lines = [str(n), " ".join(CELEBA_ATTRIBUTES) + " "]
    lines += [f"{f} " + " ".join(f"{v:2d}" for v in row) for f, row in zip(files, values)]
    with open(os.path.join(folder, "list_attr_celeba.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    parts = np.repeat(np.arange(3), partition)
    with open(os.path.join(folder, "list_eval_partition.txt"), "w") as f:
        f.write("".join(f"{name} {p}\n" for name, p in zip(files, parts)))
    for name in files:
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(images, name), quality=90)


def write_fake_pacs(
    root: str | os.PathLike,
    per_class: int | dict[str, int] = 10,
    size: int = 227,
    domains: Sequence[str] = PACS_DOMAINS,
    seed: int = 0,
) -> None:
    """`root/pacs/<domain>/<class>/*.jpg` (sketch: *.png), `per_class` per class (a dict: per domain)."""
    rng = np.random.default_rng(seed)
    for d, domain in enumerate(domains):
        count = per_class[domain] if isinstance(per_class, dict) else per_class
        ext = ".png" if domain == "sketch" else ".jpg"
        for c, name in enumerate(PACS_CLASSES):
            folder = os.path.join(root, "pacs", domain, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                base = 40 * d + 10 * c
                pixels = (base + rng.integers(0, 60, size=(size, size, 3))).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(os.path.join(folder, f"pic_{i:03d}{ext}"))

"""Endless, seeded, resumable batch streams over an image set, and step-derived random generators.

A stream's order depends only on its seed and how many batches it has given, so a resumed run
fast-forwards to the same place; with several data-parallel workers, every worker draws the same
global batch and keeps its own slice.
"""

from __future__ import annotations

import hashlib

import torch
from torch.utils.data import DataLoader

from trainables.data.base import ImageSet


def step_generator(seed: int, step: int, stream: str) -> torch.Generator:
    """A generator for one purpose at one step (augmentations, rotations): no state to save on resume."""
    digest = hashlib.sha256(f"{seed}/{step}/{stream}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


class _IndexBatches:
    """Endless batches of indices: a fresh seeded permutation each pass over the data."""

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if size == 0:
            raise ValueError("cannot draw batches from an empty image set")
        self.size, self.batch_size, self.rank, self.world = size, batch_size, rank, world
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long)
        self.position = 0
        self.given = 0

    def next(self) -> torch.Tensor:
        out = []
        need = self.batch_size
        while need > 0:
            if self.position >= len(self.order):
                self.order = torch.randperm(self.size, generator=self.generator)
                self.position = 0
            take = self.order[self.position:self.position + need]
            self.position += len(take)
            need -= len(take)
            out.append(take)
        self.given += 1
        batch = torch.cat(out)
        return batch.chunk(self.world)[self.rank] if self.world > 1 else batch

    def __iter__(self):
        while True:
            yield self.next().tolist()


class BatchStream:
    """`next()` -> (images [B, C, H, W] float in [0, 1], targets) on `device`, forever.

    In-memory sets are indexed directly; file-based ones are decoded by `num_workers` loader processes.
    `given` counts batches handed out; `BatchStream(..., start=given)` continues where it stopped.
    """

    def __init__(self, images: ImageSet, batch_size: int, seed: int, device: torch.device,
                 num_workers: int = 0, start: int = 0, rank: int = 0, world: int = 1) -> None:
        self.images, self.device = images, device
        self.batch_size = min(batch_size, len(images)) if len(images) else batch_size
        self.indices = _IndexBatches(len(images), self.batch_size, seed, rank, world)
        for _ in range(start):  # fast-forward: indices only, no images are read
            self.indices.next()
        self._loader = None
        if not images.in_memory:
            loader = DataLoader(images, batch_sampler=self.indices, num_workers=num_workers,
                                pin_memory=device.type == "cuda", persistent_workers=num_workers > 0)
            self._loader = iter(loader)
        self._given = start

    @property
    def given(self) -> int:
        return self._given

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        self._given += 1
        if self._loader is not None:
            x, y = next(self._loader)
        else:
            x, y = self.images.batch(self.indices.next())
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def iterate_once(images: ImageSet, batch_size: int, device: torch.device, num_workers: int = 0,
                 limit: int = 0, rank: int = 0, world: int = 1):
    """Every image once in order (the `rank`-th of `world` interleaved shards), for evaluation."""
    count = min(len(images), limit) if limit else len(images)
    positions = torch.arange(rank, count, world)
    if images.in_memory:
        for chunk in positions.split(batch_size):
            x, y = images.batch(chunk)
            yield x.to(device), y.to(device)
        return
    batches = [chunk.tolist() for chunk in positions.split(batch_size)]
    loader = DataLoader(images, batch_sampler=batches, num_workers=num_workers)
    for x, y in loader:
        yield x.to(device), y.to(device)

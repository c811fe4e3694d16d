"""Endless, seeded, resumable batch streams over an image set, and step-derived random generators.

A stream's order depends only on its seed and how many batches it has given, so a resumed run
fast-forwards to the same place; with several data-parallel workers, every worker draws the same
global batch and keeps its own slice.
"""

from __future__ import annotations

import hashlib
from collections import deque

import torch
from torch.utils.data import DataLoader

from trainables.augment import to_device
from trainables.data.base import ImageSet, TensorImageSet
from trainables.data.registry import ImageFileLoader


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


class _RecordedBatches:
    """The index batches a DataLoader asks for, remembered in order (the loader hands the images back in
    the same order), so each batch of images can be stored at its indices."""

    def __init__(self, indices: _IndexBatches) -> None:
        self.indices = indices
        self.pending: deque[list[int]] = deque()

    def __iter__(self):
        for batch in self.indices:
            self.pending.append(batch)
            yield batch


class BatchStream:
    """`next()` -> (images [B, C, H, W] float in [0, 1], targets) on `device`, forever.

    In-memory sets are indexed directly, on `device` (a GPU holds a copy of the set: no copy per batch);
    file-based ones are decoded by `num_workers` loader processes. With `cache`, the decoded images of a
    file-based set are kept on `device` (uint8) as they arrive; after one pass over the set the loader
    stops and batches come from there, bit for bit the same images (only for `ImageFileLoader` sets,
    whose pixels are exact multiples of 1/255).
    `given` counts batches handed out; `BatchStream(..., start=given)` continues where it stopped.
    """

    def __init__(self, images: ImageSet, batch_size: int, seed: int, device: torch.device,
                 num_workers: int = 0, start: int = 0, rank: int = 0, world: int = 1, cache: bool = False) -> None:
        self.images, self.device = images, device
        self.batch_size = min(batch_size, len(images)) if len(images) else batch_size
        self._seed, self._rank, self._world = seed, rank, world
        self.indices = _IndexBatches(len(images), self.batch_size, seed, rank, world)
        for _ in range(start):  # fast-forward: indices only, no images are read
            self.indices.next()
        self._given = start
        self._loader = None
        self._memory: TensorImageSet | None = None
        if isinstance(images, TensorImageSet):
            self._memory = images if device.type == "cpu" else TensorImageSet(
                images.images.to(device), images.targets.to(device))
            return
        if not images.in_memory:
            self._cache = cache and isinstance(getattr(images, "load", None), ImageFileLoader)
            self._seen: set[int] = set()
            self._stored: torch.Tensor | None = None
            self._batches = _RecordedBatches(self.indices)
            loader = DataLoader(images, batch_sampler=self._batches, num_workers=num_workers,
                                pin_memory=device.type == "cuda", persistent_workers=num_workers > 0)
            self._loader = iter(loader)

    @property
    def given(self) -> int:
        return self._given

    @property
    def cached(self) -> bool:
        """Whether batches now come from the decoded images kept on the device (file-based sets only)."""
        return self._loader is None and not isinstance(self.images, TensorImageSet) and self._memory is not None

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        self._given += 1
        if self._loader is not None:
            x, y = next(self._loader)
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            batch = self._batches.pending.popleft()
            if self._cache:
                self._store(batch, x)
            return x, y
        if self._memory is not None:
            return self._memory.batch(to_device(self.indices.next(), self.device))
        x, y = self.images.batch(self.indices.next())  # another in-memory kind of set
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def _store(self, batch: list[int], x: torch.Tensor) -> None:
        """Keeps a decoded batch on the device; once every image has been seen, batches come from there."""
        if self._stored is None:
            self._stored = torch.empty((len(self.images), *x.shape[1:]), dtype=torch.uint8, device=self.device)
        self._stored[to_device(torch.tensor(batch), self.device)] = x.mul(255).round_().to(torch.uint8)
        self._seen.update(batch)
        if len(self._seen) == len(self.images):
            self._memory = TensorImageSet(self._stored, self.images.targets.to(self.device))
            self._loader, self._batches, self._seen = None, None, set()   # the loader's workers end
            self.indices = _IndexBatches(len(self.images), self.batch_size, self._seed, self._rank, self._world)
            for _ in range(self._given):  # the loader drew ahead: continue from the batches handed out
                self.indices.next()


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

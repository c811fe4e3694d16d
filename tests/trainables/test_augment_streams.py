"""Batched augmentations (trainables.augment) and seeded, resumable batch streams (trainables.streams)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from trainables.augment import AUGMENTATIONS, cutout, gaussian_noise, rotate
from trainables.data.base import FileImageSet, TensorImageSet
from trainables.data.registry import ImageFileLoader
from trainables.streams import BatchStream, iterate_once, step_generator

CPU = torch.device("cpu")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# every augmentation the loop can use: the registered ones and those exemplar-MT applies
ALL = {name: AUGMENTATIONS.get(name) for name in AUGMENTATIONS.names()} | {
    "gaussian_noise": gaussian_noise, "cutout": cutout}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(b: int = 16, c: int = 3, size: int = 32, seed: int = 0, dtype=torch.float32, device="cpu"):
    """Smooth-ish random images in [0, 1] (a low-resolution pattern upsampled), so crops look alike."""
    low = torch.rand(b, c, size // 4, size // 4, generator=gen(seed), dtype=torch.float64)
    x = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return x.to(device=device, dtype=dtype)


# --- augmentations -----------------------------------------------------------------------------------------


def test_registry_names() -> None:
    assert AUGMENTATIONS.names() == ["crop", "flip", "flip_crop", "none", "resized_crop_flip"]


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("shape", [(16, 1, 8, 8), (16, 3, 32, 32)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
def test_shape_dtype_device_range_determinism(name, shape, dtype, device) -> None:
    b, c, size, _ = shape
    x = images(b, c, size, dtype=dtype, device=device)
    out = ALL[name](x, gen(1))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(out, ALL[name](x, gen(1)))                  # same generator seed: same result
    if name != "none":
        assert not torch.equal(out, ALL[name](x, gen(2)))          # another seed: other random choices
    assert torch.equal(x, images(b, c, size, dtype=dtype, device=device))  # the input is left alone


def test_crop_is_a_reflect_padded_translation() -> None:
    x = images(64, 3, 32)
    out = AUGMENTATIONS.get("crop")(x, gen(0))
    pad = 4                                                         # H / 8
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    shifts = []
    for i in range(len(x)):
        found = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                 if torch.equal(out[i], padded[i, :, dy:dy + 32, dx:dx + 32])]
        assert found, f"image {i} is not a translated window of the reflect-padded image"
        shifts.append(found[0])
    assert len(set(shifts)) > 10                                    # many different offsets
    assert any(s != (pad, pad) for s in shifts)
    shifted = next(i for i, s in enumerate(shifts) if s[0] != pad and s[1] != pad)
    assert not torch.equal(out[shifted], x[shifted])                # content really moved
    small = AUGMENTATIONS.get("crop")(images(8, 1, 8), gen(0))      # 8x8 digits: pad 1
    assert small.shape == (8, 1, 8, 8)


def test_flip_flips_about_half() -> None:
    x = images(1000, 1, 8)
    out = AUGMENTATIONS.get("flip")(x, gen(0))
    flipped = torch.tensor([torch.equal(o, xi.flip(2)) for o, xi in zip(out, x)])
    kept = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x)])
    assert bool((flipped | kept).all())
    assert 0.42 < flipped.float().mean() < 0.58


def test_rotate_is_rot90_per_image() -> None:
    x = images(12, 3, 16)
    turns = torch.tensor([0, 1, 2, 3] * 3)
    out = rotate(x, turns)
    for i in range(len(x)):
        assert torch.equal(out[i], torch.rot90(x[i], int(turns[i]), dims=(1, 2)))
    assert torch.equal(rotate(x, torch.zeros(12, dtype=torch.long)), x)


@pytest.mark.parametrize("size", [8, 32])
def test_cutout_zeroes_one_square(size: int) -> None:
    x = 0.1 + 0.9 * images(200, 3, size)                           # no zero pixels to begin with
    out = cutout(x, gen(0))
    side = round(0.5 * size)
    full = 0
    for i in range(len(x)):
        zero = out[i] == 0
        assert bool((zero == zero[0:1]).all())                      # the same pixels in every channel
        zero = zero[0]
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert len(rows) > 0 and len(cols) > 0
        assert torch.equal(rows, torch.arange(int(rows[0]), int(rows[-1]) + 1))    # contiguous
        assert torch.equal(cols, torch.arange(int(cols[0]), int(cols[-1]) + 1))
        assert torch.equal(zero, zero.any(1)[:, None] & zero.any(0)[None, :])       # one rectangle
        assert len(rows) <= side and len(cols) <= side              # a square, clipped at the border
        inside = 0 < rows[0] and rows[-1] < size - 1 and 0 < cols[0] and cols[-1] < size - 1
        if inside:
            assert len(rows) == len(cols) == side
            full += 1
        assert torch.equal(out[i][:, ~zero], x[i][:, ~zero])        # everything else untouched
    assert full > 0


def test_resized_crop_flip_changes_images_but_keeps_statistics() -> None:
    x = images(64, 3, 32)
    out = AUGMENTATIONS.get("resized_crop_flip")(x, gen(0))
    assert all(not torch.allclose(o, xi, atol=1e-3) for o, xi in zip(out, x))
    assert abs(float(out.mean()) - float(x.mean())) < 0.02
    assert abs(float(out.std()) - float(x.std())) < 0.1 * float(x.std())
    per_image = (out.mean((1, 2, 3)) - x.mean((1, 2, 3))).abs()
    assert float(per_image.max()) < 0.1                             # 80-100 % of the image stays in view


# --- step generators ---------------------------------------------------------------------------------------


def test_step_generator_is_deterministic_per_seed_step_and_stream() -> None:
    def draw(*key):
        return torch.rand(8, generator=step_generator(*key))

    assert torch.equal(draw(0, 5, "augment"), draw(0, 5, "augment"))
    others = [draw(1, 5, "augment"), draw(0, 6, "augment"), draw(0, 5, "rotation")]
    assert all(not torch.equal(draw(0, 5, "augment"), o) for o in others)


# --- batch streams -----------------------------------------------------------------------------------------


def indexed(n: int) -> TensorImageSet:
    """Image i is filled with i / n (float) and has target i: batches reveal their positions."""
    values = torch.arange(n, dtype=torch.float32) / n
    return TensorImageSet(values.view(n, 1, 1, 1).expand(n, 1, 2, 2).clone(), torch.arange(n))


def positions(stream: BatchStream, batches: int) -> list[torch.Tensor]:
    return [stream.next()[1] for _ in range(batches)]


@pytest.mark.parametrize("n,batch", [(30, 10), (23, 7), (5, 8)])
def test_stream_is_endless_and_covers_every_item_once_per_pass(n: int, batch: int) -> None:
    stream = BatchStream(indexed(n), batch, seed=3, device=CPU)
    got = positions(stream, 4 * n)                                   # many passes
    assert all(len(b) == min(batch, n) for b in got)
    flat = torch.cat(got)
    for p in range(len(flat) // n):
        assert sorted(flat[p * n:(p + 1) * n].tolist()) == list(range(n))
    orders = {tuple(flat[p * n:(p + 1) * n].tolist()) for p in range(len(flat) // n)}
    assert len(orders) > 1                                           # a fresh permutation each pass
    x, y = BatchStream(indexed(n), batch, seed=3, device=CPU).next()
    assert torch.equal(x[:, 0, 0, 0], y.float() / n)                 # images and targets travel together
    assert stream.given == 4 * n


def test_stream_same_seed_same_order() -> None:
    a = positions(BatchStream(indexed(50), 8, seed=1, device=CPU), 20)
    b = positions(BatchStream(indexed(50), 8, seed=1, device=CPU), 20)
    c = positions(BatchStream(indexed(50), 8, seed=2, device=CPU), 20)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not all(torch.equal(u, v) for u, v in zip(a, c))


@pytest.mark.parametrize("start", [0, 1, 6, 13])
def test_stream_fast_forward_continues_exactly(start: int) -> None:
    reference = positions(BatchStream(indexed(23), 7, seed=4, device=CPU), start + 10)
    resumed = BatchStream(indexed(23), 7, seed=4, device=CPU, start=start)
    assert resumed.given == start
    assert all(torch.equal(u, v) for u, v in zip(reference[start:], positions(resumed, 10)))
    assert resumed.given == start + 10


@pytest.mark.parametrize("start", [0, 5])
def test_stream_ranks_concatenate_to_the_single_worker_batch(start: int) -> None:
    whole = BatchStream(indexed(37), 8, seed=5, device=CPU, start=start)
    ranks = [BatchStream(indexed(37), 8, seed=5, device=CPU, start=start, rank=r, world=2) for r in (0, 1)]
    for _ in range(12):
        x, y = whole.next()
        parts = [r.next() for r in ranks]
        assert [len(p[1]) for p in parts] == [4, 4]
        assert torch.equal(torch.cat([p[1] for p in parts]), y)
        assert torch.equal(torch.cat([p[0] for p in parts]), x)


def write_pngs(folder, n: int = 11, size: int = 6) -> tuple[list[str], torch.Tensor]:
    """n small RGB PNG files, image i filled with grey level 20 * i (exact after decoding)."""
    paths = []
    for i in range(n):
        path = folder / f"img_{i:02d}.png"
        Image.fromarray(np.full((size, size, 3), 20 * i, dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths, torch.arange(n)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_stream_over_files_matches_in_memory(tmp_path, num_workers: int) -> None:
    paths, targets = write_pngs(tmp_path)
    files = FileImageSet(paths, targets, ImageFileLoader(6))
    memory = TensorImageSet(torch.stack([files[i][0] for i in range(len(files))]), targets)
    assert not files.in_memory and memory.in_memory
    for start, rank, world in [(0, 0, 1), (3, 0, 1), (2, 1, 2)]:
        a = BatchStream(files, 4, seed=9, device=CPU, num_workers=num_workers, start=start, rank=rank, world=world)
        b = BatchStream(memory, 4, seed=9, device=CPU, start=start, rank=rank, world=world)
        for _ in range(8):                                          # several passes over the 11 files
            (xa, ya), (xb, yb) = a.next(), b.next()
            assert xa.shape == (4 // world, 3, 6, 6) and xa.dtype == torch.float32
            assert torch.equal(ya, yb) and torch.equal(xa, xb)
            assert torch.allclose(xa[:, 0, 0, 0], ya.float() * 20 / 255)
        assert a.given == start + 8


def test_empty_image_set_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        BatchStream(indexed(0), 4, seed=0, device=CPU)


# --- iterate_once ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("world", [1, 2, 3])
def test_iterate_once_covers_all_items_once_sharded(world: int) -> None:
    data = indexed(23)
    shards = [torch.cat([y for _, y in iterate_once(data, 5, CPU, rank=r, world=world)]) for r in range(world)]
    assert sorted(torch.cat(shards).tolist()) == list(range(23))
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1
    for r, shard in enumerate(shards):
        assert shard.tolist() == list(range(r, 23, world))          # in order, interleaved
    limited = [torch.cat([y for _, y in iterate_once(data, 5, CPU, limit=10, rank=r, world=world)])
               for r in range(world)]
    assert sorted(torch.cat(limited).tolist()) == list(range(10))


@pytest.mark.parametrize("num_workers", [0, 1])
def test_iterate_once_over_files(tmp_path, num_workers: int) -> None:
    paths, targets = write_pngs(tmp_path)
    files = FileImageSet(paths, targets, ImageFileLoader(6))
    seen = []
    for r in range(2):
        for x, y in iterate_once(files, 4, CPU, num_workers=num_workers, rank=r, world=2):
            assert x.shape[1:] == (3, 6, 6) and len(x) <= 4
            assert torch.allclose(x[:, 0, 0, 0], y.float() * 20 / 255)
            seen += y.tolist()
    assert sorted(seen) == list(range(11))

"""Batched image augmentations by name, on whatever device the batch is, driven by an explicit generator.

Each takes images [B, C, H, W] and a CPU `torch.Generator` and returns a new batch of the same shape.
Random choices are drawn on the CPU from that generator (the same choices on every device) and reach a
GPU batch through pinned memory without blocking: no augmentation waits for the GPU. Gaussian noise, a
whole image's worth of numbers, is the exception: on a GPU it is drawn there, from a generator seeded by
the CPU one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from arml.registry import Registry

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
AUGMENTATIONS: Registry[Augment] = Registry("augmentation")


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on `device` without making the host wait: through pinned memory on CUDA (a copy from
    pageable memory would wait for the GPU to finish its queue), as is elsewhere."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _uniform(n: int, gen: torch.Generator, low: float, high: float, device) -> torch.Tensor:
    return to_device(torch.rand(n, generator=gen) * (high - low) + low, device)


@AUGMENTATIONS.register("none")
def none(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return x


@AUGMENTATIONS.register("flip")
def flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Horizontal flip of each image with probability 1/2."""
    mask = to_device(torch.rand(x.shape[0], generator=gen) < 0.5, x.device)
    return torch.where(mask[:, None, None, None], x.flip(3), x)


@AUGMENTATIONS.register("crop")
def crop(x: torch.Tensor, gen: torch.Generator, pad: int = 0) -> torch.Tensor:
    """Random translation by up to `pad` pixels (default H/8: 4 for 32x32), reflect padding."""
    b, _, h, w = x.shape
    pad = pad or max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = to_device(torch.randint(0, 2 * pad + 1, (b,), generator=gen), x.device)
    dx = to_device(torch.randint(0, 2 * pad + 1, (b,), generator=gen), x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


@AUGMENTATIONS.register("flip_crop")
def flip_crop(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return flip(crop(x, gen), gen)


@AUGMENTATIONS.register("resized_crop_flip")
def resized_crop_flip(x: torch.Tensor, gen: torch.Generator, scale: tuple[float, float] = (0.8, 1.0)) -> torch.Tensor:
    """Random crop of 80-100% of the area (aspect kept), resized back to full size, then a flip (PACS)."""
    b = x.shape[0]
    side = torch.sqrt(_uniform(b, gen, *scale, x.device))          # crop side as a fraction of the image
    ty = _uniform(b, gen, -1, 1, x.device) * (1 - side)              # crop centre, kept inside the image
    tx = _uniform(b, gen, -1, 1, x.device) * (1 - side)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = side, side
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return flip(F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False), gen)


def gaussian_noise(x: torch.Tensor, gen: torch.Generator, std: float = 0.15) -> torch.Tensor:
    """Additive Gaussian noise (exemplar-MT), clamped to [0, 1]. On CUDA the noise is drawn on the GPU from a
    generator seeded by `gen` (other numbers than on the CPU, as deterministic)."""
    if x.device.type == "cuda":
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        device_gen = torch.Generator(device=x.device).manual_seed(seed)
        noise = torch.randn(x.shape, generator=device_gen, device=x.device, dtype=x.dtype)
    else:
        noise = torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
    return (x + std * noise).clamp(0, 1)


def cutout(x: torch.Tensor, gen: torch.Generator, fraction: float = 0.5) -> torch.Tensor:
    """Zeroes one square of side `fraction` * H centred at a random pixel of each image, clipped at the
    borders (DeVries & Taylor 2017)."""
    b, _, h, w = x.shape
    size = max(1, int(round(fraction * h)))
    cy = to_device(torch.randint(0, h, (b,), generator=gen), x.device)
    cx = to_device(torch.randint(0, w, (b,), generator=gen), x.device)
    top, left = (cy - size // 2)[:, None], (cx - size // 2)[:, None]   # the square: [top, top + size)
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = ((ys >= top) & (ys < top + size))[:, :, None]
    in_x = ((xs >= left) & (xs < left + size))[:, None, :]
    return x * (~(in_y & in_x))[:, None, :, :].to(x.dtype)


def rotate(x: torch.Tensor, quarter_turns: torch.Tensor) -> torch.Tensor:
    """Rotates image i by quarter_turns[i] x 90 degrees (square images). Every turn is computed for the whole
    batch and selected per image: no boolean indexing, which would make the host wait for a GPU."""
    out = x
    for k in range(1, 4):
        chosen = (quarter_turns == k).view(-1, *([1] * (x.dim() - 1)))
        out = torch.where(chosen, torch.rot90(x, k, dims=(2, 3)), out)
    return out.clone() if out is x else out

"""The binary attributes of scikit-learn's 8x8 digits (the multi-label twin): names, definitions, labels.

Three kinds:
- `class`: a function of the digit (its class or a group of classes: odd, prime, round shapes, ...);
- `image`: computed from the image itself, positive when a measure (ink amount, symmetry, ink in a
  half, stroke boldness, ...) is above its median over all 1797 images, so labels never depend on a
  seed or a split;
- `random`: coin flips drawn once with a fixed seed (controls: an attribute no image can predict).

`ATTRIBUTES` (18) is the default auxiliary set (every attribute but the main one) and stays as it was;
the others (`EXTRA_ATTRIBUTES`) are opt-in by name in `aux_attributes`. `digits_aux_set(k)` gives the
first k names of a fixed order for K-scaling studies with main attribute `has_loop`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from functools import lru_cache

import torch

from trainables.data.splits import generator
from trainables.errors import ConfigError

RANDOM_ATTRIBUTE_SEED = 1000  # random_i of the default set: seed 1000 + i


def _in(*digits: int) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda d: torch.isin(d, torch.tensor(digits))


# name -> (definition, labels from the digit), the default set first, in its historical order
CLASS_ATTRIBUTES: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = {
    "odd": ("the digit is odd (1, 3, 5, 7, 9)", lambda d: d % 2 == 1),
    "ge5": ("the digit is 5 or more", lambda d: d >= 5),
    "has_loop": ("the glyph has a closed loop (0, 6, 8, 9)", _in(0, 6, 8, 9)),
    "prime": ("the digit is prime (2, 3, 5, 7)", _in(2, 3, 5, 7)),
    **{f"is_{k}": (f"the digit is {k}", _in(k)) for k in range(10)},
}
EXTRA_CLASS_ATTRIBUTES: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = {
    "mid_digit": ("the digit is 3, 4, 5 or 6", _in(3, 4, 5, 6)),
    "div3": ("the digit is divisible by 3 (0, 3, 6, 9)", _in(0, 3, 6, 9)),
    "div4": ("the digit is divisible by 4 (0, 4, 8)", _in(0, 4, 8)),
    "square": ("the digit is a perfect square (0, 1, 4, 9)", _in(0, 1, 4, 9)),
    "fibonacci": ("the digit is a Fibonacci number (0, 1, 2, 3, 5, 8)", _in(0, 1, 2, 3, 5, 8)),
    "triangular": ("the digit is a triangular number (0, 1, 3, 6)", _in(0, 1, 3, 6)),
    "round_shape": ("the glyph is drawn mostly with curves (0, 2, 3, 6, 8, 9)", _in(0, 2, 3, 6, 8, 9)),
    "straight_strokes": ("the glyph is drawn with straight strokes only (1, 4, 7)", _in(1, 4, 7)),
    "mirror_glyph": ("the glyph is left-right symmetric as printed (0, 1, 8)", _in(0, 1, 8)),
    "low_digit": ("the digit is 0, 1 or 2", lambda d: d <= 2),
}


def _halves(x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"top": x[:, :4, :], "bottom": x[:, 4:, :], "left": x[:, :, :4], "right": x[:, :, 4:]}


def _spread(x: torch.Tensor, axis: int) -> torch.Tensor:
    """Ink-weighted standard deviation of the pixel coordinate along `axis` (1 rows, 2 columns)."""
    coords = torch.arange(8.0).reshape((1, 8, 1) if axis == 1 else (1, 1, 8))
    ink = x.sum((1, 2)).clamp_min(1e-6)
    mean = (x * coords).sum((1, 2)) / ink
    return ((x * (coords - mean[:, None, None]) ** 2).sum((1, 2)) / ink).sqrt()


def _centre(x: torch.Tensor, axis: int) -> torch.Tensor:
    coords = torch.arange(8.0).reshape((1, 8, 1) if axis == 1 else (1, 1, 8))
    return (x * coords).sum((1, 2)) / x.sum((1, 2)).clamp_min(1e-6)


def _slant(x: torch.Tensor) -> torch.Tensor:
    """Ink-weighted covariance of column and row: positive when strokes lean like a backslash."""
    rows, cols = torch.arange(8.0).reshape(1, 8, 1), torch.arange(8.0).reshape(1, 1, 8)
    ink = x.sum((1, 2)).clamp_min(1e-6)
    r, c = _centre(x, 1), _centre(x, 2)
    return (x * (rows - r[:, None, None]) * (cols - c[:, None, None])).sum((1, 2)) / ink


def _ink(x: torch.Tensor) -> torch.Tensor:
    return x.sum((1, 2))


def _edges(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Total |difference| between horizontal neighbours and between vertical neighbours."""
    return x.diff(dim=2).abs().sum((1, 2)), x.diff(dim=1).abs().sum((1, 2))


# name -> (definition of the measure, measure of images [N, 8, 8] in [0, 1]); label: measure > its median
IMAGE_MEASURES: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = {
    "ink": ("total ink (sum of pixel values)", _ink),
    "ink_top": ("ink in the top half (rows 0-3)", lambda x: _ink(_halves(x)["top"])),
    "ink_bottom": ("ink in the bottom half (rows 4-7)", lambda x: _ink(_halves(x)["bottom"])),
    "ink_left": ("ink in the left half (columns 0-3)", lambda x: _ink(_halves(x)["left"])),
    "ink_right": ("ink in the right half (columns 4-7)", lambda x: _ink(_halves(x)["right"])),
    "top_heavy": ("share of the ink in the top half", lambda x: _ink(_halves(x)["top"]) / _ink(x).clamp_min(1e-6)),
    "left_heavy": ("share of the ink in the left half",
                   lambda x: _ink(_halves(x)["left"]) / _ink(x).clamp_min(1e-6)),
    "centre_ink": ("share of the ink in the central 4x4 block",
                   lambda x: _ink(x[:, 2:6, 2:6]) / _ink(x).clamp_min(1e-6)),
    "empty_middle": ("minus the ink of the central 2x2 block (a hole in the middle)", lambda x: -_ink(x[:, 3:5, 3:5])),
    "border_ink": ("share of the ink on the outer ring of pixels",
                   lambda x: (_ink(x) - _ink(x[:, 1:7, 1:7])) / _ink(x).clamp_min(1e-6)),
    "lr_symmetric": ("left-right symmetry: minus mean |image - its mirror image| per unit of ink",
                     lambda x: -(x - x.flip(2)).abs().sum((1, 2)) / _ink(x).clamp_min(1e-6)),
    "tb_symmetric": ("top-bottom symmetry: minus mean |image - its upside-down image| per unit of ink",
                     lambda x: -(x - x.flip(1)).abs().sum((1, 2)) / _ink(x).clamp_min(1e-6)),
    "bold": ("stroke width proxy: mean value of the inked pixels (value > 0)",
             lambda x: _ink(x) / (x > 0).sum((1, 2)).clamp_min(1)),
    "thick": ("stroke width proxy: ink per unit of edge (sum of |horizontal| + |vertical| differences)",
              lambda x: _ink(x) / sum(_edges(x)).clamp_min(1e-6)),
    "wide": ("horizontal spread of the ink (ink-weighted std of the column)", lambda x: _spread(x, 2)),
    "tall": ("vertical spread of the ink (ink-weighted std of the row)", lambda x: _spread(x, 1)),
    "right_centred": ("horizontal centre of mass of the ink", lambda x: _centre(x, 2)),
    "low_centred": ("vertical centre of mass of the ink", lambda x: _centre(x, 1)),
    "slant": ("ink-weighted covariance of row and column (strokes leaning like a backslash)", _slant),
    "vertical_edges": ("share of the edges that are vertical: |horizontal differences| / all differences",
                       lambda x: _edges(x)[0] / sum(_edges(x)).clamp_min(1e-6)),
}
DEFAULT_RANDOM = tuple(f"random_{i}" for i in range(4))
EXTRA_RANDOM = tuple(f"random_{i}" for i in range(4, 12))

ATTRIBUTES = (*CLASS_ATTRIBUTES, *DEFAULT_RANDOM)
EXTRA_ATTRIBUTES = (*EXTRA_CLASS_ATTRIBUTES, *IMAGE_MEASURES, *EXTRA_RANDOM)
ALL_ATTRIBUTES = (*ATTRIBUTES, *EXTRA_ATTRIBUTES)


def random_seed(name: str) -> int:
    """random_0..3 keep their historical seeds 1000 + i; later ones are seeded by a CRC of the name."""
    if name in DEFAULT_RANDOM:
        return RANDOM_ATTRIBUTE_SEED + DEFAULT_RANDOM.index(name)
    return zlib.crc32(name.encode())


def _description(name: str) -> tuple[str, str]:
    if name in CLASS_ATTRIBUTES or name in EXTRA_CLASS_ATTRIBUTES:
        return "class", {**CLASS_ATTRIBUTES, **EXTRA_CLASS_ATTRIBUTES}[name][0]
    if name in IMAGE_MEASURES:
        return "image", f"{IMAGE_MEASURES[name][0]} above its median over all 1797 images"
    return "random", f"a fair coin per image, drawn once with seed {random_seed(name)} (a control)"


# name -> (kind, definition) of every attribute, in `ALL_ATTRIBUTES` order
DESCRIPTIONS: dict[str, tuple[str, str]] = {name: _description(name) for name in ALL_ATTRIBUTES}

# A fixed order for K-scaling studies with main attribute has_loop: every prefix mixes helpful attributes
# (digits with or without loops), unrelated ones (ink position, size) and random controls.
AUX_ORDER = (
    "round_shape", "random_4", "is_8", "ink_right",
    "straight_strokes", "random_5", "empty_middle", "lr_symmetric",
    "is_0", "div3", "ink_top", "random_6", "wide", "is_1", "tall", "random_7",
    "is_6", "is_9", "fibonacci", "mid_digit", "ink", "ink_bottom", "left_heavy", "tb_symmetric",
    "bold", "slant", "random_8", "random_9", "right_centred", "low_centred", "random_10", "random_11",
)
AUX_SET_SIZES = (2, 4, 8, 16, 32)


def digits_aux_set(k: int) -> tuple[str, ...]:
    """The first `k` auxiliary attributes of `AUX_ORDER` (main attribute has_loop); k in 1..32."""
    if not 1 <= k <= len(AUX_ORDER):
        raise ConfigError(f"digits_aux_set: k must be in 1..{len(AUX_ORDER)} (e.g. {AUX_SET_SIZES}), got {k}")
    return AUX_ORDER[:k]


def class_attributes(labels: torch.Tensor, names: tuple[str, ...] = ATTRIBUTES) -> torch.Tensor:
    """0/1 [N, len(names)] for class and random attributes of digit `labels` (no image attributes)."""
    d = labels.long()
    table = {**CLASS_ATTRIBUTES, **EXTRA_CLASS_ATTRIBUTES}
    columns = []
    for name in names:
        if name in table:
            columns.append(table[name][1](d))
        elif name in DEFAULT_RANDOM or name in EXTRA_RANDOM:
            columns.append(torch.randint(0, 2, (len(d),), generator=generator(random_seed(name))).bool())
        else:
            raise ConfigError(f"{name!r} is not a class or random attribute of digits")
    return torch.stack(columns, dim=1).long()


def image_attributes(images: torch.Tensor) -> torch.Tensor:
    """0/1 [N, len(IMAGE_MEASURES)]: each measure of `images` [N, 1, 8, 8] above its median over `images`."""
    x = images[:, 0].double()
    columns = []
    for _, measure in IMAGE_MEASURES.values():
        values = measure(x)
        columns.append(values > values.median())
    return torch.stack(columns, dim=1).long()


@lru_cache(maxsize=1)
def attribute_table() -> torch.Tensor:
    """0/1 [1797, len(ALL_ATTRIBUTES)] for all of scikit-learn's digits, in `ALL_ATTRIBUTES` order."""
    from trainables.data.digits_source import load

    images, labels = load()
    non_image = tuple(n for n in ALL_ATTRIBUTES if n not in IMAGE_MEASURES)
    parts = dict(zip(non_image, class_attributes(labels, non_image).T))
    parts.update(zip(IMAGE_MEASURES, image_attributes(images).T))
    return torch.stack([parts[n] for n in ALL_ATTRIBUTES], dim=1)


def describe() -> str:
    """A text table of every digits attribute: name, kind, default set or opt-in, % positive, place in
    `AUX_ORDER` (digits_aux_set(k) takes places 1..k), definition."""
    table = attribute_table().double().mean(0)
    rows = [("attribute", "kind", "set", "positive", "K order", "definition")]
    for i, name in enumerate(ALL_ATTRIBUTES):
        kind, text = DESCRIPTIONS[name]
        order = str(AUX_ORDER.index(name) + 1) if name in AUX_ORDER else "-"
        rows.append((name, kind, "default" if name in ATTRIBUTES else "opt-in", f"{100 * table[i]:.0f}%", order,
                     text))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] for r in rows)

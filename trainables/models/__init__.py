"""Backbones by name (small_cnn, wrn28_2, resnet18): images [B, C, H, W] -> features [B, feature_dim].
Each also has `last_shared_parameters()`, the last shared layer's weights that GradNorm uses."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from arml.registry import Registry
from trainables.data.base import DataInfo
from trainables.errors import ConfigError
from trainables.models import resnet, small_cnn, wrn

BACKBONES: Registry[Callable[..., nn.Module]] = Registry("backbone")
BACKBONES.register("small_cnn")(small_cnn.build)
BACKBONES.register("wrn28_2")(wrn.build)
BACKBONES.register("resnet18")(resnet.build)


def build_backbone(name: str, info: DataInfo, **options: Any) -> nn.Module:
    """The backbone `name` for images of `info.image_shape`; unknown options raise ConfigError."""
    factory = BACKBONES.get(name)
    valid = [p for p in inspect.signature(factory).parameters if p != "info"]
    for key in options:
        if key not in valid:
            raise ConfigError(
                f"backbone {name!r} has no option {key!r}; valid options: {', '.join(valid) or 'none'}"
            )
    return factory(info, **options)


__all__ = ["BACKBONES", "build_backbone"]

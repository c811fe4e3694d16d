"""A small CNN for 8x8 digits (any channel count, any size >= 8): three conv-BN-ReLU layers, 128 features."""

from __future__ import annotations

import torch
from torch import nn

from trainables.data.base import DataInfo


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution (padding 1, no bias), BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class SmallCNN(nn.Module):
    """conv(C->w)-conv(w->2w)-maxpool-conv(2w->4w)-global average pool: `feature_dim` = 4w (128 for w=32)."""

    def __init__(self, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, width),
            conv_bn_relu(width, 2 * width),
            nn.MaxPool2d(2),
            conv_bn_relu(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.feature_dim = 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The weights of the last convolution (what GradNorm takes gradient norms of)."""
        return [self.features[3][0].weight]


def build(info: DataInfo, width: int = 32) -> SmallCNN:
    """A SmallCNN for images of `info.image_shape`; `width` channels in the first layer."""
    return SmallCNN(info.image_shape[0], width)

"""WRN-28-2 as in Oliver et al. 2018 and MixMatch: pre-activation blocks, BN momentum 0.001, leaky ReLU 0.1.

Three groups of four basic blocks (widths 32, 64, 128), a final BN + leaky ReLU and global average pooling;
about 1.47M parameters, 128 features. He (fan-out) initialisation as in those implementations.
"""

from __future__ import annotations

import torch
from torch import nn

from trainables.data.base import DataInfo


class BasicBlock(nn.Module):
    """Pre-activation block: BN-LReLU-conv3x3-BN-LReLU-conv3x3; a 1x1 conv shortcut on a shape change."""

    def __init__(self, c_in: int, c_out: int, stride: int, momentum: float, activate_shortcut: bool) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, momentum=momentum)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, momentum=momentum)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.act = nn.LeakyReLU(0.1)
        same = c_in == c_out and stride == 1
        self.shortcut = None if same else nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
        self.activate_shortcut = activate_shortcut  # the first block: the shortcut sees the activation too

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(x))
        residual = out if self.activate_shortcut else x
        out = self.conv2(self.act(self.bn2(self.conv1(out))))
        return out + (residual if self.shortcut is None else self.shortcut(residual))


class WideResNet(nn.Module):
    """WRN-`depth`-`widen`: a 3x3 conv to 16 channels, three groups of (depth - 4) / 6 blocks, BN, pooling."""

    def __init__(
        self, in_channels: int = 3, depth: int = 28, widen: int = 2, momentum: float = 0.001
    ) -> None:
        super().__init__()
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        blocks = []
        for g in range(3):
            for i in range(n):
                c_in = widths[g] if i == 0 else widths[g + 1]
                stride = 2 if (g > 0 and i == 0) else 1
                blocks.append(
                    BasicBlock(c_in, widths[g + 1], stride, momentum, activate_shortcut=g == 0 and i == 0)
                )
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(widths[3], momentum=momentum)
        self.act = nn.LeakyReLU(0.1)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = widths[3]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.bn(self.blocks(self.conv1(x)))))

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The weights of the last convolution (of the last block)."""
        return [self.blocks[-1].conv2.weight]


def build(info: DataInfo, bn_momentum: float = 0.001) -> WideResNet:
    """WRN-28-2 for images of `info.image_shape` (the paper's backbone for CIFAR-10 and SVHN)."""
    return WideResNet(info.image_shape[0], depth=28, widen=2, momentum=bn_momentum)

"""ResNet-18 from torchvision, classifier removed (512 features); optional local pretrained weights.

Nothing is ever downloaded: `pretrained` names a state-dict file on disk. Small images (height <= 64 by
default) get a 3x3 stride-1 first convolution and no max-pool.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from trainables.data.base import DataInfo
from trainables.errors import ConfigError, DataNotFoundError


class ResNet18(nn.Module):
    """torchvision's resnet18 with `fc` an Identity: forward gives [B, 512] features."""

    def __init__(self, in_channels: int = 3, small_input: bool = False) -> None:
        super().__init__()
        from torchvision.models import resnet18  # here, not at import: torchvision.models takes 1-2 s to import

        self.net = resnet18(weights=None)
        self.net.fc = nn.Identity()
        if small_input:
            self.net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            self.net.maxpool = nn.Identity()
        elif in_channels != 3:
            self.net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.feature_dim = 512
        self.skipped_pretrained: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The weights of the last convolution (layer4's last block)."""
        return [self.net.layer4[-1].conv2.weight]

    def load_pretrained(self, path: str) -> None:
        """Loads a local torchvision resnet18 state dict (fc dropped; conv1 kept as is if shapes differ)."""
        if not os.path.isfile(path):
            raise DataNotFoundError(
                f"resnet18: no pretrained weights at {path}. Put a torchvision resnet18 state dict there"
                " (torch.save(model.state_dict(), path)); nothing is downloaded."
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        state = {k.removeprefix("module.").removeprefix("net."): v for k, v in state.items()}
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        own = self.net.state_dict()
        unexpected = sorted(set(state) - set(own))
        missing = sorted(set(own) - set(state))
        wrong = [
            k for k in state if k in own and state[k].shape != own[k].shape and not k.startswith("conv1.")
        ]
        if unexpected or missing or wrong:
            raise ConfigError(
                f"resnet18: {path} is not a resnet18 state dict (unexpected keys: {unexpected[:5]},"
                f" missing keys: {missing[:5]}, wrong shapes: {wrong[:5]})"
            )
        self.skipped_pretrained = [k for k in state if state[k].shape != own[k].shape]
        for k in self.skipped_pretrained:
            state[k] = own[k]
        self.net.load_state_dict(state)


def build(info: DataInfo, pretrained: str = "", small_input: bool | None = None) -> ResNet18:
    """ResNet-18 for `info.image_shape`; `small_input` None -> True when the image height is <= 64."""
    channels, height = info.image_shape[0], info.image_shape[1]
    model = ResNet18(channels, height <= 64 if small_input is None else bool(small_input))
    if pretrained:
        model.load_pretrained(pretrained)
    return model

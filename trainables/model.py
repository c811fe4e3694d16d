"""A backbone with one named head per task, and the time-averaged (EMA) copy that exemplar-MT uses."""

from __future__ import annotations

import copy

import torch
from torch import nn


class MultiTaskModel(nn.Module):
    """`features(images in [0, 1])` normalises and runs the backbone; `heads[name](features)` per task."""

    def __init__(self, backbone: nn.Module, heads: dict[str, nn.Module], mean: tuple[float, ...],
                 std: tuple[float, ...]) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))

    def forward(self, x: torch.Tensor, head: str) -> torch.Tensor:
        return self.heads[head](self.features(x))


class EMA:
    """Parameters averaged over time, theta_ema <- d * theta_ema + (1 - d) * theta (Tarvainen & Valpola)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema, live = list(self.model.parameters()), [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema, live, 1.0 - self.decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)

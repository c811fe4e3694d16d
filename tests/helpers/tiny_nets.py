"""A tiny float64 multi-task network for the arml/ tests: a shared tanh MLP, K + 1 scalar heads, MSE losses."""

from __future__ import annotations

import torch
from torch import nn

F64 = torch.float64


class MLP(nn.Module):
    """Shared tanh MLP, K + 1 scalar heads, MSE losses; float64. Task 0 is the main task."""

    def __init__(self, k: int, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.backbone = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh()).to(F64)
        self.heads = nn.ModuleList(nn.Linear(6, 1) for _ in range(k + 1)).to(F64)
        self.x = torch.randn(24, 5, generator=gen, dtype=F64)
        self.y = torch.randn(k + 1, 24, generator=gen, dtype=F64)

    def losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(self.x)
        out = [((h(f).squeeze(1) - y) ** 2).mean() for h, y in zip(self.heads, self.y)]
        return out[0], torch.stack(out[1:])

    def shared(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

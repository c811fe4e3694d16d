"""A tiny float64 multi-task network for the arml/ tests: a shared tanh MLP, K + 1 scalar heads, MSE losses."""

from __future__ import annotations

import io

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


def resume_through_checkpoint(weighting, net: MLP, opt: torch.optim.Optimizer, fresh) -> tuple:
    """Saves the weighting, net and optimizer as a checkpoint would (torch.save, then torch.load with
    weights_only=True) and loads them into new ones made by `fresh(net) -> (weighting, optimizer)`; returns
    (weighting, net, optimizer), ready to go on training."""
    buffer = io.BytesIO()
    torch.save({"w": weighting.state_dict(), "net": net.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed_net = MLP(len(net.heads) - 1)
    resumed_net.load_state_dict(saved["net"])
    resumed, resumed_opt = fresh(resumed_net)
    resumed_opt.load_state_dict(saved["opt"])
    resumed.load_state_dict(saved["w"])
    return resumed, resumed_net, resumed_opt

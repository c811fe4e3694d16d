"""Building the optional `closure` a method may call: losses re-evaluated without side effects."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from arml.gradients import Closure


def stateless(losses: Callable[[], tuple[torch.Tensor, torch.Tensor]], *modules: nn.Module) -> Closure:
    """Wraps `losses() -> (main_loss, aux_losses)` (same inputs and augmentations as the step) as a closure
    that runs without autograd on copies of every buffer of `modules` (BatchNorm running statistics,
    counters), so re-evaluating does not change the model. `losses` must be deterministic:
    draw random augmentations once per step, outside it; with dropout, pass no closure.
    """

    def closure() -> tuple[torch.Tensor, torch.Tensor]:
        # Swap every buffer for a copy while re-evaluating: the originals are neither changed nor
        # version-bumped (BatchNorm saves its running statistics for the step's backward pass).
        swapped = []
        for module in modules:
            for m in module.modules():
                for name, buffer in m._buffers.items():
                    if buffer is not None:
                        swapped.append((m, name, buffer))
                        m._buffers[name] = buffer.detach().clone()
        try:
            with torch.no_grad():
                return losses()
        finally:
            for m, name, buffer in swapped:
                m._buffers[name] = buffer

    return closure

"""Building the optional `closure` a method may call: losses re-evaluated without side effects."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from arml.gradients import Closure


def stateless(losses: Callable[[], tuple[torch.Tensor, torch.Tensor]], *modules: nn.Module) -> Closure:
    """Wraps `losses() -> (main_loss, aux_losses)` (same inputs and augmentations as the step) as a closure
    that runs without autograd on copies of every buffer of `modules` (BatchNorm running statistics,
    counters), so re-evaluating does not change the model. `losses` must be deterministic:
    draw random augmentations once per step, outside it; with dropout, pass no closure.

    The closure's `modules` attribute names the modules: forward-mode differentiation (`directional="jvp"`)
    swaps the parameters inside them for dual numbers while it runs (arml.gradients.forward_mode).
    """

    def closure() -> tuple[torch.Tensor, torch.Tensor]:
        with buffers_copied(*modules), torch.no_grad():
            return losses()

    closure.modules = modules  # type: ignore[attr-defined]
    return closure


@contextmanager
def buffers_copied(*modules: nn.Module) -> Iterator[None]:
    """Every buffer of `modules` swapped for a copy while inside, the originals put back after: a forward pass
    in training mode updates the copies' BatchNorm statistics, and the originals are neither changed nor
    version-bumped (the step's own graph may have saved them)."""
    swapped = []
    for module in modules:
        for m in module.modules():
            for name, buffer in m._buffers.items():
                if buffer is not None:
                    swapped.append((m, name, buffer))
                    m._buffers[name] = buffer.detach().clone()
    try:
        yield
    finally:
        for m, name, buffer in reversed(swapped):
            m._buffers[name] = buffer

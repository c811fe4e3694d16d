"""Averaging a method's own statistics across data-parallel workers (no-ops on one process)."""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of `tensor` over all workers, identical on every worker; `tensor` itself on one process."""
    size = world_size()
    if size == 1:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.div_(size)

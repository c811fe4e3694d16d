"""Data parallelism without a wrapper: this worker's place, identical starting weights, averaged gradients."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def pick_device(name: str) -> torch.device:
    """"auto": this worker's GPU when CUDA is available (LOCAL_RANK among visible devices), else the CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device(f"cuda:{local % torch.cuda.device_count()}")
    return torch.device("cpu")


def broadcast_parameters(model: nn.Module) -> None:
    """Every worker starts from rank 0's parameters and buffers."""
    if rank_and_world()[1] > 1:
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)


def average_gradients(params: list[torch.Tensor]) -> None:
    """`.grad` <- the mean over workers, in one all-reduce of a flat buffer."""
    world = rank_and_world()[1]
    if world == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def sum_over_workers(*values: int) -> list[int]:
    """Integer counts summed over workers (evaluation shards)."""
    if rank_and_world()[1] == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return [int(v) for v in t.cpu().tolist()]

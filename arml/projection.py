"""Exact Euclidean projection onto ARML's weight set {a : sum(a) = total, a >= 0}."""

from __future__ import annotations

import torch


def project_simplex(values: torch.Tensor, total: float) -> torch.Tensor:
    """The point of {a : sum(a) = total, a >= 0} closest to `values` (sort-based, Duchi et al. 2008).

    Unlike the official code's shift-then-clamp, the result sums to `total` exactly (up to rounding).
    """
    if values.dim() != 1 or values.numel() == 0:
        raise ValueError(f"expected a non-empty 1-D tensor, got shape {tuple(values.shape)}")
    if total <= 0:
        raise ValueError(f"the weights' sum must be positive, got {total}")
    v = values.double()
    u, _ = torch.sort(v, descending=True)
    cumulative = torch.cumsum(u, dim=0) - total
    index = torch.arange(1, v.numel() + 1, dtype=v.dtype, device=v.device)
    positive = u - cumulative / index > 0
    rho = int(torch.nonzero(positive).max()) if bool(positive.any()) else 0
    theta = cumulative[rho] / (rho + 1)
    out = torch.clamp(v - theta, min=0)
    mass = float(out.sum())
    if mass > 0:  # remove rounding drift so the sum is exactly `total`
        out = out * (total / mass)
    else:  # cancellation with huge values: the nearest point is the vertex of the largest entry
        out = torch.zeros_like(v)
        out[int(torch.argmax(v))] = total
    return out.to(values.dtype)


def shift_then_clamp(values: torch.Tensor, total: float) -> torch.Tensor:
    """The ARML authors' code's projection: a + (total - sum a)/K, then clamped at 0 (the sum may then
    exceed `total`; not the Euclidean projection onto the set)."""
    if values.dim() != 1 or values.numel() == 0:
        raise ValueError(f"expected a non-empty 1-D tensor, got shape {tuple(values.shape)}")
    shifted = values + (total - values.sum()) / values.numel()
    return torch.clamp(shifted, min=0)

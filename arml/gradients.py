"""Gradient algebra shared by the methods: flat gradients, and inner products <grad L_k, v> for all K
tasks at a cost that does not grow with K (two extra forward passes with a closure, else one double
backward), instead of K backward passes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Closure = Callable[[], tuple[torch.Tensor, torch.Tensor]]


def check_fd_eps(fd_eps: float | None) -> float | None:
    """A central-difference step (a fraction of the parameters' norm) must be finite and > 0, or None."""
    if fd_eps is None:
        return None
    if not 0 < float(fd_eps) < 1:
        raise ValueError(f"fd_eps must be in (0, 1) (a fraction of the parameters' norm), got {fd_eps}")
    return float(fd_eps)


def flatten(tensors: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor]) -> torch.Tensor:
    """One flat vector of per-parameter tensors; None (a parameter a loss does not reach) counts as 0."""
    return torch.cat([
        (t if t is not None else torch.zeros_like(p)).reshape(-1) for t, p in zip(tensors, params)
    ])


def grad_of(loss: torch.Tensor, params: Sequence[torch.Tensor], **kwargs) -> torch.Tensor:
    """Flat gradient of `loss` over `params` (autograd.grad: leaves .grad untouched, DDP hooks silent)."""
    grads = torch.autograd.grad(loss, params, allow_unused=True, **kwargs)
    return flatten(grads, params)


def current_grad(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The flat `.grad` of `params` right now (zeros where there is none)."""
    return flatten([p.grad for p in params], params)


def split_like(flat: torch.Tensor, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Views of `flat` shaped like each parameter."""
    out, start = [], 0
    for p in params:
        out.append(flat[start:start + p.numel()].view_as(p))
        start += p.numel()
    return out


def backward_total(total: torch.Tensor, params: Sequence[torch.Tensor], **kwargs) -> torch.Tensor:
    """`total.backward()` (fills .grad of every parameter) and returns this call's flat gradient on `params`.

    Gradients already in `.grad` (accumulation over micro-batches) are kept and not counted.
    """
    before = [p.grad.detach().clone() if p.grad is not None else None for p in params]
    total.backward(**kwargs)
    return flatten([
        (p.grad - b if b is not None else p.grad) if p.grad is not None else None
        for p, b in zip(params, before)
    ], params)


def directional_derivatives(
    aux_losses: torch.Tensor,
    params: Sequence[torch.Tensor],
    direction: torch.Tensor,
    closure: Closure | None = None,
    fd_eps: float | None = None,
) -> torch.Tensor:
    """The vector [<grad aux_losses[k], direction>]_k over `params`, for all K tasks at once.

    With `closure` (re-evaluates `(main_loss, aux_losses)` at the current parameters, deterministically),
    a central difference along `direction`: two forward passes, the parameters restored bit for bit.
    Without it, the exact value from one double backward through `aux_losses`' graph (kept alive).
    """
    if closure is not None:
        return _central_difference(params, direction, closure, fd_eps)[1:]
    return _double_backward(aux_losses, params, direction)


def _double_backward(
    losses: torch.Tensor, params: Sequence[torch.Tensor], direction: torch.Tensor
) -> torch.Tensor:
    # d/du <grad_theta sum_k u_k L_k, v> = [<grad L_k, v>]_k, whatever the value of u.
    u = torch.ones_like(losses, requires_grad=True)
    grads = torch.autograd.grad((u * losses).sum(), params, create_graph=True, allow_unused=True)
    dot = sum(
        (g * v).sum() for g, v in zip(grads, split_like(direction, params)) if g is not None
    )
    if not isinstance(dot, torch.Tensor) or not dot.requires_grad:
        return torch.zeros_like(losses).detach()
    (out,) = torch.autograd.grad(dot, u)
    return out.detach()


def _central_difference(
    params: Sequence[torch.Tensor], direction: torch.Tensor, closure: Closure, fd_eps: float | None
) -> torch.Tensor:
    dtype = direction.dtype
    eps = fd_eps if fd_eps is not None else (1e-6 if dtype == torch.float64 else 3e-5)
    with torch.no_grad():
        theta_norm = torch.sqrt(sum((p.detach().double() ** 2).sum() for p in params))
        v_norm = torch.linalg.vector_norm(direction.double())
        if float(v_norm) == 0.0:
            main, aux = closure()
            return torch.zeros(1 + aux.numel(), dtype=aux.dtype, device=aux.device)
        # step so that the parameters move by a fraction eps of their norm (at least eps in absolute terms)
        h = float(eps * torch.clamp(theta_norm, min=1.0) / v_norm)
        # .data: moving and restoring the values bit for bit must not invalidate the step's autograd graph
        data = [p.data for p in params]
        saved = [d.clone() for d in data]
        steps = split_like(direction.to(data[0].dtype), params)
        try:
            torch._foreach_add_(data, steps, alpha=h)
            plus = _stack(closure())
            torch._foreach_copy_(data, saved)
            torch._foreach_add_(data, steps, alpha=-h)
            minus = _stack(closure())
        finally:
            torch._foreach_copy_(data, saved)
        return ((plus.double() - minus.double()) / (2 * h)).to(plus.dtype)


def _stack(result: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    main, aux = result
    return torch.cat([main.detach().reshape(1), aux.detach().reshape(-1)])

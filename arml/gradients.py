"""Gradient algebra shared by the methods: flat gradients, and inner products <grad L_k, v> for all K
tasks at a cost that does not grow with K (one forward pass with dual numbers through a closure, two
forward passes of a central difference, or one double backward), instead of K backward passes."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn
from torch.overrides import TorchFunctionMode

Closure = Callable[[], tuple[torch.Tensor, torch.Tensor]]

# How <grad L_k, v> is computed, by name (the `directional` option of ARML and Auto-Lambda):
DIRECTIONAL_HELP = {
    "jvp": "exact, one forward pass with dual numbers through the closure (forward-mode differentiation)",
    "central": "a central difference along v through the closure: two forward passes, O(step^2) off",
    "double_backward": "exact, one double backward through the step's own graph; needs no closure",
}


class NoForwardRuleError(NotImplementedError):
    """An operation the closure runs has no forward-mode rule, so `directional="jvp"` cannot be used; the
    message names the operation and the alternatives."""


def check_directional(directional: str | None) -> str | None:
    """One of DIRECTIONAL_HELP's names, or None (jvp with a closure, the double backward without one)."""
    if directional is not None and directional not in DIRECTIONAL_HELP:
        choices = "; ".join(f"{name!r}: {what}" for name, what in DIRECTIONAL_HELP.items())
        raise ValueError(f"directional must be one of {', '.join(map(repr, DIRECTIONAL_HELP))} (or None: "
                         f"'jvp' with a closure, 'double_backward' without), got {directional!r}; {choices}")
    return directional


def resolve_directional(directional: str | None, closure: Closure | None) -> str:
    """The method that runs: None means 'jvp' with a closure and 'double_backward' without one; 'jvp' and
    'central' without a closure are a ValueError (they re-evaluate the losses through it)."""
    if directional is None:
        return "jvp" if closure is not None else "double_backward"
    if closure is None and directional != "double_backward":
        raise ValueError(f"directional={directional!r} re-evaluates the losses through the closure: pass "
                         "closure=arml.stateless(losses, model) to backward(), or set "
                         "directional='double_backward' (exact, no closure needed)")
    return directional


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
    directional: str | None = None,
) -> torch.Tensor:
    """The vector [<grad aux_losses[k], direction>]_k over `params`, for all K tasks at once.

    `directional` (None: "jvp" with a closure, "double_backward" without):
    - "jvp": exact; one forward pass of `closure` (re-evaluates `(main_loss, aux_losses)` at the current
      parameters, as `arml.stateless` builds it) with each of `params` a dual number whose tangent is its
      part of `direction` (`forward_mode`). About 1.5 times the cost of the central difference's two
      forward passes.
    - "central": a central difference along `direction` through `closure` (step `fd_eps`, a fraction of the
      parameters' norm): two forward passes, O(step^2) off; for models with operations that have no
      forward-mode rule. On a ResNet-18 with BatchNorm it can be 20% off (docs/performance.md).
    - "double_backward": exact, from one double backward through `aux_losses`' graph (kept alive); about 3
      times the cost of "jvp".
    Either way the parameters and buffers are left bit for bit as they were, and the caller's graph usable.
    """
    return _DIRECTIONAL[resolve_directional(check_directional(directional), closure)](
        aux_losses, params, direction, closure, fd_eps)


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


# ---- forward mode --------------------------------------------------------------------------------------


def forward_mode(
    params: Sequence[torch.Tensor], direction: torch.Tensor, closure: Closure
) -> tuple[torch.Tensor, torch.Tensor]:
    """(<grad main_loss, direction>, [<grad aux_losses[k], direction>]_k), exact, from one forward pass of
    `closure` with dual numbers (torch.autograd.forward_ad).

    Each of `params` becomes a dual tensor (its storage, with its part of `direction` as tangent) while the
    closure runs, seen two ways: inside the modules the closure names (`closure.modules`, set by
    `arml.stateless`) the parameter's entry is swapped for it and put back afterwards (a module's attribute
    reads the dual, also in a torch.compile'd module or when handed to a custom autograd.Function), and every
    torch operation the closure calls gets it in place of the parameter (a TorchFunctionMode: a parameter
    outside the modules, or one the losses hold a reference of their own to). The parameters (values and
    version counters) and the caller's autograd graph are untouched. The closure runs as it always does: in the
    model's current mode (BatchNorm in training mode normalises with the batch's statistics, as in the
    step) and, from `arml.stateless`, on copies of the buffers. An operation without a forward-mode rule is
    a NoForwardRuleError naming it.
    """
    owners = _owners(getattr(closure, "modules", ()))
    tangents = split_like(direction, params)
    with fwAD.dual_level(), _named_missing_rules():
        duals = [fwAD.make_dual(p.detach(), t.to(p.dtype)) for p, t in zip(params, tangents)]
        with _swapped(params, duals, owners), _Substituted({id(p): dual for p, dual in zip(params, duals)}):
            main, aux = closure()
        return _tangent(main).reshape(()), _tangent(aux).reshape(-1)


def _owners(modules: Sequence[nn.Module]) -> dict[int, list[tuple[nn.Module, str]]]:
    """id(parameter) -> every (module, name) that holds it (tied weights have several)."""
    owners: dict[int, list[tuple[nn.Module, str]]] = {}
    seen: set[int] = set()
    for module in modules:
        for m in module.modules():
            if id(m) in seen:
                continue
            seen.add(id(m))
            for name, p in m._parameters.items():
                if p is not None:
                    owners.setdefault(id(p), []).append((m, name))
    return owners


@contextmanager
def _swapped(params: Sequence[torch.Tensor], duals: Sequence[torch.Tensor],
             owners: dict[int, list[tuple[nn.Module, str]]]) -> Iterator[None]:
    """Each owned parameter replaced by its dual tensor in its modules' `_parameters` while inside (a module's
    attribute then reads the dual); the Parameter objects themselves are neither written nor replaced."""
    put_back: list[tuple[nn.Module, str, torch.Tensor]] = []
    try:
        for p, dual in zip(params, duals):
            for module, name in owners.get(id(p), ()):
                put_back.append((module, name, module._parameters[name]))
                module._parameters[name] = dual
        yield
    finally:
        for module, name, original in reversed(put_back):
            module._parameters[name] = original


class _Substituted(TorchFunctionMode):
    """Every torch operation called while active sees the dual tensor in place of a parameter it is given
    (directly, or in a list, tuple or dict of arguments)."""

    def __init__(self, table: dict[int, torch.Tensor]) -> None:
        super().__init__()
        self.table = table

    def _sub(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return self.table.get(id(value), value)
        if isinstance(value, (list, tuple)):
            return type(value)(self._sub(v) for v in value)
        if isinstance(value, dict):
            return {k: self._sub(v) for k, v in value.items()}
        return value

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*self._sub(args), **self._sub(kwargs or {}))


def _tangent(loss: torch.Tensor) -> torch.Tensor:
    primal, tangent = fwAD.unpack_dual(loss)
    return tangent.detach() if tangent is not None else torch.zeros_like(primal)


# what PyTorch says when an operation has no forward-mode rule: a built-in operator, a custom autograd.Function
_NO_RULE = re.compile(r"forward AD with (\S+) that does not support it|implement the jvp function")


@contextmanager
def _named_missing_rules() -> Iterator[None]:
    """PyTorch's error for an operation without a forward-mode rule becomes one NoForwardRuleError naming it."""
    try:
        yield
    except (NotImplementedError, RuntimeError) as error:
        found = _NO_RULE.search(str(error))
        if found is None or isinstance(error, NoForwardRuleError):
            raise
        op = found.group(1) or _function_class(error.__traceback__)
        raise NoForwardRuleError(
            f"directional='jvp' (forward-mode differentiation through the closure) cannot run this model: {op} "
            "has no forward-mode rule. Set directional='central' (a central difference through the closure) "
            "or directional='double_backward' (exact, no closure needed) in the weighting's options") from error


def _function_class(trace: TracebackType | None) -> str:
    """The custom autograd.Function whose jvp was missing, as text: PyTorch calls back `apply_jvp(self, ...)` on
    the Function's node, whose `_forward_cls` is the Function's class."""
    name = "a custom torch.autograd.Function without a jvp method"
    while trace is not None:
        cls = getattr(trace.tb_frame.f_locals.get("self"), "_forward_cls", None)
        if isinstance(cls, type) and issubclass(cls, torch.autograd.Function):
            name = f"the custom torch.autograd.Function {cls.__qualname__} (it defines no jvp method)"
        trace = trace.tb_next
    return name


def _by_jvp(aux, params, direction, closure, fd_eps) -> torch.Tensor:
    return forward_mode(params, direction, closure)[1]


def _by_central(aux, params, direction, closure, fd_eps) -> torch.Tensor:
    return _central_difference(params, direction, closure, fd_eps)[1:]


def _by_double_backward(aux, params, direction, closure, fd_eps) -> torch.Tensor:
    return _double_backward(aux, params, direction)


# directional_derivatives' methods by name (DIRECTIONAL_HELP says what each is)
_DIRECTIONAL: dict[str, Callable[..., torch.Tensor]] = {
    "jvp": _by_jvp, "central": _by_central, "double_backward": _by_double_backward,
}

"""Auto-Lambda (Liu, James, Davison & Johns, TMLR 2022): auxiliary weights meta-learned so that one look-ahead
SGD step on the weighted training loss lowers the main task's loss, with the authors' finite-difference
approximation of the mixed second derivative (as in DARTS)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from arml.base import Weighting
from arml.distributed import all_mean
from arml.gradients import (
    Closure,
    check_directional,
    directional_derivatives,
    flatten,
    grad_of,
    resolve_directional,
    split_like,
)

# The authors' defaults (lorenmt/auto-lambda: auto_lambda.py, trainer_dense.py, trainer_cifar.py, README.md).
AUTHORS_INIT = 0.1            # `--autol_init`: every task weight starts at 0.1
AUTHORS_LR = 1e-4             # `--autol_lr` of the dense (NYUv2) trainer; 3e-5 for CityScapes, 3e-4 for CIFAR-100
AUTHORS_FD_STEP = 0.01        # compute_hessian: eps = 0.01 / ||d||, the parameters move by 0.01 in norm
AUTHORS_MODEL_LR = 0.1        # their SGD's initial learning rate: the virtual step's when no optimizer is bound
ADAM_BETAS = (0.9, 0.999)     # torch.optim.Adam's defaults, which the authors' meta-optimiser uses
ADAM_EPS = 1e-8


def _number(name: str, value: Any, *, positive: bool = True) -> float:
    """`value` as a finite float (> 0 when `positive`), else a ValueError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
            positive and not value > 0):
        raise ValueError(f"{name} must be a finite number{' > 0' if positive else ''}, got {value!r}")
    return float(value)


class _AutogradOn(TorchFunctionMode):
    """Runs every torch operation with autograd on, even inside the closure's `torch.no_grad()` (see
    `arml.stateless`): the closure then returns losses with a graph, whose gradient the method needs."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        with torch.enable_grad():
            return func(*args, **(kwargs or {}))


class AutoLambda(Weighting):
    """Auto-Lambda: the auxiliary weights lambda follow Adam on the main task's loss after one virtual step.

    The rule, with w_0 = `main_weight` (1 by default) and theta the parameters of the virtual step:

        theta'(lambda) = theta - a * (grad_theta [w_0 L_0 + sum_k lambda_k L_k](theta) + m + wd * theta)
        h_k = d/dlambda_k L_0(theta') = -a <grad L_k(theta), d>,   d = grad L_0(theta')
        lambda <- Adam(lambda, h)                                     (no clamp, no normalisation)

    then `.grad` is filled with the gradient of w_0 L_0 + sum_k lambda_k L_k at the updated weights, which
    `backward` returns (the authors also update the weights first, then train with them). The virtual step
    is the step training takes, so it uses `main_weight` (0: the auxiliary losses alone, the main loss still
    the meta-objective). a is the virtual step's learning rate, m the optimizer's momentum term
    (momentum * momentum_buffer) and wd its weight decay; theta' is linear in lambda, so the only second
    derivative, d/dlambda_k grad_theta of the weighted loss, is grad L_k. The inner products <grad L_k(theta), d>
    for all K come, as `directional` says, from one forward pass of the closure at theta with dual numbers
    along d ("jvp", the default: exact), from the authors' central difference
    -a [L_k(theta + e d/|d|) - L_k(theta - e d/|d|)] / (2 e / |d|) ("central": their "hessian" in
    compute_hessian, exact up to O(e^2)), or from a double backward through the step's graph
    ("double_backward": exact, slower).

    The authors' defaults: `init=0.1` (every weight), Adam with `lr=1e-4` (their dense-prediction value;
    3e-5 CityScapes, 3e-4 CIFAR-100) and torch's betas and eps, an update at every step
    (`update_every=1`), the virtual step at the model optimizer's current learning rate with its momentum
    and weight decay terms, and a central difference that moves the parameters by `fd_step=0.01` in
    Euclidean norm (their eps = 0.01 / ||d||; here `directional="central"`). Weights are neither clamped
    nor normalised: they may go negative, as in the authors' code. Adam moves each weight by about `lr`
    per update whatever the size of h: at 1e-4, by at most about 0.1 in 1,000 steps.

    Options: `lr` (Adam's learning rate for lambda), `init` (one number for every weight or K numbers),
    `virtual_lr` (a fixed learning rate for the virtual step instead of the optimizer's; a bound
    optimizer's momentum and weight decay terms still apply), `directional` ("jvp", "central" or
    "double_backward"; default "jvp"), `fd_step` (with "central": the
    norm of the central difference's move, an absolute length, not a fraction of ||theta|| like ARML's
    `fd_eps`), `update_every` (steps between weight updates; the steps between cost what a Uniform step
    costs).

    Where theta and the step come from: with `bind(model=...)`, theta is every trainable parameter of the
    model, heads included, as in the authors' code; without a model, `shared_params` only (the heads
    stay at theta in the look-ahead). With `bind(optimizer=...)`, each parameter's group gives a (its
    current `lr`, so schedules apply), the SGD momentum term (groups with a `momentum` entry and a
    momentum buffer) and `weight_decay`; without an optimizer, a plain step at `virtual_lr`, default 0.1
    (the authors' initial SGD learning rate), with no momentum or weight decay term.

    Needs `closure` (`arml.stateless(losses, model)`) on every step, a ValueError otherwise: the main loss
    is re-evaluated at theta' with autograd switched back on inside the closure (a TorchFunctionMode runs
    each of its operations under `torch.enable_grad()`, overriding the closure's `torch.no_grad()`), and the
    auxiliary losses at theta with dual numbers (or at theta +- e d/|d|) without a graph. The losses must
    be deterministic (no dropout) and must not modify parameters in place. Parameters are moved through
    `.data` and restored bit for bit, the closure works on copies of the buffers (BatchNorm statistics
    untouched), and `.grad` is filled only by the final backward: the model is as before except for the
    gradients.

    Cost of an update step, against a Uniform step's one forward and one backward: the same forward (the
    caller's graph is reused) and three backward passes (the virtual step's gradient, grad L_0(theta'),
    the filled gradient), one forward with a graph at theta' and two without one: 4 forwards and 3
    backwards, about 3.3x if a backward costs two forwards, whatever K is. benchmarks/weighting_overhead.py
    measured 3.1-3.4x on a CPU and 3.7-3.9x on an H200 (small conv net, K = 2 and 11; ARML 2.2-2.7x).

    Departures from the authors' code:
    - The main task's weight is not learned: it stays `main_weight` (1) as in every method here, while the
      authors learn a weight for every training task, primary included, all from 0.1. With the default
      `init=0.1` the auxiliary tasks thus start at a tenth of the main task's weight (the authors start
      every task equal); `init=1.0` gives their initial ratio.
    - One batch: the meta-loss L_0(theta') is the main loss on the step's own batch (through the closure);
      the authors draw a separate batch for it from a second, differently shuffled loader of the training
      set. The meta-loss thus asks how the step changes the main loss on the examples it trained on, not
      on other examples.
    - The virtual step uses each parameter's optimizer group (the authors read `param_groups[0]` for all),
      and with several learning rates the central difference runs along A d (A the per-parameter rates)
      with the same move of `fd_step`; with one learning rate this is their rule exactly.
    - The caller's forward is reused for the virtual step and the real one (the authors forward the
      training batch twice); only that forward updates BatchNorm's running statistics (the authors'
      virtual-step and finite-difference forwards run in training mode and update them as well).
    - By default the mixed second derivative is exact (forward-mode differentiation), not the authors'
      central difference, which on a ResNet-18 with BatchNorm can be tens of percent off (docs/performance.md);
      `directional="central"` restores it.
    - `update_every` > 1 is ours; the Adam step runs in float64 on the CPU; a non-finite meta-gradient is
      skipped and counted in `skipped_updates` instead of making the weights NaN; with data parallelism
      the gradients and h are averaged over the workers.
    """

    name = "autolambda"
    fixed_weights = False
    recorded_defaults = {"directional": "jvp"}   # was a central difference

    def __init__(self, num_aux: int, *, lr: float = AUTHORS_LR, init: float | Sequence[float] = AUTHORS_INIT,
                 virtual_lr: float | None = None, directional: str | None = None, fd_step: float = AUTHORS_FD_STEP,
                 update_every: int = 1,
                 task_names: Sequence[str] | None = None) -> None:
        super().__init__(num_aux, task_names=task_names)
        self.lr = _number("lr", lr)
        self.virtual_lr = None if virtual_lr is None else _number("virtual_lr", virtual_lr)
        self.fd_step = _number("fd_step", fd_step)
        self.directional = check_directional(directional)
        if isinstance(update_every, bool) or not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"update_every must be an integer >= 1, got {update_every!r}")
        self.update_every = update_every
        if isinstance(init, (int, float)) and not isinstance(init, bool):
            start = [_number("init", init, positive=False)] * num_aux
        elif isinstance(init, Sequence) and not isinstance(init, str) and len(init) == num_aux:
            start = [_number("init", x, positive=False) for x in init]
        else:
            raise ValueError(f"init must be a number or {num_aux} numbers, got {init!r}")
        self._set_initial_weights(start)
        self._model: torch.nn.Module | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._adam_m = torch.zeros(num_aux, dtype=torch.float64)   # Adam's first moment of h
        self._adam_v = torch.zeros(num_aux, dtype=torch.float64)   # and its second moment
        self._adam_steps = 0

    def bind(self, *, model: torch.nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
             num_train: int | None = None, total_steps: int | None = None) -> None:
        """Keeps the model (the virtual step moves all its trainable parameters) and the optimizer (the
        virtual step's learning rate, momentum and weight decay); ignores the rest."""
        if model is not None:
            self._model = model
        if optimizer is not None:
            self._optimizer = optimizer

    # ---- one training step ----------------------------------------------------------------------------
    def _step(self, main: torch.Tensor, aux: torch.Tensor, params: list[torch.Tensor],
              closure: Closure | None, main_weight: float) -> torch.Tensor | None:
        if closure is None:
            raise ValueError("autolambda re-evaluates the losses after a virtual step: pass "
                             "closure=arml.stateless(losses, model) to backward()")
        if (self.steps - 1) % self.update_every != 0:
            self._total(main, aux, main_weight).backward()
            return None
        self.update(self.meta_gradient(main, aux, params, closure, main_weight))
        self._total(main, aux, main_weight).backward()   # the graph was kept: the weights just updated
        return self.weights

    def meta_gradient(self, main: torch.Tensor, aux: torch.Tensor, params: list[torch.Tensor],
                      closure: Closure, main_weight: float = 1.0) -> torch.Tensor:
        """h = d/dlambda L_main(theta'(lambda)) at the current weights ([K], float64), the main loss after one
        virtual step on the weighted loss; keeps the graph of `main` and `aux`, leaves `.grad` and the model
        as they were."""
        theta = self._lookahead_params(params)
        total = main_weight * main + (self._weights_on(aux.device, aux.dtype) * aux).sum()
        g = all_mean(grad_of(total, theta, retain_graph=True))
        rates, moves = self._virtual_step(theta, split_like(g, theta))
        data = [p.data for p in theta]       # .data: moving them must not invalidate the caller's graph
        saved = [x.clone() for x in data]
        try:
            torch._foreach_sub_(data, moves)
            with _AutogradOn():
                ahead, _ = closure()
            if ahead.requires_grad:
                d = grad_of(ahead.reshape(()), theta)
            else:                            # the main loss does not depend on theta
                d = torch.zeros_like(g)
        finally:
            torch._foreach_copy_(data, saved)
        direction = flatten([r * x for r, x in zip(rates, split_like(all_mean(d), theta))], theta)
        inner = self._inner_products(aux, theta, direction, closure)   # [<grad L_k(theta), A d>]_k
        return -all_mean(inner).double().cpu()

    def update(self, grad: torch.Tensor) -> None:
        """One Adam step on the weights with gradient `grad` (torch.optim.Adam's rule, default betas and
        eps); a non-finite gradient is skipped and counted in `skipped_updates`, Adam's state unchanged."""
        grad = grad.detach().to("cpu", torch.float64)
        if not bool(torch.isfinite(grad).all()):
            self.skipped_updates += 1
            return
        beta1, beta2 = ADAM_BETAS
        steps = self._adam_steps + 1
        m = beta1 * self._adam_m + (1 - beta1) * grad
        v = beta2 * self._adam_v + (1 - beta2) * grad * grad
        denom = (v.sqrt() / math.sqrt(1 - beta2 ** steps)) + ADAM_EPS
        if self._set_weights(self._weights - (self.lr / (1 - beta1 ** steps)) * m / denom):
            self._adam_m, self._adam_v, self._adam_steps = m, v, steps

    # ---- the virtual step ---------------------------------------------------------------------------------
    def _lookahead_params(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """The bound model's trainable parameters (and any of `params` outside it), else `params`."""
        if self._model is None:
            return params
        theta = [p for p in self._model.parameters() if p.requires_grad]
        known = {id(p) for p in theta}
        return theta + [p for p in params if id(p) not in known]

    def _virtual_step(self, theta: list[torch.Tensor], grads: list[torch.Tensor]
                      ) -> tuple[list[float], list[torch.Tensor]]:
        """Each parameter's learning rate a and move a * (g + momentum * buffer + weight_decay * theta), as
        its optimizer group would take it (SGD without dampening or Nesterov, as the authors write it)."""
        groups: dict[int, dict[str, Any]] = {}
        if self._optimizer is not None:
            groups = {id(p): group for group in self._optimizer.param_groups for p in group["params"]}
        rates, moves = [], []
        for p, g in zip(theta, grads):
            group = groups.get(id(p))
            rate = self.virtual_lr if self.virtual_lr is not None else (
                float(group["lr"]) if group is not None else AUTHORS_MODEL_LR)
            move = g.detach().clone()
            if group is not None:
                momentum = float(group.get("momentum", 0.0) or 0.0)
                buffer = self._optimizer.state.get(p, {}).get("momentum_buffer") if momentum else None
                if buffer is not None:
                    move.add_(buffer, alpha=momentum)
                decay = float(group.get("weight_decay", 0.0) or 0.0)
                if decay:
                    move.add_(p.detach(), alpha=decay)
            rates.append(rate)
            moves.append(move.mul_(rate))
        return rates, moves

    def _inner_products(self, aux: torch.Tensor, theta: list[torch.Tensor], direction: torch.Tensor,
                        closure: Closure) -> torch.Tensor:
        """[<grad aux_k(theta), direction>]_k as `directional` says (the step's graph of `aux` is still alive);
        the central difference is the authors' (a move of `fd_step` in norm), not arml.gradients' (a fraction
        of ||theta||)."""
        method = resolve_directional(self.directional, closure)
        if method == "central":
            return self._central_difference(theta, direction, closure)
        return directional_derivatives(aux, theta, direction, closure, directional=method)

    def _central_difference(self, theta: list[torch.Tensor], direction: torch.Tensor,
                            closure: Closure) -> torch.Tensor:
        """[<grad aux_k, direction>]_k from the closure at theta +- fd_step * direction / |direction|."""
        norm = float(torch.linalg.vector_norm(direction.double()))
        if norm == 0.0:
            _, aux = closure()
            return torch.zeros_like(aux.detach().reshape(-1))
        h = self.fd_step / norm
        data = [p.data for p in theta]
        saved = [x.clone() for x in data]
        steps = split_like(direction.to(data[0].dtype), theta)
        try:
            torch._foreach_add_(data, steps, alpha=h)
            plus = closure()[1].detach().reshape(-1).double()
            torch._foreach_copy_(data, saved)
            torch._foreach_add_(data, steps, alpha=-h)
            minus = closure()[1].detach().reshape(-1).double()
        finally:
            torch._foreach_copy_(data, saved)
        return (plus - minus) / (2 * h)

    # ---- resuming ---------------------------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        return {"adam_m": self._adam_m.clone(), "adam_v": self._adam_v.clone(), "adam_steps": self._adam_steps}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        zeros = torch.zeros(self.num_aux, dtype=torch.float64)
        self._adam_m = torch.as_tensor(state.get("adam_m", zeros), dtype=torch.float64).clone()
        self._adam_v = torch.as_tensor(state.get("adam_v", zeros), dtype=torch.float64).clone()
        self._adam_steps = int(state.get("adam_steps", 0))

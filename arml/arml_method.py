"""ARML (Shi et al., NeurIPS 2020): weights that bring the weighted auxiliary gradient closest to the main
task's gradient, a <- P(a - beta * d/da ||g_main - sum_k a_k g_k||^2), P the projection onto
{a : sum(a) = K, a >= 0}. Algorithm 2 by default; Algorithm 1 with `langevin=True` and convergence
detection (noise while the weights move, then frozen weights and plain SGD)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from arml.base import Weighting
from arml.distributed import all_mean
from arml.gradients import Closure, check_fd_eps, directional_derivatives, grad_of
from arml.projection import project_simplex


class ARML(Weighting):
    """Auxiliary Task Reweighting for Minimum-data Learning.

    The alpha gradient is -2 [<g_k, r>]_k with r = g_main - sum_k a_k g_k over `shared_params`: two
    backward passes and, with a closure, two extra forward passes (a central difference along r), or
    without one a double backward; never one pass per task.

    Options: `lr` (beta; the paper uses 0.0005-0.05), `update_every` (steps between weight updates),
    `init` (initial weights, projected onto the set; default all 1), `langevin` (Eq. A9 noise
    N(0, 2 * eps_t * temperature) added to every parameter after each optimizer step until the weights
    converge; needs `attach_optimizer`; eps_t is `langevin_lr` or the optimizer's current learning
    rate; with losses that are means over N examples the posterior's temperature is 1/N),
    `converge_window`/`converge_tol` (the weights count as converged, and are frozen, once no weight
    moved more than `converge_tol` over the last `converge_window` updates; 0 never freezes),
    `fd_eps` (the central difference moves the parameters by this fraction of their norm; default
    3e-5 in float32, about 1e-3 relative error on ReLU nets, and 1e-6 in float64), `seed` (of the
    Langevin noise).

    Beyond the paper's single-minibatch step: `average_over` (N > 1 averages the alpha gradients of N
    update steps before one weight update: the paper's objective is an expectation over parameter samples,
    not one minibatch), and `normalize` (our scale-invariant form: ||g_main/|g_main| - sum_k a_k g_k/|g_k|||^2,
    so a task is judged by its gradient's direction, not its size; it needs each task's gradient, K
    backward passes at each update step: combine it with `update_every`). Defaults are the paper's rule.
    """

    name = "arml"

    def __init__(self, num_aux: int, *, lr: float = 0.05, update_every: int = 1,
                 init: Sequence[float] | None = None, langevin: bool = False,
                 langevin_lr: float | None = None, temperature: float = 1.0, converge_window: int = 0,
                 converge_tol: float = 1e-3, fd_eps: float | None = None, seed: int = 0,
                 average_over: int = 1, normalize: bool = False,
                 task_names: Sequence[str] | None = None) -> None:
        super().__init__(num_aux, task_names=task_names)
        if not lr > 0:
            raise ValueError(f"lr (beta) must be > 0, got {lr}")
        if not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"update_every must be an integer >= 1, got {update_every!r}")
        if converge_window < 0 or not converge_tol > 0:
            raise ValueError("converge_window must be >= 0 and converge_tol > 0")
        if langevin_lr is not None and not langevin_lr > 0:
            raise ValueError(f"langevin_lr must be > 0, got {langevin_lr}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not isinstance(average_over, int) or average_over < 1:
            raise ValueError(f"average_over must be an integer >= 1, got {average_over!r}")
        self.lr, self.update_every = float(lr), update_every
        self.average_over, self.normalize = average_over, bool(normalize)
        self._pending: list[torch.Tensor] = []   # alpha gradients waiting to be averaged
        self.langevin, self.langevin_lr, self.temperature = bool(langevin), langevin_lr, float(temperature)
        self.converge_window, self.converge_tol = int(converge_window), float(converge_tol)
        self.fd_eps, self.seed = check_fd_eps(fd_eps), int(seed)
        self.converged = False
        self._optimizer: torch.optim.Optimizer | None = None
        self._noise: dict[torch.device, torch.Generator] = {}
        if init is not None:
            start = torch.tensor([float(x) for x in init], dtype=torch.float64)
            if start.shape != (num_aux,) or not bool(torch.isfinite(start).all()):
                raise ValueError(f"init must be {num_aux} finite numbers, got {list(init)}")
            self._weights = project_simplex(start, float(num_aux))
            self._history = [self._weights.clone()]

    # ---- Algorithm 1: Langevin noise on the parameter update ----------------------------------------
    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Adds the Langevin noise after each `optimizer.step()` while the weights have not converged."""
        self._optimizer = optimizer
        optimizer.register_step_post_hook(lambda opt, args, kwargs: self._add_noise(opt))

    @torch.no_grad()
    def _add_noise(self, optimizer: torch.optim.Optimizer) -> None:
        if not self.langevin or self.converged:
            return
        for group in optimizer.param_groups:
            eps = self.langevin_lr if self.langevin_lr is not None else float(group["lr"])
            std = (2.0 * eps * self.temperature) ** 0.5
            for p in group["params"]:
                if p.requires_grad:
                    p.add_(torch.randn(p.shape, generator=self._generator(p.device), device=p.device,
                                       dtype=p.dtype), alpha=std)

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._noise:
            self._noise[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._noise[device]

    # ---- one training step ----------------------------------------------------------------------------
    def _step(self, main: torch.Tensor, aux: torch.Tensor, params: list[torch.Tensor],
              closure: Closure | None, main_weight: float) -> None:
        if self.langevin and self._optimizer is None:
            raise RuntimeError("ARML(langevin=True) adds noise after each optimizer step: call "
                               "weighting.attach_optimizer(optimizer) once before training")
        if self.converged or (self.steps - 1) % self.update_every != 0:
            self._total(main, aux, main_weight).backward()
            return
        grad = self.alpha_gradient(main, aux, params, closure, main_weight)
        if self.average_over == 1:
            self.update(grad)
            return
        self._pending.append(grad)
        if len(self._pending) == self.average_over:
            grads, self._pending = self._pending, []
            self.update(torch.stack(grads).mean(0))

    def alpha_gradient(self, main: torch.Tensor, aux: torch.Tensor, params: list[torch.Tensor],
                       closure: Closure | None, main_weight: float) -> torch.Tensor:
        """Fills .grad and returns d/da ||g_main - sum_k a_k g_k||^2 at the current weights ([K], float64)
        (with `normalize`, of the same objective over unit-length gradients)."""
        if self.normalize:
            return self._normalized_alpha_gradient(main, aux, params, main_weight)
        g_main, g_aux = self._gradients(main, aux, params, main_weight, keep_graph=closure is None)
        residual = g_main - g_aux
        inner = directional_derivatives(aux, params, residual, closure, self.fd_eps)
        return -2.0 * all_mean(inner).double().cpu()

    def _normalized_alpha_gradient(self, main: torch.Tensor, aux: torch.Tensor, params: list[torch.Tensor],
                                   main_weight: float) -> torch.Tensor:
        per_task = torch.stack([grad_of(aux[k], params, retain_graph=True) for k in range(self.num_aux)])
        per_task = all_mean(per_task).double()
        g_main, _ = self._gradients(main, aux, params, main_weight, keep_graph=False)
        tiny = torch.finfo(torch.float64).tiny
        units = per_task / per_task.norm(dim=1, keepdim=True).clamp_min(tiny)
        main_unit = g_main.double() / g_main.double().norm().clamp_min(tiny)
        residual = main_unit - self._weights.to(units.device) @ units
        return (-2.0 * units @ residual).cpu()

    def update(self, alpha_grad: torch.Tensor) -> None:
        """One projected gradient step on the weights, then the convergence check; a non-finite
        gradient (a diverging model) is skipped and counted in `skipped_updates`."""
        if not bool(torch.isfinite(alpha_grad).all()):
            self.skipped_updates += 1
            return
        if self._set_weights(project_simplex(self._weights - self.lr * alpha_grad, float(self.num_aux))):
            self._check_converged()

    def _check_converged(self) -> None:
        window = self.converge_window
        if window == 0 or self.updates < window:
            return
        recent = torch.stack(self._history[-(window + 1):])
        if float((recent - recent[-1]).abs().max()) < self.converge_tol:
            self.converged = True

    def _extra_state(self) -> dict[str, Any]:
        return {"converged": self.converged, "pending": [g.clone() for g in self._pending],
                "noise": {str(d): g.get_state() for d, g in self._noise.items()}}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.converged = bool(state.get("converged", False))
        self._pending = [torch.as_tensor(g, dtype=torch.float64) for g in state.get("pending", [])]
        for device, rng in state.get("noise", {}).items():
            self._generator(torch.device(device)).set_state(rng)

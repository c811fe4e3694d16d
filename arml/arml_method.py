"""ARML (Shi et al., NeurIPS 2020): weights that bring the weighted auxiliary gradient closest to the main
task's gradient, a <- P(a - beta * d/da ||g_main - sum_k a_k g_k||^2), P the projection onto
{a : sum(a) = K, a >= 0}. Algorithm 2 by default; Algorithm 1 with `langevin=True` (a first stage of
Langevin noise while the weights are learned, then frozen weights and plain training)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from arml.base import Weighting, check_protocol
from arml.distributed import all_mean
from arml.gradients import (
    Closure,
    check_directional,
    check_fd_eps,
    directional_derivatives,
    grad_of,
    resolve_directional,
)
from arml.projection import project_simplex, shift_then_clamp

AUTHORS_UPDATE_EVERY = 20          # the authors' code: one alpha update every 20 iterations
AUTHORS_FIRST_STAGE = 50_000       # the authors' code: Langevin noise in the first 50k iterations
DEFAULT_CONVERGE_WINDOW = 50       # Algorithm 1's default convergence window, in updates


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


class ARML(Weighting):
    """Auxiliary Task Reweighting for Minimum-data Learning.

    The alpha gradient is -2 [<g_k, r>]_k with r = g_main - sum_k a_k g_k over `shared_params`: two
    backward passes, then [<g_k, r>]_k for all K at once as `directional` says: with a closure, by default
    one forward pass with dual numbers along r ("jvp", exact), or two forward passes of a central
    difference along r ("central"); without one, or with "double_backward", one double backward (exact);
    never one pass per task.

    Options: `lr` (beta; the paper uses 0.0005-0.05), `update_every` (steps between weight updates;
    the weights then move `update_every` times slower), `amortize` (N: the cheap ARML, below), `init`
    (initial weights, projected onto the set; default all 1), `directional` ("jvp", "central" or
    "double_backward"; default "jvp" with a closure, "double_backward" without: arml.gradients), `fd_eps`
    (with "central": the difference moves the parameters by this fraction of their norm; default 3e-5 in
    float32, 1e-6 in float64), `seed` (of the Langevin noise).

    Cheap ARML, `amortize=N`: the alpha gradient is paid for once every N steps (the other steps cost
    what a Uniform step costs) and applied as the N per-step updates it stands for, one projected step
    of size N * beta; the weights thus travel as fast as with per-step updates, at 1 + 1.3/N times a
    Uniform step's cost (N = 8: about 1.15x). Not combined with `update_every`.

    Algorithm 1, `langevin=True`: a first stage adds Eq. A9's noise N(0, 2 * eps_t * temperature) to
    every parameter after each optimizer step (eps_t is `langevin_lr` or the optimizer's current
    learning rate) while the weights are learned; it ends, freezing the weights and stopping the noise
    (`converged` becomes True), at the first of: the weights converged (no weight moved more than
    `converge_tol` over the last `converge_window` updates; default window 50 updates with Langevin, 0
    = never without) or `first_stage_steps` steps (default: a quarter of the run's steps when the loop
    tells them to `bind`, else 50,000, the authors' first stage of 200k iterations). Both also freeze
    the weights without Langevin when given. The noise needs the optimizer (`bind` or
    `attach_optimizer`); `temperature` defaults to 1/N for losses that are means over N training
    examples (from `bind(num_train=N)`), else 1.
    The noise's form: with plain SGD (step eps, no momentum or weight decay) and L the mean loss over N
    examples, the step theta - eps grad L + N(0, 2 eps / N) is exactly Eq. A9's
    theta + eps' grad log p + N(0, 2 eps' T) for the posterior p ~ exp(-N L) at eps' = eps/N, T = 1.
    With momentum or Adam the drift is the optimizer's (Adam: a preconditioned, normalised step) and
    only the noise is Eq. A9's, isotropic and sized by Adam's learning rate: a heuristic, not Langevin
    dynamics. The authors' code adds its noise to the gradient before Adam (which rescales it), for the
    first 50k iterations.

    Beyond the paper: `average_over` (N > 1 averages the alpha gradients of N update steps before one
    weight update), and `normalize` (a scale-invariant objective over unit-length gradients; it needs
    K backward passes at each update step: combine it with `update_every` or `amortize`).

    `protocol="authors"` runs the authors' code's choices instead: an update every 20 steps on which
    the model is not stepped (`step_model` is False), the projection a + (K - sum a)/K then clamped at 0
    (the sum may then exceed K), and a first stage of 50,000 steps with Langevin noise.
    """

    name = "arml"
    fixed_weights = False
    recorded_defaults = {"directional": "jvp"}   # was a central difference

    def __init__(self, num_aux: int, *, lr: float = 0.05, update_every: int | None = None, amortize: int = 1,
                 init: Sequence[float] | None = None, langevin: bool = False,
                 langevin_lr: float | None = None, temperature: float | None = None,
                 converge_window: int | None = None, converge_tol: float = 1e-3,
                 first_stage_steps: int | None = None, directional: str | None = None,
                 fd_eps: float | None = None, seed: int = 0,
                 average_over: int = 1, normalize: bool = False, protocol: str = "paper",
                 task_names: Sequence[str] | None = None) -> None:
        super().__init__(num_aux, task_names=task_names)
        self.protocol = check_protocol(protocol)
        authors = self.protocol == "authors"
        if not lr > 0:
            raise ValueError(f"lr (beta) must be > 0, got {lr}")
        amortize = _positive_int("amortize", amortize)
        if amortize > 1 and update_every not in (None, 1):
            raise ValueError("give update_every or amortize, not both (amortize=N updates every N steps)")
        every = update_every if update_every is not None else (AUTHORS_UPDATE_EVERY if authors else 1)
        self.update_every = amortize if amortize > 1 else _positive_int("update_every", every)
        if converge_window is not None and (not isinstance(converge_window, int) or converge_window < 0):
            raise ValueError(f"converge_window must be an integer >= 0, got {converge_window!r}")
        if not converge_tol > 0:
            raise ValueError(f"converge_tol must be > 0, got {converge_tol}")
        if first_stage_steps is not None:
            _positive_int("first_stage_steps", first_stage_steps)
        if langevin_lr is not None and not langevin_lr > 0:
            raise ValueError(f"langevin_lr must be > 0, got {langevin_lr}")
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.lr, self.amortize = float(lr), amortize
        self.average_over, self.normalize = _positive_int("average_over", average_over), bool(normalize)
        self._pending: list[torch.Tensor] = []   # alpha gradients waiting to be averaged
        self.langevin, self.langevin_lr = bool(langevin), langevin_lr
        self._temperature_given = temperature is not None
        self.temperature = float(temperature) if temperature is not None else 1.0
        default_window = DEFAULT_CONVERGE_WINDOW if self.langevin else 0
        self.converge_window = int(converge_window) if converge_window is not None else default_window
        self.converge_tol = float(converge_tol)
        self._first_stage_given = first_stage_steps is not None
        self.first_stage_steps: int | None = first_stage_steps
        if first_stage_steps is None and self.langevin:
            self.first_stage_steps = AUTHORS_FIRST_STAGE   # until `bind` tells the run's length
        self.fd_eps, self.seed = check_fd_eps(fd_eps), int(seed)
        self.directional = check_directional(directional)
        self.converged = False                   # the first stage has ended: weights frozen, no noise
        self._updated = False                    # this step computed an alpha gradient
        self._optimizer: torch.optim.Optimizer | None = None
        self._noise: dict[torch.device, torch.Generator] = {}
        if init is not None:
            start = torch.tensor([float(x) for x in init], dtype=torch.float64)
            if start.shape != (num_aux,) or not bool(torch.isfinite(start).all()):
                raise ValueError(f"init must be {num_aux} finite numbers, got {list(init)}")
            self._set_initial_weights(self._project(start))

    # ---- what the training loop tells us ------------------------------------------------------------
    def bind(self, *, model: torch.nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
             num_train: int | None = None, total_steps: int | None = None) -> None:
        """Attaches the optimizer (Langevin noise), sets temperature = 1/num_train for Langevin when none was
        given, and the first stage's default length (a quarter of `total_steps`) when none was given."""
        if optimizer is not None and optimizer is not self._optimizer:
            self.attach_optimizer(optimizer)
        if self.langevin and not self._temperature_given and num_train is not None:
            self.temperature = 1.0 / max(int(num_train), 1)   # losses are means: the posterior of N examples
        if self.langevin and not self._first_stage_given and self.protocol == "paper" and total_steps:
            self.first_stage_steps = max(int(total_steps) // 4, 1)

    @property
    def step_model(self) -> bool:
        """False on the authors' protocol's weight-update steps (the model waits); True otherwise."""
        return not (self.protocol == "authors" and self._updated)

    # ---- Algorithm 1: Langevin noise on the parameter update ----------------------------------------
    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Adds the Langevin noise after each `optimizer.step()` during the first stage."""
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
                               "weighting.bind(optimizer=optimizer) (or attach_optimizer) once before training")
        self._updated = False
        if not self.converged and self.first_stage_steps is not None and self.steps > self.first_stage_steps:
            self.converged = True
        if self.converged or (self.steps - 1) % self.update_every != 0:
            self._total(main, aux, main_weight).backward()
            return
        grad = self.alpha_gradient(main, aux, params, closure, main_weight)
        self._updated = True
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
        method = resolve_directional(self.directional, closure)
        g_main, g_aux = self._gradients(main, aux, params, main_weight, keep_graph=method == "double_backward")
        residual = g_main - g_aux
        inner = directional_derivatives(aux, params, residual, closure, self.fd_eps, method)
        return -2.0 * all_mean(inner).double().cpu()

    def _normalized_alpha_gradient(self, main: torch.Tensor, aux: torch.Tensor, params: list[torch.Tensor],
                                   main_weight: float) -> torch.Tensor:
        per_task = torch.stack([grad_of(aux[k], params, retain_graph=True) for k in range(self.num_aux)])
        per_task = all_mean(per_task).double()
        g_main, _ = self._gradients(main, aux, params, main_weight, keep_graph=False)
        tiny = torch.finfo(torch.float64).tiny
        units = per_task / per_task.norm(dim=1, keepdim=True).clamp_min(tiny)
        main_unit = g_main.double() / g_main.double().norm().clamp_min(tiny)
        residual = main_unit - self._weights_on(units.device, torch.float64) @ units
        return (-2.0 * units @ residual).cpu()

    def update(self, alpha_grad: torch.Tensor) -> None:
        """One projected gradient step on the weights (of size amortize * lr), then the convergence check;
        a non-finite gradient (a diverging model) is skipped and counted in `skipped_updates`."""
        if not bool(torch.isfinite(alpha_grad).all()):
            self.skipped_updates += 1
            return
        step = self.lr * self.amortize
        if self._set_weights(self._project(self._weights - step * alpha_grad)):
            self._check_converged()

    def _project(self, values: torch.Tensor) -> torch.Tensor:
        if self.protocol == "authors":
            return shift_then_clamp(values, float(self.num_aux))
        return project_simplex(values, float(self.num_aux))

    def _check_converged(self) -> None:
        window = self.converge_window
        if window == 0 or self.updates < window:
            return
        recent = torch.stack(self._history[-(window + 1):])
        if float((recent - recent[-1]).abs().max()) < self.converge_tol:
            self.converged = True

    def _extra_state(self) -> dict[str, Any]:
        return {"converged": self.converged, "pending": [g.clone() for g in self._pending],
                "temperature": self.temperature, "first_stage_steps": self.first_stage_steps,
                "noise": {str(d): g.get_state() for d, g in self._noise.items()}}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.converged = bool(state.get("converged", False))
        self._pending = [torch.as_tensor(g, dtype=torch.float64) for g in state.get("pending", [])]
        self.temperature = float(state.get("temperature", self.temperature))
        self.first_stage_steps = state.get("first_stage_steps", self.first_stage_steps)
        for device, rng in state.get("noise", {}).items():
            self._generator(torch.device(device)).set_state(rng)

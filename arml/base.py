"""The one interface every weighting method implements (`Weighting`), its checks and its history."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from arml.distributed import all_mean
from arml.gradients import Closure, backward_total, grad_of

PROTOCOLS = ("paper", "authors")


def check_protocol(protocol: str) -> str:
    """`"paper"` (the rule as the cited paper states it, our default) or `"authors"` (as the ARML authors'
    public code runs it); anything else is a ValueError naming both."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(map(repr, PROTOCOLS))}, got {protocol!r}")
    return protocol


def last_shared_layer(model: torch.nn.Module | None) -> list[torch.Tensor] | None:
    """The last shared layer's parameters as the model declares them: `model.last_shared_parameters()`,
    else `model.backbone.last_shared_parameters()`; None when neither exists (methods then take the last
    tensor with at least 2 dimensions, a conv or linear weight, of the shared parameters they are given)."""
    for owner in (model, getattr(model, "backbone", None)):
        declared = getattr(owner, "last_shared_parameters", None)
        if callable(declared):
            return list(declared())
    return None


def last_matrix(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """The last parameter with at least 2 dimensions (else the last one): the fallback 'last layer'."""
    matrices = [p for p in params if p.dim() >= 2]
    return [matrices[-1] if matrices else params[-1]]


class NonFiniteLossError(FloatingPointError):
    """A loss is NaN or infinite; the message names the task."""


class Weighting:
    """Weights K auxiliary losses against a main loss (whose weight is 1) and fills the gradients.

    Subclasses set `name` and `fixed_weights` and override `_step`, which must fill `.grad` like
    `loss.backward()` and return the weights it used if they are not the ones held before the step; they
    change weights only through `_set_weights` (an update) or `_set_initial_weights` (in `__init__`).
    A method that needs the model, the optimizer or the training set's size overrides `bind`; one that
    wants the model left alone on some steps overrides `step_model`. A training loop thus never needs a
    method's name.
    """

    name = "weighting"
    fixed_weights = False   # True: the weights never move (no trajectory to plot, nothing learned)
    # Options whose default was changed in a way that changes what the method computes, with the value a
    # training loop that passes a closure gets: whoever records a run's options (a study's trial ids) writes
    # these in when they are not given, so that runs under the old default are not taken for new ones.
    recorded_defaults: dict[str, Any] = {}

    def __init__(self, num_aux: int, *, task_names: Sequence[str] | None = None) -> None:
        if not isinstance(num_aux, int) or isinstance(num_aux, bool) or num_aux < 1:
            raise ValueError(f"num_aux must be a positive integer, got {num_aux!r}")
        if task_names is not None and len(task_names) != num_aux:
            raise ValueError(f"{len(task_names)} task names for num_aux={num_aux}")
        self.num_aux = num_aux
        self.task_names = list(task_names) if task_names is not None else [f"aux{k}" for k in range(num_aux)]
        self._weights = torch.ones(num_aux, dtype=torch.float64)
        self.steps = 0                  # calls of backward()
        self.updates = 0                # weight updates so far
        self.skipped_updates = 0        # updates refused because they were not finite
        self._history = [self._weights.clone()]
        self._history_steps = [0]

    # ---- the public interface -------------------------------------------------------------------
    def bind(self, *, model: torch.nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
             num_train: int | None = None, total_steps: int | None = None) -> None:
        """Called once by a training loop after the optimizer exists (before resuming a checkpoint): the
        whole model, its optimizer, the number of training examples the losses average over and the run's
        length in steps. Methods take what they need (GradNorm its layer, ARML's Langevin noise the
        optimizer and the temperature); the default ignores it. Every argument is optional."""

    @property
    def step_model(self) -> bool:
        """Whether the loop should call `optimizer.step()` after this step's `backward` (read after it).
        True by default; the ARML authors' protocol leaves the model alone on weight-update steps."""
        return True

    @property
    def _weights(self) -> torch.Tensor:
        """The K weights held (float64, on the CPU); setting them forgets their copies on other devices."""
        return self._held

    @_weights.setter
    def _weights(self, value: torch.Tensor) -> None:
        self._held = value
        self._copies: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def _weights_on(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The weights as a `dtype` tensor on `device`, copied once per change of the weights: a method whose
        weights do not move (Uniform, fixed weights) copies them once, not every step. To a GPU the copy goes
        through pinned memory without waiting, so it does not stall the host (a pageable copy would)."""
        key = (torch.device(device), dtype)
        copy = self._copies.get(key)
        if copy is None:
            if key[0].type == "cuda":
                copy = self._held.to(dtype).pin_memory().to(key[0], non_blocking=True)
            else:
                copy = self._held.to(device=key[0], dtype=dtype)
            self._copies[key] = copy
        return copy

    @property
    def weights(self) -> torch.Tensor:
        """The K auxiliary weights now (a copy, float32); the main task's weight is 1."""
        return self._weights.float().clone()

    def history(self) -> torch.Tensor:
        """The weights after each update, [updates + 1, K] (row 0: the initial weights)."""
        return torch.stack(self._history).float()

    def history_steps(self) -> list[int]:
        """The value of `steps` at which each row of `history()` was set."""
        return list(self._history_steps)

    def backward(
        self,
        main_loss: torch.Tensor,
        aux_losses: torch.Tensor | Sequence[torch.Tensor],
        shared_params: Iterable[torch.Tensor],
        closure: Closure | None = None,
        main_weight: float = 1.0,
    ) -> torch.Tensor:
        """Fills `.grad` with the gradient of `main_weight * main_loss + sum_k w_k * aux_losses[k]` and
        updates the weights when the method's cadence says so. Returns the weights used for this step.

        `closure`, optional, re-evaluates `(main_loss, aux_losses)` at the current parameters with the same
        inputs and no side effects (see `arml.stateless`); methods use it for cheap directional derivatives.
        `main_weight=0` trains on the auxiliary losses only while the main loss still guides the weights.
        """
        aux = self._check(main_loss, aux_losses)
        params = [p for p in shared_params if p.requires_grad]
        if not params:
            raise ValueError("shared_params is empty (or none requires grad): pass the backbone's parameters")
        before = self.weights
        self.steps += 1
        used = self._step(main_loss, aux, params, closure, float(main_weight))
        return before if used is None else used

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: weights, counters, history and the method's own state."""
        return {
            "name": self.name, "weights": self._weights.clone(), "steps": self.steps, "updates": self.updates,
            "skipped_updates": self.skipped_updates, "history": torch.stack(self._history),
            "history_steps": list(self._history_steps), "extra": self._extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"state of weighting {state.get('name')!r} cannot be loaded into {self.name!r}")
        weights = torch.as_tensor(state["weights"], dtype=torch.float64)
        if weights.shape != (self.num_aux,):
            raise ValueError(f"state has {weights.numel()} weights, this weighting has {self.num_aux}")
        self._weights = weights.clone()
        self.steps, self.updates = int(state["steps"]), int(state["updates"])
        self.skipped_updates = int(state.get("skipped_updates", 0))
        self._history = list(torch.as_tensor(state["history"], dtype=torch.float64).unbind(0))
        self._history_steps = [int(s) for s in state["history_steps"]]
        self._load_extra_state(state.get("extra", {}))

    # ---- for subclasses -------------------------------------------------------------------------
    def _step(self, main: torch.Tensor, aux: torch.Tensor, params: list[torch.Tensor],
              closure: Closure | None, main_weight: float) -> torch.Tensor | None:
        self._total(main, aux, main_weight).backward()
        return None

    def _total(self, main: torch.Tensor, aux: torch.Tensor, main_weight: float) -> torch.Tensor:
        return main_weight * main + (self._weights_on(aux.device, aux.dtype) * aux).sum()

    def _gradients(self, main: torch.Tensor, aux: torch.Tensor, params: list[torch.Tensor],
                   main_weight: float, keep_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Fills .grad like backward() and returns, flat over `params` and averaged over data-parallel
        workers, the main task's gradient and this step's weighted auxiliary gradient sum_k w_k g_k."""
        g_main = grad_of(main, params, retain_graph=True)
        g_total = backward_total(self._total(main, aux, main_weight), params, retain_graph=keep_graph)
        both = all_mean(torch.cat([g_main, g_total - main_weight * g_main]))
        return both[: g_main.numel()], both[g_main.numel():]

    def _set_initial_weights(self, values: torch.Tensor | Sequence[float]) -> None:
        """The weights before any step (row 0 of `history()`); for `__init__`, not an update."""
        if self.steps or self.updates:
            raise RuntimeError("initial weights can only be set before the first step")
        start = torch.as_tensor(values, dtype=torch.float64).detach().cpu().reshape(-1)
        if start.shape != (self.num_aux,) or not bool(torch.isfinite(start).all()):
            raise ValueError(f"initial weights must be {self.num_aux} finite numbers, got {start.tolist()}")
        self._weights = start.clone()
        self._history, self._history_steps = [start.clone()], [0]

    def _set_weights(self, new: torch.Tensor) -> bool:
        """Records an update; refuses (and counts) a non-finite one so weights never become NaN."""
        new = new.detach().to("cpu", torch.float64)
        if not bool(torch.isfinite(new).all()):
            self.skipped_updates += 1
            return False
        self._weights = new.clone()
        self.updates += 1
        self._history.append(self._weights.clone())
        self._history_steps.append(self.steps)
        return True

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def _check(self, main: torch.Tensor, aux_losses: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        if not isinstance(main, torch.Tensor) or main.numel() != 1:
            shape = tuple(main.shape) if isinstance(main, torch.Tensor) else type(main).__name__
            raise ValueError(f"main_loss must be a scalar tensor, got {shape}")
        if not isinstance(aux_losses, torch.Tensor):
            aux_losses = torch.stack([torch.as_tensor(a).reshape(()) for a in aux_losses])
        if aux_losses.dim() != 1:
            shape = tuple(aux_losses.shape)
            raise ValueError(f"aux_losses must be a 1-D tensor of K scalars, got shape {shape}")
        if aux_losses.numel() != self.num_aux:
            raise ValueError(
                f"got {aux_losses.numel()} auxiliary losses, this weighting has num_aux={self.num_aux}")
        values = torch.cat([main.detach().reshape(1), aux_losses.detach()])
        if not bool(torch.isfinite(values).all()):
            bad = [("main" if i == 0 else self.task_names[i - 1]) for i in
                   torch.nonzero(~torch.isfinite(values)).flatten().tolist()]
            first = values[torch.nonzero(~torch.isfinite(values))[0]].item()
            raise NonFiniteLossError(
                f"loss of task {', '.join(bad)} is {first} "
                f"at step {self.steps + 1}; lower the learning rate or check the inputs"
            )
        return aux_losses

    def __repr__(self) -> str:
        w = ", ".join(f"{x:.3f}" for x in self._weights.tolist())
        return f"{type(self).__name__}(num_aux={self.num_aux}, weights=[{w}])"

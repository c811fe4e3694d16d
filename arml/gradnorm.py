"""GradNorm (Chen et al., ICML 2018, the paper's [11]) over the auxiliary tasks: each task's gradient norm
on the last shared layer is pulled towards the mean norm times its relative inverse training rate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from arml.base import Weighting, check_protocol, last_matrix, last_shared_layer
from arml.distributed import all_mean


class GradNorm(Weighting):
    """G_k = ||grad_W w_k L_k|| on the last shared layer W; target T_k = mean(G) * r_k ** asymmetry with
    r_k = (L_k / L_k(0)) / mean_j(L_j / L_j(0)) held constant; w <- w - lr * d/dw sum_k |G_k - T_k|,
    then clamped at 0 and renormalised to sum to K.

    Follows Chen et al.: the L1 loss between norms and constant targets (their Eq. 2, the target
    treated as a constant), renormalisation to sum K after each step, asymmetry 1.5 (their CIFAR
    value). Departs: only the auxiliary tasks are weighted (the main task keeps weight 1, as in every
    method here), the weights move by plain SGD with their own `lr`, and a clamp at 0 keeps them
    non-negative.

    `layer_params`: the last shared layer's parameters. Otherwise the layer the model declares through
    `bind(model=...)` (`model.last_shared_parameters()`, or its `backbone`'s), else the last tensor of
    `shared_params` with at least 2 dimensions (a conv or linear weight). The norms cost one small
    backward per task, through the heads and that layer only.

    `protocol="authors"` (the ARML authors' code): asymmetry 1.0, the target's dependence on w
    differentiated too, and renormalisation to sum K before the clamp at 0.
    """

    name = "gradnorm"
    fixed_weights = False

    def __init__(self, num_aux: int, *, lr: float = 0.025, asymmetry: float | None = None,
                 layer_params: Sequence[torch.Tensor] | None = None, protocol: str = "paper",
                 task_names: Sequence[str] | None = None) -> None:
        super().__init__(num_aux, task_names=task_names)
        self.protocol = check_protocol(protocol)
        if asymmetry is None:
            asymmetry = 1.0 if self.protocol == "authors" else 1.5
        if not lr > 0 or asymmetry < 0:
            raise ValueError(f"need lr > 0 and asymmetry >= 0, got lr={lr}, asymmetry={asymmetry}")
        self.lr, self.asymmetry = float(lr), float(asymmetry)
        self.layer_params = list(layer_params) if layer_params is not None else None
        self._bound_layer: list[torch.Tensor] | None = None
        self._initial: torch.Tensor | None = None

    def bind(self, *, model: torch.nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
             num_train: int | None = None, total_steps: int | None = None) -> None:
        self._bound_layer = last_shared_layer(model)

    def _layer(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.layer_params or self._bound_layer or last_matrix(params)

    def _step(self, main, aux, params, closure, main_weight):
        layer = self._layer(params)
        per_task = []
        for k in range(self.num_aux):
            grads = torch.autograd.grad(aux[k], layer, retain_graph=True, allow_unused=True)
            per_task.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                       for g, p in zip(grads, layer)]))
        norms = torch.linalg.vector_norm(all_mean(torch.stack(per_task)), dim=1).double().cpu()
        losses = all_mean(aux.detach()).double().cpu()
        self._total(main, aux, main_weight).backward()
        if self._initial is None:
            self._initial = losses.clamp(min=1e-12)
        ratio = losses / self._initial
        relative = (ratio / ratio.mean().clamp(min=1e-12)) ** self.asymmetry
        scaled = self._weights * norms
        sign = torch.sign(scaled - scaled.mean() * relative)
        if self.protocol == "authors":   # d/dw_k of sum_j |w_j G_j - mean(w G) r_j|, then renormalise, clamp
            grad = sign * norms - (sign * relative).sum() * norms / self.num_aux
            new = self._weights - self.lr * grad
            total = float(new.sum())
            new = (new * self.num_aux / total if total > 0 else torch.ones_like(new)).clamp(min=0)
        else:
            new = (self._weights - self.lr * sign * norms).clamp(min=0)
            total = float(new.sum())
            new = new * self.num_aux / total if total > 0 else torch.ones_like(new)
        self._set_weights(new)
        return None

    def _extra_state(self) -> dict[str, Any]:
        return {"initial": self._initial}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._initial = state.get("initial")

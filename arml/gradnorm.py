"""GradNorm (Chen et al., ICML 2018, the paper's [11]) over the auxiliary tasks: each task's gradient norm
on the last shared layer is pulled towards the mean norm times its relative inverse training rate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from arml.base import Weighting
from arml.distributed import all_mean


class GradNorm(Weighting):
    """G_k = ||grad_W w_k L_k|| on the last shared layer W; target T_k = mean(G) * r_k ** asymmetry with
    r_k = (L_k / L_k(0)) / mean_j(L_j / L_j(0)) held constant; w <- w - lr * d/dw sum_k |G_k - T_k|,
    then clamped at 0 and renormalised to sum to K.

    `layer_params`: the last shared layer's parameters; default the last tensor of `shared_params` with
    at least 2 dimensions (a conv or linear weight). The norms cost one small backward per task, through
    the heads and that layer only.
    """

    name = "gradnorm"

    def __init__(self, num_aux: int, *, lr: float = 0.025, asymmetry: float = 1.5,
                 layer_params: Sequence[torch.Tensor] | None = None,
                 task_names: Sequence[str] | None = None) -> None:
        super().__init__(num_aux, task_names=task_names)
        if not lr > 0 or asymmetry < 0:
            raise ValueError(f"need lr > 0 and asymmetry >= 0, got lr={lr}, asymmetry={asymmetry}")
        self.lr, self.asymmetry = float(lr), float(asymmetry)
        self.layer_params = list(layer_params) if layer_params is not None else None
        self._initial: torch.Tensor | None = None

    def _layer(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.layer_params is not None:
            return self.layer_params
        matrices = [p for p in params if p.dim() >= 2]
        return [matrices[-1] if matrices else params[-1]]

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
        relative = ratio / ratio.mean().clamp(min=1e-12)
        scaled = self._weights * norms
        target = scaled.mean() * relative ** self.asymmetry
        new = (self._weights - self.lr * torch.sign(scaled - target) * norms).clamp(min=0)
        total = float(new.sum())
        self._set_weights(new * self.num_aux / total if total > 0 else torch.ones_like(new))
        return None

    def _extra_state(self) -> dict[str, Any]:
        return {"initial": self._initial}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._initial = state.get("initial")

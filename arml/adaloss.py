"""AdaLoss (Hu et al., AAAI 2019, the paper's [25]): each auxiliary loss weighted by the inverse of its
(running average) value, so every task contributes the same relative progress."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from arml.base import Weighting
from arml.distributed import all_mean


class AdaLoss(Weighting):
    """w_k = 1 / (Lbar_k + eps), with Lbar_k the exponential moving average of L_k (decay `ema`).

    With `ema=0` (the default) the gradient equals that of main + sum_k log(L_k + eps), which is the rule
    the ARML authors' code runs; `ema` in (0, 1) is Hu et al.'s smoothed form. The main weight stays 1.
    """

    name = "adaloss"

    def __init__(self, num_aux: int, *, ema: float = 0.0, eps: float = 1e-6,
                 task_names: Sequence[str] | None = None) -> None:
        super().__init__(num_aux, task_names=task_names)
        if not 0.0 <= ema < 1.0 or not eps > 0:
            raise ValueError(f"need 0 <= ema < 1 and eps > 0, got ema={ema}, eps={eps}")
        self.ema, self.eps = float(ema), float(eps)
        self._average: torch.Tensor | None = None

    def _step(self, main, aux, params, closure, main_weight):
        losses = all_mean(aux.detach()).double().cpu()
        if self._average is None or self.ema == 0.0:
            self._average = losses
        else:
            self._average = self.ema * self._average + (1 - self.ema) * losses
        self._set_weights(1.0 / (self._average.clamp(min=0) + self.eps))
        self._total(main, aux, main_weight).backward()
        return self.weights

    def _extra_state(self) -> dict[str, Any]:
        return {"average": self._average}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._average = state.get("average")

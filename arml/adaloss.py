"""AdaLoss (Hu et al., AAAI 2019, the paper's [25]): each auxiliary loss weighted by the inverse of its
(running average) value, so every task contributes the same relative progress, with bounded weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from arml.base import Weighting, check_protocol
from arml.distributed import all_mean

RULES = ("max", "offset", "inverse")


class AdaLoss(Weighting):
    """Weights from the inverse of each auxiliary loss Lbar_k (its exponential moving average, decay `ema`;
    `ema=0`, the default, uses this step's loss). `rule` chooses how the inverse is bounded:

    - `"max"` (default, Hu et al.'s normalisation): w_k = max(floor, (1/Lbar_k) / max_j (1/Lbar_j)),
      i.e. min_j Lbar_j / Lbar_k floored at `floor` (0.3): weights in [0.3, 1] whatever the losses' scale,
      the task with the smallest loss at 1.
    - `"offset"`: w_k = (1 + c) / (Lbar_k + c) with c = `offset` (1): weight 1 at loss 1, at most 2 as a
      loss goes to 0 and about 0.67 at loss 2, so weights stay within about [0.67, 2] for usual losses.
    - `"inverse"`: w_k = 1 / (Lbar_k + eps) (the ARML authors' code: main + sum_k log(L_k + 1e-6)); a loss
      going to 0 gives weights up to 1/eps = 1e6.

    Why "max" by default: it is the cited paper's rule, the weights keep the main task's scale (at most
    1) and a vanishing auxiliary loss cannot take over training. Departs from Hu et al.: the losses are
    auxiliary tasks of one network rather than anytime-prediction exits, and the main task's weight
    stays 1. `protocol="authors"` makes `"inverse"` the default rule.
    """

    name = "adaloss"
    fixed_weights = False

    def __init__(self, num_aux: int, *, rule: str | None = None, ema: float = 0.0, floor: float = 0.3,
                 offset: float = 1.0, eps: float = 1e-6, protocol: str = "paper",
                 task_names: Sequence[str] | None = None) -> None:
        super().__init__(num_aux, task_names=task_names)
        self.protocol = check_protocol(protocol)
        rule = rule if rule is not None else ("inverse" if self.protocol == "authors" else "max")
        if rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(map(repr, RULES))}, got {rule!r}")
        if not 0.0 <= ema < 1.0 or not eps > 0:
            raise ValueError(f"need 0 <= ema < 1 and eps > 0, got ema={ema}, eps={eps}")
        if not 0.0 <= floor <= 1.0 or not offset > 0:
            raise ValueError(f"need 0 <= floor <= 1 and offset > 0, got floor={floor}, offset={offset}")
        self.rule, self.ema, self.eps = rule, float(ema), float(eps)
        self.floor, self.offset = float(floor), float(offset)
        self._average: torch.Tensor | None = None

    def _weights_for(self, losses: torch.Tensor) -> torch.Tensor:
        losses = losses.clamp(min=0)
        if self.rule == "inverse":
            return 1.0 / (losses + self.eps)
        if self.rule == "offset":
            return (1.0 + self.offset) / (losses + self.offset)
        inverse = 1.0 / (losses + self.eps)
        return (inverse / inverse.max()).clamp(min=self.floor)

    def _step(self, main, aux, params, closure, main_weight):
        losses = all_mean(aux.detach()).double().cpu()
        if self._average is None or self.ema == 0.0:
            self._average = losses
        else:
            self._average = self.ema * self._average + (1 - self.ema) * losses
        self._set_weights(self._weights_for(self._average))
        self._total(main, aux, main_weight).backward()
        return self.weights

    def _extra_state(self) -> dict[str, Any]:
        return {"average": self._average}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._average = state.get("average")

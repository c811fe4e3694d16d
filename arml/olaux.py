"""OL_AUX (Lin et al., NeurIPS 2019, the paper's [37]): auxiliary weights move along the inner product of
their gradient with the main task's, averaged over a horizon of steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from arml.base import Weighting, check_protocol
from arml.distributed import all_mean
from arml.gradients import check_directional, check_fd_eps, directional_derivatives, grad_of


class OLAux(Weighting):
    """Every `horizon` steps, w_k <- max(0, w_k + lr * mean over those steps of <g_main, g_k>).

    Follows Lin et al.: gradient ascent on the weights along <g_main, g_k> (the first-order change of
    the main loss), accumulated over a horizon of steps, with gradients over the shared parameters.
    Departs: the mean over the horizon where they take the sum (a factor `horizon` folded into `lr`),
    and a clamp at 0 keeps the weights non-negative. The inner products for all K tasks
    come from one directional derivative along g_main per step, computed as `directional` says ("jvp",
    "central" with `fd_eps` or "double_backward"; arml.gradients).

    `protocol="authors"` (the ARML authors' code): an update at every step (horizon 1), clamped at 0 and
    not normalised.
    """

    name = "olaux"
    fixed_weights = False
    recorded_defaults = {"directional": "jvp"}   # was a central difference

    def __init__(self, num_aux: int, *, lr: float = 0.01, horizon: int | None = None,
                 directional: str | None = None, fd_eps: float | None = None, protocol: str = "paper",
                 task_names: Sequence[str] | None = None) -> None:
        super().__init__(num_aux, task_names=task_names)
        self.protocol = check_protocol(protocol)
        if horizon is None:
            horizon = 1 if self.protocol == "authors" else 5
        if not lr > 0 or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"need lr > 0 and an integer horizon >= 1, got lr={lr}, horizon={horizon!r}")
        self.lr, self.horizon, self.fd_eps = float(lr), horizon, check_fd_eps(fd_eps)
        self.directional = check_directional(directional)
        self._sum = torch.zeros(num_aux, dtype=torch.float64)
        self._count = 0

    def _step(self, main, aux, params, closure, main_weight):
        g_main = all_mean(grad_of(main, params, retain_graph=True))
        inner = all_mean(directional_derivatives(aux, params, g_main, closure, self.fd_eps, self.directional))
        self._total(main, aux, main_weight).backward()
        self._sum += inner.double().cpu()
        self._count += 1
        if self._count == self.horizon:
            self._set_weights((self._weights + self.lr * self._sum / self._count).clamp(min=0))
            self._sum.zero_()
            self._count = 0
        return None

    def _extra_state(self) -> dict[str, Any]:
        return {"sum": self._sum.clone(), "count": self._count}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._sum = torch.as_tensor(state.get("sum", torch.zeros(self.num_aux)), dtype=torch.float64)
        self._count = int(state.get("count", 0))

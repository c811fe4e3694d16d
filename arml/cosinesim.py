"""CosineSim (Du et al. 2018, the paper's [14]): an auxiliary task counts only while its gradient points
the same way as the main task's, cos(g_k, g_main) > 0."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from arml.base import Weighting
from arml.distributed import all_mean
from arml.gradients import check_fd_eps, directional_derivatives, grad_of


class CosineSim(Weighting):
    """w_k = 1[cos(g_k, g_main) > 0] (`mode="binary"`), or w_k = max(cos, 0) (`mode="cosine"`).

    The binary rule needs only the signs of <g_k, g_main>: one directional derivative along g_main for
    all K tasks. The cosine rule needs each ||g_k||: one backward per task. Weights are recomputed every
    `update_every` steps and used from that step on.
    """

    name = "cosinesim"

    def __init__(self, num_aux: int, *, mode: str = "binary", update_every: int = 1,
                 fd_eps: float | None = None, task_names: Sequence[str] | None = None) -> None:
        super().__init__(num_aux, task_names=task_names)
        if mode not in ("binary", "cosine"):
            raise ValueError(f"mode must be 'binary' or 'cosine', got {mode!r}")
        if not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"update_every must be an integer >= 1, got {update_every!r}")
        self.mode, self.update_every, self.fd_eps = mode, update_every, check_fd_eps(fd_eps)

    def _step(self, main, aux, params, closure, main_weight):
        if (self.steps - 1) % self.update_every == 0:
            g_main = all_mean(grad_of(main, params, retain_graph=True))
            if self.mode == "binary":
                inner = all_mean(directional_derivatives(aux, params, g_main, closure, self.fd_eps))
                self._set_weights((inner > 0).double())
            else:
                per_task = all_mean(torch.stack([grad_of(aux[k], params, retain_graph=True)
                                                 for k in range(self.num_aux)]))
                cos = torch.nn.functional.cosine_similarity(per_task, g_main.unsqueeze(0), dim=1)
                self._set_weights(cos.clamp(min=0).double())
        self._total(main, aux, main_weight).backward()
        return self.weights

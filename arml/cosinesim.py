"""CosineSim (Du et al. 2018, the paper's [14]): an auxiliary task counts only while its gradient points
the same way as the main task's, cos(g_k, g_main) > 0."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from arml.base import Weighting, check_protocol, last_matrix, last_shared_layer
from arml.distributed import all_mean
from arml.gradients import check_directional, check_fd_eps, directional_derivatives, grad_of

AUTHORS_FREEZE_AFTER = 50_000   # the authors' code stops updating CosineSim's weights after 50k iterations


class CosineSim(Weighting):
    """w_k = 1[cos(g_k, g_main) > 0] (`mode="binary"`), or w_k = max(cos, 0) (`mode="cosine"`).

    Follows Du et al.'s two variants (their unweighted and weighted versions), with gradients over all
    shared parameters. Departs: the weights may be recomputed only every `update_every` steps (used from
    that step on), and the binary rule needs only the signs of <g_k, g_main>: one directional derivative
    along g_main for all K tasks (the cosine rule needs each ||g_k||: one backward per task), computed as
    `directional` says ("jvp", "central" with `fd_eps` or "double_backward"; arml.gradients).

    `protocol="authors"` (the ARML authors' code): the gradients are taken on one parameter tensor, the
    last shared layer (the one the model declares through `bind(model=...)`, else the last tensor of
    `shared_params` with at least 2 dimensions), and the weights freeze after `freeze_after` steps
    (default 50,000 there; None, never, otherwise).
    """

    name = "cosinesim"
    fixed_weights = False
    recorded_defaults = {"directional": "jvp"}   # was a central difference

    def __init__(self, num_aux: int, *, mode: str = "binary", update_every: int = 1,
                 freeze_after: int | None = None, directional: str | None = None, fd_eps: float | None = None,
                 protocol: str = "paper", task_names: Sequence[str] | None = None) -> None:
        super().__init__(num_aux, task_names=task_names)
        self.protocol = check_protocol(protocol)
        if mode not in ("binary", "cosine"):
            raise ValueError(f"mode must be 'binary' or 'cosine', got {mode!r}")
        if not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"update_every must be an integer >= 1, got {update_every!r}")
        if freeze_after is None and self.protocol == "authors":
            freeze_after = AUTHORS_FREEZE_AFTER
        if freeze_after is not None and (not isinstance(freeze_after, int) or freeze_after < 1):
            raise ValueError(f"freeze_after must be an integer >= 1, got {freeze_after!r}")
        self.mode, self.update_every, self.fd_eps = mode, update_every, check_fd_eps(fd_eps)
        self.freeze_after = freeze_after
        self.directional = check_directional(directional)
        self._bound_layer: list[torch.Tensor] | None = None

    def bind(self, *, model: torch.nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
             num_train: int | None = None, total_steps: int | None = None) -> None:
        self._bound_layer = last_shared_layer(model)

    def _step(self, main, aux, params, closure, main_weight):
        frozen = self.freeze_after is not None and self.steps > self.freeze_after
        if self.protocol == "authors":
            params = self._bound_layer or last_matrix(params)
        if not frozen and (self.steps - 1) % self.update_every == 0:
            g_main = all_mean(grad_of(main, params, retain_graph=True))
            if self.mode == "binary":
                inner = all_mean(directional_derivatives(aux, params, g_main, closure, self.fd_eps,
                                                             self.directional))
                self._set_weights((inner > 0).double())
            else:
                per_task = all_mean(torch.stack([grad_of(aux[k], params, retain_graph=True)
                                                 for k in range(self.num_aux)]))
                cos = torch.nn.functional.cosine_similarity(per_task, g_main.unsqueeze(0), dim=1)
                self._set_weights(cos.clamp(min=0).double())
        self._total(main, aux, main_weight).backward()
        return self.weights

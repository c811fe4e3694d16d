"""Auxiliary-task weighting for any PyTorch training loop: ARML (Alg. 1 and 2) and the paper's baselines
behind one interface, `make_weighting(name, num_aux=K).backward(main_loss, aux_losses, shared_params)`."""

from __future__ import annotations

from typing import Any

from arml.adaloss import AdaLoss
from arml.arml_method import ARML
from arml.base import NonFiniteLossError, Weighting
from arml.closure import stateless
from arml.cosinesim import CosineSim
from arml.fixed import Fixed
from arml.gradnorm import GradNorm
from arml.olaux import OLAux
from arml.projection import project_simplex
from arml.registry import Registry, UnknownNameError
from arml.uniform import Uniform

__version__ = "0.1.0"

WEIGHTINGS: Registry[type[Weighting]] = Registry("weighting method")
for _cls in (Uniform, Fixed, AdaLoss, GradNorm, CosineSim, OLAux, ARML):
    WEIGHTINGS.register(_cls.name)(_cls)


def make_weighting(name: str, num_aux: int, **options: Any) -> Weighting:
    """`make_weighting("arml", num_aux=K, lr=0.05)` is `ARML(num_aux=K, lr=0.05)`."""
    return WEIGHTINGS.get(name)(num_aux, **options)


__all__ = [
    "ARML", "WEIGHTINGS", "AdaLoss", "CosineSim", "Fixed", "GradNorm", "NonFiniteLossError", "OLAux",
    "UnknownNameError", "Uniform", "Weighting", "make_weighting", "project_simplex", "stateless",
]

"""Auxiliary-task weighting for any PyTorch training loop: ARML (Alg. 1 and 2) and the paper's baselines
behind one interface, `make_weighting(name, num_aux=K).backward(main_loss, aux_losses, shared_params)`.

Methods from other packages join `WEIGHTINGS` with `@arml.register_weighting` or through the entry-point
group `arml.weightings` (read on the first lookup of a name)."""

from __future__ import annotations

from typing import Any

from arml.adaloss import AdaLoss
from arml.arml_method import ARML
from arml.autolambda import AutoLambda
from arml.base import NonFiniteLossError, Weighting
from arml.closure import stateless
from arml.cosinesim import CosineSim
from arml.fixed import Fixed
from arml.gradnorm import GradNorm
from arml.olaux import OLAux
from arml.projection import project_simplex
from arml.registry import PluginError, Registry, UnknownNameError
from arml.uniform import Uniform

__version__ = "0.1.0"

ENTRY_POINT_GROUP = "arml.weightings"


def _check_weighting(name: str, cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Weighting)):
        raise TypeError(f"weighting method {name!r} must be a subclass of arml.Weighting, got {cls!r}")
    if cls.name != name:
        raise ValueError(f"weighting method {name!r}: its class {cls.__name__} says name = {cls.name!r}; "
                         f"set name = {name!r} in the class")
    if "fixed_weights" not in vars(cls) and not any(
            "fixed_weights" in vars(base) for base in cls.__mro__[1:] if base is not Weighting):
        raise ValueError(f"weighting method {name!r}: declare fixed_weights = True or False in {cls.__name__}")


WEIGHTINGS: Registry[type[Weighting]] = Registry("weighting method", entry_points=ENTRY_POINT_GROUP,
                                                 check=_check_weighting)
for _cls in (Uniform, Fixed, AdaLoss, GradNorm, CosineSim, OLAux, ARML, AutoLambda):
    WEIGHTINGS.register(_cls.name)(_cls)


def register_weighting(cls: type[Weighting]) -> type[Weighting]:
    """Class decorator: `@arml.register_weighting` adds a `Weighting` subclass under its `name`."""
    return WEIGHTINGS.register(getattr(cls, "name", ""))(cls)


def make_weighting(name: str, num_aux: int, **options: Any) -> Weighting:
    """`make_weighting("arml", num_aux=K, lr=0.05)` is `ARML(num_aux=K, lr=0.05)`."""
    return WEIGHTINGS.get(name)(num_aux, **options)


__all__ = [
    "ARML", "ENTRY_POINT_GROUP", "WEIGHTINGS", "AdaLoss", "AutoLambda", "CosineSim", "Fixed", "GradNorm",
    "NonFiniteLossError", "OLAux", "PluginError", "UnknownNameError", "Uniform", "Weighting", "make_weighting",
    "project_simplex", "register_weighting", "stateless",
]

"""Auxiliary-task weighting for any PyTorch training loop: ARML (Alg. 1 and 2) and the paper's baselines
behind one interface, `make_weighting(name, num_aux=K).backward(main_loss, aux_losses, shared_params)`.

Methods from other packages join `WEIGHTINGS` with `@arml.register_weighting` or through the entry-point
group `arml.weightings` (read on the first lookup of a name)."""

from __future__ import annotations

import importlib
from typing import Any

from arml.registry import PluginError, Registry, UnknownNameError

__version__ = "0.1.0"

ENTRY_POINT_GROUP = "arml.weightings"
# what `import arml` offers, each imported on first use (torch is imported then, not by `import arml`)
_LAZY = {
    "AdaLoss": "arml.adaloss", "ARML": "arml.arml_method", "AutoLambda": "arml.autolambda",
    "NonFiniteLossError": "arml.base", "NoForwardRuleError": "arml.gradients", "Weighting": "arml.base",
    "stateless": "arml.closure",
    "CosineSim": "arml.cosinesim", "Fixed": "arml.fixed", "GradNorm": "arml.gradnorm", "OLAux": "arml.olaux",
    "project_simplex": "arml.projection", "Uniform": "arml.uniform",
}
_BUILT_IN = {"uniform": "Uniform", "fixed": "Fixed", "adaloss": "AdaLoss", "gradnorm": "GradNorm",
             "cosinesim": "CosineSim", "olaux": "OLAux", "arml": "ARML", "autolambda": "AutoLambda"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'arml' has no attribute {name!r}")


def _check_weighting(name: str, cls: Any) -> None:
    from arml.base import Weighting

    if not (isinstance(cls, type) and issubclass(cls, Weighting)):
        raise TypeError(f"weighting method {name!r} must be a subclass of arml.Weighting, got {cls!r}")
    if cls.name != name:
        raise ValueError(f"weighting method {name!r}: its class {cls.__name__} says name = {cls.name!r}; "
                         f"set name = {name!r} in the class")
    if "fixed_weights" not in vars(cls) and not any(
            "fixed_weights" in vars(base) for base in cls.__mro__[1:] if base is not Weighting):
        raise ValueError(f"weighting method {name!r}: declare fixed_weights = True or False in {cls.__name__}")


WEIGHTINGS: Registry[Any] = Registry("weighting method", entry_points=ENTRY_POINT_GROUP, check=_check_weighting)
for _name, _cls in _BUILT_IN.items():
    WEIGHTINGS.register_lazy(_name, f"{_LAZY[_cls]}:{_cls}")


def register_weighting(cls: Any) -> Any:
    """Class decorator: `@arml.register_weighting` adds a `Weighting` subclass under its `name`."""
    return WEIGHTINGS.register(getattr(cls, "name", ""))(cls)


def make_weighting(name: str, num_aux: int, **options: Any) -> Any:
    """`make_weighting("arml", num_aux=K, lr=0.05)` is `ARML(num_aux=K, lr=0.05)`."""
    return WEIGHTINGS.get(name)(num_aux, **options)


__all__ = [
    "ARML", "ENTRY_POINT_GROUP", "WEIGHTINGS", "AdaLoss", "AutoLambda", "CosineSim", "Fixed", "GradNorm",
    "NoForwardRuleError", "NonFiniteLossError", "OLAux", "PluginError", "UnknownNameError", "Uniform", "Weighting",
    "make_weighting", "project_simplex", "register_weighting", "stateless",
]

"""How the few-shot domain generalization setting trains, by `dg_variant` name.

- `joint`: the target's few labels in the loss (main weight 1) beside the source domains' losses;
- `baseline`: source losses only (main weight 0); the target labels only steer the weighting;
- `fada`: joint training, then FADA's adversarial pair alignment (trainables/fada.py).

A variant gives the main loss's weight and may add its own gradients after the weighted backward
pass (`after_backward`), e.g. an adversarial term, and its own metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from arml.registry import Registry

if TYPE_CHECKING:   # names for annotations only: listing the variants (a config check) imports no torch
    import torch
    from torch import nn


class DGVariant:
    """Joint training: nothing beyond the weighted losses."""

    main_weight = 1.0

    def __init__(self, setting: Any) -> None:
        self.setting = setting

    def heads(self, feature_dim: int) -> dict[str, nn.Module]:
        """Extra modules kept in the model (checkpointed with it)."""
        return {}

    def after_backward(self, model: nn.Module, step: int, main_batch: tuple[torch.Tensor, torch.Tensor],
                       aux_batch: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Adds the variant's own gradients to `.grad` (called after the weighted backward, before the step)."""

    def metrics(self) -> dict[str, float]:
        """The variant's own metrics since the last call (reported at every evaluation)."""
        return {}


DG_VARIANTS: Registry[type[DGVariant]] = Registry("dg_variant")
DG_VARIANTS.register("joint")(DGVariant)


@DG_VARIANTS.register("baseline")
class Baseline(DGVariant):
    """Source losses only: the target labels enter only through the weighting method."""

    main_weight = 0.0


DG_VARIANTS.register_lazy("fada", "trainables.fada:Fada")   # imported (with torch) when a trial uses it

"""The auxiliary-task interface and its registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from arml.registry import Registry
from trainables.config import TrainConfig


@dataclass
class Context:
    """What a task may use when preparing a step: the step's generator and the EMA teacher."""

    generator: torch.Generator
    teacher: nn.Module | None = None


class AuxTask:
    """One or more auxiliary losses sharing a way of using the auxiliary batch.

    `prepare` runs once per step (random choices drawn there, so re-evaluating the losses at moved
    parameters sees the same inputs); `losses` maps the backbone's features of `prepare`'s inputs,
    in order, to a 1-D tensor with one loss per name in `names`.
    """

    settings: tuple[str, ...] = ()
    needs_teacher = False

    def __init__(self, data: Any, feature_dim: int, config: TrainConfig) -> None:
        self.names: list[str] = []

    def heads(self) -> dict[str, nn.Module]:
        return {}

    def prepare(self, batch: Any, context: Context) -> tuple[list[torch.Tensor], Any]:
        raise NotImplementedError

    def losses(self, heads: nn.ModuleDict, features: list[torch.Tensor], state: Any) -> torch.Tensor:
        raise NotImplementedError


AUX_TASKS: Registry[type[AuxTask]] = Registry("auxiliary task")

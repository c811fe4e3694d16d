"""Uniform: every auxiliary task with weight 1 (the paper's baseline)."""

from __future__ import annotations

from collections.abc import Sequence

from arml.base import Weighting


class Uniform(Weighting):
    """All K auxiliary weights are 1 and never change."""

    name = "uniform"
    fixed_weights = True

    def __init__(self, num_aux: int, *, task_names: Sequence[str] | None = None) -> None:
        super().__init__(num_aux, task_names=task_names)

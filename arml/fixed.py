"""Fixed: weights given up front and never changed (one point of a grid search)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from arml.base import Weighting


class Fixed(Weighting):
    """The K auxiliary weights are `weights` (finite, >= 0) for the whole run."""

    name = "fixed"
    fixed_weights = True

    def __init__(self, num_aux: int, *, weights: Sequence[float] = (),
                 task_names: Sequence[str] | None = None) -> None:
        super().__init__(num_aux, task_names=task_names)
        values = [float(w) for w in weights]
        if len(values) != num_aux:
            raise ValueError(
                f"fixed weighting needs {num_aux} weights (one per auxiliary task), got {len(values)}")
        if any(not math.isfinite(w) or w < 0 for w in values):
            raise ValueError(f"fixed weights must be finite and >= 0, got {values}")
        self._set_initial_weights(values)

"""The science: data sets, backbones, auxiliary tasks and one training loop, `fit(config, report)`.
Knows nothing of Ray or MLflow; it reports metrics through the `report` callable it is given."""

from __future__ import annotations

from typing import Any


def fit(*args: Any, **kwargs: Any) -> Any:
    """Trains one model; see `trainables.loop.fit` (imported lazily so `import trainables` stays cheap)."""
    from trainables.loop import fit as _fit

    return _fit(*args, **kwargs)

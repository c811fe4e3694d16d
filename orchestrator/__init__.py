"""The engine room: study files -> trial plan -> Ray Tune/Train -> MLflow runs and records -> reports.
The only package that imports ray and mlflow. From Python: `orchestrator.run(...)`, `orchestrator.load(...)`
(see orchestrator/api.py; imported on first use, so `import orchestrator` stays cheap)."""

from typing import Any

__all__ = ["load", "run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from orchestrator import api

        return getattr(api, name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")

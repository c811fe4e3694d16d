"""Auxiliary tasks by name (rotation, exemplar_mt, attributes, source_domains): each adds heads, turns an
auxiliary batch into backbone inputs, and returns one loss per task name."""

from __future__ import annotations

from trainables.tasks import attributes, exemplar, rotation, source_domains  # noqa: F401  (registration)
from trainables.tasks.base import AUX_TASKS, AuxTask, Context

__all__ = ["AUX_TASKS", "AuxTask", "Context"]

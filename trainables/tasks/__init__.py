"""Auxiliary tasks by name (rotation, exemplar_mt, attributes, source_domains): each adds heads, turns an
auxiliary batch into backbone inputs, and returns one loss per task name."""

from __future__ import annotations

from trainables.tasks import attributes, exemplar, rotation, source_domains
from trainables.tasks.base import AUX_TASKS, AuxTask, Context

for _name, _task in (("attributes", attributes.Attributes), ("exemplar_mt", exemplar.ExemplarMT),
                     ("rotation", rotation.Rotation), ("source_domains", source_domains.SourceDomains)):
    AUX_TASKS.register(_name)(_task)

__all__ = ["AUX_TASKS", "AuxTask", "Context"]

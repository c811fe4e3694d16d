"""Errors a user can act on: each message names the value, file or path at fault and what to do."""

from __future__ import annotations

from arml.registry import PluginError, UnknownNameError  # one of each, the registries' (arml/registry.py)


class TrainablesError(Exception):
    """Base class of every error raised on purpose by trainables/."""


class ConfigError(TrainablesError, ValueError):
    """A configuration value that cannot work (a label budget larger than the data, a bad key...)."""


class DataNotFoundError(TrainablesError, FileNotFoundError):
    """Data set files missing under the data root; the message names the exact path and the source."""


class DivergenceError(TrainablesError, FloatingPointError):
    """A loss became NaN or infinite during training; the message names the task and the step."""


__all__ = ["ConfigError", "DataNotFoundError", "DivergenceError", "PluginError", "TrainablesError", "UnknownNameError"]

"""Errors a user can act on: each message names the value, file or path at fault and what to do."""

from __future__ import annotations

from arml.registry import UnknownNameError


class TrainablesError(Exception):
    """Base class of every error raised on purpose by trainables/."""


class ConfigError(TrainablesError, ValueError):
    """A configuration value that cannot work (a label budget larger than the data, a bad key...)."""


class DataNotFoundError(TrainablesError, FileNotFoundError):
    """Data set files missing under the data root; the message names the exact path and the source."""


class PluginError(TrainablesError, ImportError):
    """A plug-in declared by an installed package (an entry point) could not be loaded; names the entry point."""


class DivergenceError(TrainablesError, FloatingPointError):
    """A loss became NaN or infinite during training; the message names the task and the step."""


__all__ = ["ConfigError", "DataNotFoundError", "DivergenceError", "PluginError", "TrainablesError", "UnknownNameError"]

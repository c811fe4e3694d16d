"""Errors the `arml` command turns into one line on stderr instead of a traceback."""

from __future__ import annotations


class UsageError(Exception):
    """A mistake the user can fix (a command-line value, a study file); the CLI exits with code 2."""


class StudyError(UsageError, ValueError):
    """A study file that cannot be run; the message names the file, the section and key, and the fix."""


class MissingComponentError(RuntimeError):
    """A part of the project that is not installed or not written yet; the CLI exits with code 1."""


__all__ = ["MissingComponentError", "StudyError", "UsageError"]

"""Errors the `arml` command turns into one line on stderr instead of a traceback."""

from __future__ import annotations


class UsageError(Exception):
    """A mistake the user can fix (a command-line value, a study file); the CLI exits with code 2."""


class StudyError(UsageError, ValueError):
    """A study file that cannot be run; the message names the file, the section and key, and the fix."""


class MissingComponentError(RuntimeError):
    """A part of the project that is not installed or not written yet; the CLI exits with code 1."""


class RunFault(RuntimeError):
    """A fault in the middle of a run (a full disk, a storage folder gone read-only): the CLI says it in one
    line and exits with code 1; records written before it are intact and `--resume` continues."""


__all__ = ["MissingComponentError", "RunFault", "StudyError", "UsageError"]

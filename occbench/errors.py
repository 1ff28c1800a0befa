"""Errors raised by occbench. Every message names the file, what was expected and what was found."""
from __future__ import annotations

from pathlib import Path


class OccbenchError(Exception):
    """Base class of every error occbench raises on purpose."""


class FormatError(OccbenchError, ValueError):
    """A file exists but its content is not what the format says it must be."""

    def __init__(self, path: str | Path | None, expected: str, found: str):
        self.path = None if path is None else Path(path)
        self.expected = expected
        self.found = found
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"{where}expected {expected}, found {found}")

    def __reduce__(self):  # picklable, so that an error raised in a worker process reaches the parent intact
        return (type(self), (self.path, self.expected, self.found))


class MissingDataError(OccbenchError, FileNotFoundError):
    """A file or folder the layout requires is absent."""

    def __init__(self, path: str | Path, what: str, hint: str = ""):
        self.path = Path(path)
        self.what = what
        self.hint = hint
        msg = f"{what} not found: {self.path}"
        if hint:
            msg += f"\n{hint}"
        super().__init__(msg)

    def __reduce__(self):  # picklable (worker processes), see FormatError
        return (type(self), (self.path, self.what, self.hint))

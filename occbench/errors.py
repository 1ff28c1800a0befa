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


class UnknownNameError(OccbenchError, KeyError, ValueError):
    """A name the user typed (method, dataset, split, option) is not one of the known ones.

    The command line turns it into a usage error (exit code 2). The message suggests the closest known names.
    It is a ``KeyError`` (the registry raised one) and a ``ValueError`` (the loaders raised one), without
    ``KeyError``'s quotes.
    """

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...], hint: str = "", where: str = ""):
        self.kind, self.name, self.known, self.hint, self.where = kind, name, list(known), hint, where
        msg = f"unknown {kind} {name!r}" + (f" {where}" if where else "")
        close = did_you_mean(name, self.known)
        if close:
            msg += f"; did you mean {' or '.join(repr(c) for c in close)}?"
        msg += f" (available: {', '.join(self.known) or 'none'})"
        if hint:
            msg += f"; {hint}"
        self.message = msg
        super().__init__(msg)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # picklable (worker processes), see FormatError
        return (type(self), (self.kind, self.name, self.known, self.hint, self.where))


def did_you_mean(name: str, known: list[str] | tuple[str, ...], n: int = 2) -> list[str]:
    """The known names closest to ``name`` (case-insensitive), best first; empty when none is close."""
    import difflib

    lower = {k.lower(): k for k in known}
    return [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)]

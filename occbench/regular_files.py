"""Opening files that may come from strangers: regular files only, never blocking on a FIFO or a device; JSON
documents bounded and strict. Standard library only (the command line reads dataset files through it at start-up);
:mod:`occbench.io.files` is where the rest of occbench imports it from."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from occbench.errors import FormatError, MissingDataError

MAX_JSON_BYTES = 16 << 20


def describe_mode(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words (for error messages)."""
    for test, what in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISREG, "a regular file"),
    ):
        if test(mode):
            return what
    return "a special file"


def link_found(path: str | Path) -> str:
    """What a refused symbolic link is, for a message: the link and what it names (its own text; nothing behind it
    is looked at), and the way out."""
    try:
        target = os.readlink(path)
    except OSError:
        return "a symbolic link (not followed)"
    return f"a symbolic link to {target} (not followed; give the file it names itself if that is the one meant)"


def regular_stat(path: str | Path, what: str, follow: bool = True) -> os.stat_result:
    """``stat`` (``lstat`` with ``follow=False``) of a file that must be a regular file.

    Raises :class:`MissingDataError` if it is absent (or a broken link) and :class:`FormatError` naming what it
    is otherwise (a directory, a FIFO, a device, a socket, or with ``follow=False`` a symbolic link)."""
    path = Path(path)
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        raise MissingDataError(path, what) from None
    except OSError as e:
        raise FormatError(path, f"a readable {what}", f"{type(e).__name__}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise FormatError(path, f"a regular file ({what})", describe_mode(st.st_mode))
    return st


def open_regular(path: str | Path, what: str, follow: bool = True):
    """Open ``path`` for binary reading if it is a regular file (checked on the open descriptor, so a file swapped
    after a check is caught). ``follow=False`` refuses a symbolic link. Opening never blocks (``O_NONBLOCK``: a
    FIFO is refused, not waited on)."""
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise MissingDataError(path, what) from None
    except OSError as e:
        if not follow and os.path.islink(path):
            raise FormatError(path, f"a regular file ({what})", link_found(path)) from None
        raise FormatError(path, f"a readable {what}", f"{type(e).__name__}: {e.strerror or e}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise FormatError(path, f"a regular file ({what})", describe_mode(st.st_mode))
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


class _NotJSON(ValueError):
    pass


def _no_constant(name: str) -> Any:
    """``json.loads`` accepts ``NaN``, ``Infinity`` and ``-Infinity``; JSON does not, nor does occbench."""
    raise _NotJSON(f"{name} (not a JSON number)")


def _finite_float(text: str) -> float:
    """A JSON number too large for a float (``1e999``) would silently read as infinity."""
    v = float(text)
    if v in (float("inf"), float("-inf")):
        raise _NotJSON(f"{text[:40]}, too large for a 64-bit float")
    return v


def read_json_document(path: Path, what: str, max_bytes: int = MAX_JSON_BYTES, follow: bool = True) -> Any:
    """The JSON value in ``path`` (a regular file of at most ``max_bytes``, strict JSON: no ``NaN`` or ``Infinity``),
    or a :class:`FormatError` naming the file. Every JSON file occbench reads goes through here. ``follow=False``
    refuses a symbolic link (files from strangers: results), naming it and what it names."""
    with open_regular(path, what, follow=follow) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FormatError(path, f"{what} of at most {max_bytes:,} bytes", "a larger file")
    if not data.strip():
        raise FormatError(path, what, "an empty file")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite_float)
    except _NotJSON as e:
        raise FormatError(path, f"{what} (valid JSON of finite numbers)", str(e)) from None
    except UnicodeDecodeError as e:
        raise FormatError(path, f"{what} in UTF-8", f"undecodable bytes ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise FormatError(
            path, f"{what} (valid JSON)", f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from None
    except RecursionError:
        raise FormatError(path, f"{what} (valid JSON)", "nesting too deep to read") from None

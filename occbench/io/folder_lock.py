"""One writer per output folder: an exclusive lock, and the writer's own stale temporary files removed on resume.

``occbench synth`` (mini generation), ``refine`` and ``evaluate --save-predictions`` write into a folder that a
second run could pick at the same time; the second one gets a clear error instead of interleaving with the first.
The lock is ``fcntl.flock`` on ``<folder>/.occbench.lock`` (released when the process ends, however it ends;
the file is removed when the writer finishes). Holding it, the writer may delete the temporary files that an
interrupted run of its own kind left (``.NAME.XXXXXXXX.tmp``, see :mod:`occbench.io.atomic`).
"""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from occbench.errors import OccbenchError

LOCK_NAME = ".occbench.lock"
TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # atomic_write_bytes: mkstemp(prefix=".NAME.", suffix=".tmp")

F = TypeVar("F", bound=Callable[..., Any])


class FolderBusyError(OccbenchError):
    """Another process (or an earlier, unfinished writer of this one) holds the writer lock of an output folder.
    ``holder``: what the lock file says of its holder (``pid N: command line``)."""

    def __init__(self, folder: str | Path, holder: str = ""):
        self.folder = Path(folder)
        self.holder = holder
        super().__init__(
            f"{self.folder}: {describe_holder(holder)} writing into this folder (lock {LOCK_NAME} held); "
            "wait for it to finish or choose another output folder"
        )

    def __reduce__(self):
        return (type(self), (self.folder, self.holder))


_HOLDER = re.compile(r"pid (\d+)(?:: (.*))?", re.S)


def holder_text() -> str:
    """What the lock file says of this process: its pid and command line (at most 200 bytes)."""
    argv = list(sys.argv or [""])
    argv[0] = "python -c" if argv[0] == "-c" else os.path.basename(argv[0]) or "python"
    cmd = " ".join(argv)
    return f"pid {os.getpid()}: {cmd}".encode()[:200].decode("utf-8", "ignore")


def describe_holder(holder: str) -> str:
    """The subject of a busy-folder message, as true as can be told: this process itself, the process that started
    this one, another (running) process with its command line, or one that inherited the lock from a process that has
    ended."""
    m = _HOLDER.fullmatch(holder.strip())
    if m is None:
        return "another occbench process is"
    pid, cmd = int(m.group(1)), (m.group(2) or "").strip()
    what = f"pid {pid}" + (f", `{cmd}`" if cmd else "")
    if pid == os.getpid():
        return f"this process itself ({what}) is already"
    if pid == os.getppid():
        return f"the process that started this one ({what}) is"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"a child of an ended occbench process ({what}; the lock passed to a process it started) is"
    except OSError:  # alive, another user's
        pass
    return f"another occbench process ({what}) is"


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Hold the exclusive writer lock of ``folder`` (created if needed, removed again if left empty) for the
    ``with`` block; raise
    :class:`FolderBusyError` at once if another process holds it. No-op where ``fcntl`` is unavailable or the
    folder is read-only (nothing can be written there anyway)."""
    folder = Path(folder)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield folder
        return
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            yield folder
            return
        raise
    path = folder / LOCK_NAME
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusyError(folder, os.pread(fd, 200, 0).decode("utf-8", "replace").strip()) from None
        try:  # the file may have been removed (and recreated) by the previous holder since we opened it
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            raise FolderBusyError(folder)
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_text().encode(), 0)
        try:
            yield folder
        finally:
            try:
                os.unlink(path)  # still holding the lock: nobody else can be using this file
            except FileNotFoundError:
                pass
            if created:  # a writer that failed before writing anything leaves no empty folder behind
                try:
                    folder.rmdir()
                except OSError:
                    pass
    finally:
        os.close(fd)


def remove_stale_temps(folder: str | Path, subfolders: str = "**") -> int:
    """Delete the temporary files interrupted atomic writes left under ``folder`` (only while holding its
    :func:`folder_lock`: a concurrent writer's live temporary files look the same). Returns how many."""
    n = 0
    for p in Path(folder).glob(f"{subfolders}/.*.tmp"):
        if TEMP_RE.match(p.name) and p.is_file() and not p.is_symlink():
            try:
                p.unlink()
                n += 1
            except FileNotFoundError:
                pass
    return n


@contextmanager
def exclusive_writer(folder: str | Path, subfolders: str = "**") -> Iterator[Path]:
    """:func:`folder_lock` on ``folder``, then :func:`remove_stale_temps` (resume); again when the block ends, however
    it ends (an interrupted run's workers are ended before: what they were writing is removed, the lock too)."""
    with folder_lock(folder) as f:
        remove_stale_temps(f, subfolders)
        try:
            yield f
        finally:
            remove_stale_temps(f, subfolders)


def writes_exclusively(fn: F) -> F:
    """Decorator: run ``fn(folder, ...)`` inside :func:`exclusive_writer` of its first argument."""

    @functools.wraps(fn)
    def wrapper(folder, *args, **kwargs):
        with exclusive_writer(folder):
            return fn(folder, *args, **kwargs)

    return cast(F, wrapper)  # functools.wraps keeps fn's name and signature

"""Page-cache hints for files that are read once, in order: start reading the next frame while the current
one is scored (:func:`prefetch`), drop files from the cache to measure cold reads (:func:`evict`), and check
how much of a file is cached (:func:`resident_fraction`).

All three are hints to the operating system (``posix_fadvise``, ``mincore``). Where it has no such calls
(macOS, Windows) :func:`prefetch` and :func:`evict` do nothing and :func:`resident_fraction` returns None;
results never depend on them, only timings do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from pathlib import Path

import numpy as np

__all__ = ["prefetch", "evict", "resident_fraction"]

_ADVISE = getattr(os, "posix_fadvise", None)


def _advise(paths: tuple[str | os.PathLike, ...], advice_name: str, sync: bool = False) -> None:
    advice = getattr(os, advice_name, None)
    if _ADVISE is None or advice is None:
        return
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue  # a missing or unreadable file is reported by whoever reads it, with its name
        try:
            if sync:
                os.fsync(fd)  # dirty pages cannot be dropped
            _ADVISE(fd, 0, 0, advice)
        finally:
            os.close(fd)


def prefetch(*paths: str | os.PathLike) -> None:
    """Ask the OS to start reading ``paths`` into the page cache now, without waiting (``POSIX_FADV_WILLNEED``).

    Scoring a split calls it for frame ``t + 1`` before it counts frame ``t``, so that on a cold cache the disk
    reads the next frame while the CPU counts this one."""
    _advise(paths, "POSIX_FADV_WILLNEED")


def evict(*paths: str | os.PathLike) -> None:
    """Write back and drop ``paths`` from the page cache (``fsync`` + ``POSIX_FADV_DONTNEED``), so that the
    next read comes from the disk. Pages still mapped by a live memory map stay cached."""
    _advise(paths, "POSIX_FADV_DONTNEED", sync=True)


def _mincore():
    name = ctypes.util.find_library("c")
    if name is None:  # pragma: no cover
        return None
    fn = getattr(ctypes.CDLL(name, use_errno=True), "mincore", None)
    if fn is None:  # pragma: no cover
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
    fn.restype = ctypes.c_int
    return fn


def resident_fraction(path: str | os.PathLike) -> float | None:
    """Fraction of ``path``'s pages that are in the page cache now (0.0 to 1.0; ``mincore``), or None where
    the OS cannot tell. An empty file counts as fully resident."""
    size = Path(path).stat().st_size
    if size == 0:
        return 1.0
    fn = _mincore() if os.name == "posix" else None
    if fn is None:
        return None
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), size, prot=mmap.PROT_READ)  # no MAP_POPULATE: mapping does not read
    try:
        view = np.frombuffer(mm, np.uint8)
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = (ctypes.c_ubyte * pages)()
        if fn(ctypes.c_void_p(view.ctypes.data), size, vec) != 0:  # pragma: no cover
            return None
        resident = int(np.count_nonzero(np.frombuffer(memoryview(vec), np.uint8) & 1))
        del view
    finally:
        mm.close()
    return resident / pages

"""Progress bars (tqdm) that respect ``--quiet`` and non-interactive runs.

Per-frame progress of jobs that run in worker processes (``FrameTicks``) is in :mod:`occbench.runtime.ticks`."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")

_QUIET = {"value": os.environ.get("OCCBENCH_QUIET", "") not in ("", "0")}


def set_quiet(quiet: bool) -> None:
    _QUIET["value"] = bool(quiet)
    os.environ["OCCBENCH_QUIET"] = "1" if quiet else "0"


def is_quiet() -> bool:
    return _QUIET["value"]


def progress_bar(it: Iterable[T], desc: str = "", total: int | None = None, disable: bool = False, **kw) -> Iterable[T]:
    """tqdm around ``it`` unless quiet or disabled."""
    if disable or is_quiet():
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, total=total, dynamic_ncols=True, leave=False, **kw)


def end_progress_lines() -> None:
    """Close every progress bar still drawn (a bar of a run that failed or was interrupted is left on the
    terminal's current line, without a newline), so that a message printed next starts on a line of its own: the
    bars are ``leave=False``, so closing erases them and returns to the start of the line."""
    import sys

    tqdm_module = sys.modules.get("tqdm.std")  # nothing to close if no bar was ever made
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar whose stream is gone: nothing more to erase
            pass

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

"""Supervising helper processes: they die with their parent (``kill -9`` included), leave Ctrl-C to it, and a pool
of them is ended promptly when a run stops (:func:`stop_pool`). Used by every pool occbench starts: the evaluation's
workers (:func:`occbench.evaluation.executors.run_jobs`), the generator's and the progress queue's manager
(:class:`occbench.runtime.ticks.FrameTicks`)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a pool is started: multiprocessing is not imported by a run on threads
    from concurrent.futures import ProcessPoolExecutor


def die_with_parent(parent: int) -> None:
    """Make this (worker) process exit as soon as process ``parent`` is gone, ``kill -9`` included.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``; everywhere: a daemon thread that polls the parent pid
    (twice a second) as a fallback. Call it first thing in a worker (a pool ``initializer``)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the thread below does it
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="occbench-parent-watch", daemon=True).start()


def ignore_interrupts() -> None:
    """In a helper process: leave Ctrl-C to the main process (a terminal sends SIGINT to the whole process group;
    the main process ends its helpers itself, see :func:`stop_pool`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def helper_init(parent: int) -> None:
    """Initializer of a helper process (the progress manager): dies with ``parent``, leaves Ctrl-C to it."""
    ignore_interrupts()
    die_with_parent(parent)


def stop_pool(ex: ProcessPoolExecutor, grace: float = 1.0) -> None:
    """Cancel the queued jobs of ``ex`` and end its worker processes: SIGTERM, then SIGKILL for those still alive
    after ``grace`` seconds. Returns when they are gone (what they were writing is theirs to lose: atomic writes
    leave only temporary files, which the folder's writer removes, see :mod:`occbench.io.folder_lock`)."""
    from occbench.runtime.interrupts import signals_deferred

    with signals_deferred():
        procs = list((getattr(ex, "_processes", None) or {}).values())
        ex.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        deadline = time.monotonic() + grace
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(1.0)

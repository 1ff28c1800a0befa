"""Per-frame progress of jobs that may run in worker processes or on a Ray cluster (the evaluation's executors, the
generator's workers); the bars themselves come from :mod:`occbench.runtime.progress` (quiet runs have none)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any


class _Tick:
    """Picklable progress callback for worker processes: puts its amount (default 1) on a multiprocessing queue."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def __call__(self, n: float = 1) -> None:
        if self.queue is None:
            return
        try:
            self.queue.put(n)
        except (OSError, EOFError):  # the progress channel is gone (its process ended): progress only, not the run
            self.queue = None


class _StoppableTick:
    """The per-frame callback of jobs on threads: raises :class:`RunStopped` once ``stop`` is set, else advances
    the bar (if any) under a lock."""

    def __init__(self, stop: threading.Event, update: Callable[[int], Any] | None) -> None:
        self.stop, self.update, self.lock = stop, update, threading.Lock()

    def __call__(self, n: int = 1) -> None:
        if self.stop.is_set():
            raise RunStopped("the run was stopped")
        if self.update is not None:
            with self.lock:
                self.update(n)


class RunStopped(Exception):
    """Raised by a job's per-frame callback (:class:`FrameTicks` with ``stop``) once the run is stopped: the job,
    running on a thread of the process, ends at this frame (its result is not used)."""


class FrameTicks:
    """Per-frame progress for jobs that may run elsewhere. ``ticks.tick`` goes to every job, which calls it once
    per frame (or with an amount, ``tick(n)``): inline jobs update the bar directly; local worker processes put on
    a manager queue that a thread drains into ``update`` (``tick`` is then picklable); Ray jobs cannot reach the
    bar, so ``ticks.on_job_done`` advances it when a job finishes. With ``update=None`` (quiet) everything is
    None, except with ``stop`` (jobs on threads of this process: they share the bar, under a lock): ``tick`` then
    also raises :class:`RunStopped` once ``stop`` is set."""

    def __init__(
        self,
        update: Callable[[int], Any] | None,
        executor: str = "local",
        inline: bool = True,
        stop: threading.Event | None = None,
    ) -> None:
        self.update = update
        inline = inline or stop is not None
        self._queued = update is not None and executor == "local" and not inline
        self._per_job = update is not None and executor != "local"
        self.tick: Callable[..., None] | None = None
        if stop is not None:
            self.tick = _StoppableTick(stop, update)
        elif update is not None and executor == "local" and inline:
            self.tick = lambda n=1: update(n)

    def on_job_done(self, sizes: list[int]) -> Callable[[int, Any], None] | None:
        """``on_done`` for ``run_jobs``: job ``i`` of ``sizes[i]`` frames finished (Ray only)."""
        if not self._per_job:
            return None
        update = self.update
        assert update is not None
        return lambda i, _result: update(sizes[i])

    def __enter__(self) -> FrameTicks:
        if self._queued:
            from multiprocessing.managers import SyncManager

            from occbench.runtime.processes import worker_context
            from occbench.runtime.supervision import helper_init

            self._manager = SyncManager(ctx=worker_context())  # holds a queue: needs nothing of the caller's __main__
            self._manager.start(helper_init, (os.getpid(),))  # dies with this process; Ctrl-C is left to this one
            self._queue = self._manager.Queue()
            self.tick = _Tick(self._queue)
            self._thread = threading.Thread(target=self._drain, daemon=True)
            self._thread.start()
        return self

    def _drain(self) -> None:
        assert self.update is not None
        while True:
            try:
                n = self._queue.get()
            except (OSError, EOFError):  # the manager process ended: no more progress, the run goes on
                self.lost = True
                return
            if n is None:
                return
            self.update(n)

    lost = False

    def __exit__(self, *exc: Any) -> None:
        if self._queued:
            try:
                self._queue.put(None)
            except (OSError, EOFError):
                self.lost = True
            self._thread.join(timeout=2.0)
            try:
                self._manager.shutdown()
            except (OSError, EOFError):  # pragma: no cover - already gone
                pass
            if self.lost and exc[0] is None:
                import sys

                print(
                    "warning: the progress display stopped (its helper process ended); the run completed",
                    file=sys.stderr,
                )

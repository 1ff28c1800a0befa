"""Per-frame progress of jobs that may run in worker processes or on a Ray cluster
(:mod:`occbench.evaluation.executors`); the bars themselves come from :mod:`occbench.progress` (quiet runs have
none)."""

from __future__ import annotations

import os
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


class FrameTicks:
    """Per-frame progress for jobs that may run elsewhere. ``ticks.tick`` goes to every job, which calls it once
    per frame (or with an amount, ``tick(n)``): inline jobs update the bar directly; local worker processes put on
    a manager queue that a thread drains into ``update`` (``tick`` is then picklable); Ray jobs cannot reach the bar, so
    ``ticks.on_job_done`` advances it when a job finishes. With ``update=None`` (quiet) everything is None."""

    def __init__(self, update: Callable[[int], Any] | None, executor: str = "local", inline: bool = True) -> None:
        self.update = update
        self._queued = update is not None and executor == "local" and not inline
        self._per_job = update is not None and executor != "local"
        self.tick: Callable[..., None] | None = (
            (lambda n=1: update(n)) if (update is not None and executor == "local" and inline) else None
        )

    def on_job_done(self, sizes: list[int]) -> Callable[[int, Any], None] | None:
        """``on_done`` for ``run_jobs``: job ``i`` of ``sizes[i]`` frames finished (Ray only)."""
        if not self._per_job:
            return None
        update = self.update
        assert update is not None
        return lambda i, _result: update(sizes[i])

    def __enter__(self) -> FrameTicks:
        if self._queued:
            import threading
            from multiprocessing.managers import SyncManager

            from occbench.evaluation.executors import helper_init
            from occbench.processes import worker_context

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

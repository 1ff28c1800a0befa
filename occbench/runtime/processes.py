"""Worker processes that never re-run the caller's script.

Python's ``spawn`` start method imports the parent's ``__main__`` again in every child (as ``__mp_main__``) so that
functions and classes defined there can be unpickled. A script without ``if __name__ == "__main__":`` then runs
again, top to bottom, in each worker: a top-level ``OccbenchMini(split="train")`` that starts the generator would
start it again in every worker (which finds the first one's lock and dies). The workers occbench starts for its own
jobs (generating occbench-mini, the progress queue's manager) run only occbench's functions, so they need nothing of
``__main__``: :func:`worker_context` starts them without it, and opening data works from a script without a main
guard, from ``python -c``, ``runpy`` and notebooks alike.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any


@contextmanager
def main_module_hidden() -> Iterator[None]:
    """While a child process is launched: ``sys.modules["__main__"]`` is an empty module (no ``__file__``, no
    ``__spec__``), so ``multiprocessing.spawn`` tells the child to import no main module. Only for the few
    milliseconds of a launch, on the launching thread."""
    main = sys.modules.get("__main__")
    if main is None or (getattr(main, "__spec__", None) is None and getattr(main, "__file__", None) is None):
        yield  # nothing a child would import (an interactive session, python -c, a notebook kernel)
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class _WorkerProcess(SpawnProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        with main_module_hidden():
            return SpawnProcess._Popen(process_obj)


class WorkerContext(SpawnContext):
    """The ``spawn`` multiprocessing context, except that children do not import ``__main__``: what is sent to them
    (functions, arguments) must be importable from installed modules, never defined in the caller's script."""

    Process = _WorkerProcess


_CONTEXT = WorkerContext()


def worker_context() -> WorkerContext:
    """The context for ``ProcessPoolExecutor(mp_context=...)`` and ``SyncManager(ctx=...)`` of occbench's own jobs."""
    return _CONTEXT

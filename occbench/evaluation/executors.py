"""Where jobs run: inline, in local worker processes (default), on threads of this process (jobs whose work is in
compiled kernels that release the GIL: scoring submitted predictions), or on a Ray cluster.

Every executor calls the same picklable job function with the same arguments and returns the job
results; the caller merges them in a fixed order, so numbers are identical whichever executor ran.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from occbench.runtime.supervision import die_with_parent, ignore_interrupts, stop_pool

EXECUTORS = ("local", "ray")


def _worker_init(parent: int | None = None, threads: int = 1) -> None:
    if parent is not None:
        ignore_interrupts()
        die_with_parent(parent)
    from occbench.runtime.progress import set_quiet

    set_quiet(True)
    torch_threads_on_import(threads)


def torch_threads_on_import(threads: int) -> None:
    """Set torch's intra-op threads to ``threads`` in this process: now if torch is imported, else as soon as it is.
    A worker that only scores files never imports torch (about 1.5 s of CPU and 0.19 GB a process); one that runs a
    method gets the same thread count, set before the method can use torch."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    elif not any(isinstance(f, _OnTorchImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _OnTorchImport(threads))


class _OnTorchImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ``torch`` is about to be imported it lets the other finders find it, and wraps
    the loader so that ``torch.set_num_threads`` runs right after the module is executed; then it leaves
    ``sys.meta_path``."""

    def __init__(self, threads: int):
        self.threads = threads

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):  # pragma: no cover - torch is a regular package
            return spec
        run, threads = loader.exec_module, self.threads

        def exec_module(module: Any) -> None:
            run(module)
            module.set_num_threads(threads)

        loader.exec_module = exec_module
        return spec


def threads_per_worker(workers: int) -> int:
    """Torch threads of each of ``workers`` local worker processes: the usable cores shared out, at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def runs_inline(executor: str, workers: int, n_jobs: int) -> bool:
    """Whether :func:`run_jobs` runs the jobs in the calling process (so callbacks passed to them need not pickle)."""
    return executor == "local" and (workers <= 1 or n_jobs <= 1)


def run_jobs(
    fn: Callable[..., Any],
    jobs: Sequence[tuple],
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    on_done: Callable[[int, Any], None] | None = None,
    import_main: bool | None = None,
    stop: threading.Event | None = None,
) -> list[Any]:
    """Run ``fn(*args)`` for every ``args`` in ``jobs``; return results in job order.

    ``executor="local"``: inline when ``workers <= 1``, else a pool of ``workers`` spawned processes, or, with
    ``stop``, ``workers`` threads of this process (for jobs that spend their time in compiled kernels releasing the
    GIL: no process starts, results are not pickled); the jobs must then check ``stop`` once per frame
    (:class:`occbench.runtime.ticks.FrameTicks` with ``stop`` does it in the per-frame callback): it is set when the
    run is interrupted or a job fails, and the running jobs end at their next frame before the error is raised.
    ``executor="ray"``: one Ray task per job on the cluster at ``address`` (``None``: start a local Ray
    instance with ``workers`` CPUs). ``on_done(i, result)`` is called as each job finishes.
    ``import_main``: whether local workers import the caller's ``__main__`` (``spawn``'s default, which re-runs a
    script without a main guard); None: only when what is sent to them names something defined there
    (:func:`refers_to_main`), else they start without it (:func:`occbench.runtime.processes.worker_context`).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; available: {', '.join(EXECUTORS)}")
    results: list[Any] = [None] * len(jobs)

    def done(i: int, r: Any) -> None:
        results[i] = r
        if on_done is not None:
            on_done(i, r)

    if executor == "ray":
        _run_ray(fn, jobs, workers, address, done)
    elif runs_inline(executor, workers, len(jobs)):
        for i, args in enumerate(jobs):
            done(i, fn(*args))
    elif stop is not None:
        _run_threads(fn, jobs, workers, done, stop)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        from occbench.runtime.processes import worker_context

        if import_main is None:
            import_main = refers_to_main((fn, list(jobs)))
        ctx = mp.get_context("spawn") if import_main else worker_context()
        ex = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(os.getpid(), threads_per_worker(workers)),
        )
        try:
            futs = {ex.submit(fn, *args): i for i, args in enumerate(jobs)}
            for f in as_completed(futs):
                done(futs[f], f.result())
        except BrokenProcessPool as e:
            stop_pool(ex)
            if not import_main:
                raise
            raise RuntimeError(
                "a worker process ended abruptly; the workers import the calling script again to find the method "
                "registered in it (register_method), which runs the script's top-level code again: keep the "
                'work under `if __name__ == "__main__":` (the registration outside it), run with workers=1, or '
                "install the method with an 'occbench.methods' entry point"
            ) from e
        except BaseException:  # an interrupt or a failed job: queued jobs are cancelled, running ones ended now
            stop_pool(ex)
            raise
        ex.shutdown(wait=True)
    return results


def _run_threads(
    fn: Callable[..., Any], jobs: Sequence[tuple], workers: int, done: Callable[[int, Any], None], stop: threading.Event
) -> None:
    ex = ThreadPoolExecutor(workers, thread_name_prefix="occbench-job")
    try:
        futs = {ex.submit(fn, *args): i for i, args in enumerate(jobs)}
        for f in as_completed(futs):
            done(futs[f], f.result())
    except BaseException:  # an interrupt or a failed job: queued jobs cancelled, running ones end at their next frame
        stop.set()
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    ex.shutdown(wait=True)


def refers_to_main(obj: Any) -> bool:
    """Whether ``obj`` pickles with a reference to ``__main__`` (a function or class defined in the caller's script
    or notebook), which a worker can only unpickle by importing it; True too when it does not pickle (the pool then
    reports that as before)."""
    import pickle
    import pickletools

    try:
        data = pickle.dumps(obj)
    except Exception:  # noqa: BLE001 - the pool reports the error itself
        return True
    return any(
        isinstance(arg, str) and (arg == "__main__" or arg.startswith("__main__ "))
        for _, arg, _ in pickletools.genops(data)
    )


def _run_ray(
    fn: Callable[..., Any], jobs: Sequence[tuple], workers: int, address: str | None, done: Callable[[int, Any], None]
) -> None:
    from occbench.evaluation.ray_session import connect

    session = connect(address, workers)  # loopback only where it can be; see the module
    ray = session.ray
    try:
        remote = ray.remote(num_cpus=1)(_ray_call)
        refs = {remote.remote(fn, args): i for i, args in enumerate(jobs)}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for r in ready:
                    done(refs[r], ray.get(r))
        except BaseException:  # interrupt or failed job: the other tasks are cancelled (their workers killed)
            for r in pending:
                try:
                    ray.cancel(r, force=True)
                except Exception:  # noqa: BLE001 - already finished or gone
                    pass
            raise
    finally:
        session.close()


def _ray_call(fn: Callable[..., Any], args: tuple) -> Any:
    _worker_init()
    return fn(*args)

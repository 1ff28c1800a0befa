"""How many local worker processes fit on this machine: bounded by cores and by memory.

Each offboard method declares about how much memory one of its worker processes needs
(:attr:`occbench.methods.OffboardMethod.worker_memory_gb`, measured peak resident memory of a one-process run);
the default worker count is the number of usable cores (at most 8), lowered so that the workers' estimate fits in
80 % of the memory available now. An explicit ``-j`` above the core count, or above what memory allows, is kept
but warned about.
"""

from __future__ import annotations

import os
from pathlib import Path

GIB = 1 << 30
MAX_DEFAULT_WORKERS = 8
MEMORY_FRACTION = 0.8  # of the available memory that workers may plan to use
DEFAULT_WORKER_GB = 2.0  # a method that declares nothing
SCORING_WORKER_GB = 0.6  # evaluate --predictions: one frame at a time (measured peak 0.31 GB, -j1, tiny mini val)


def usable_cores() -> int:
    """CPUs this process may run on (affinity / container limits where the OS says), at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(n, quota) if quota else n)


def _cgroup_cpu_quota() -> int | None:
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, int(int(quota) // max(1, int(period))))


def available_memory() -> int | None:
    """Bytes of memory available to new processes now (``MemAvailable``, or free pages, bounded by a cgroup
    limit), or None if unknown."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            avail = min(avail, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return avail


def _method_attr(method: str | None, name: str, scoring: float, default: float) -> float:
    """Class attribute ``name`` of a registered method (``scoring`` for None: scoring submitted predictions;
    ``default`` for a method that cannot be loaded, which is reported where it is loaded)."""
    if method is None:
        return scoring
    try:
        from occbench.methods import method_class

        return float(getattr(method_class(method), name, default))
    except Exception:
        return default


def worker_memory_gb(method: str | None) -> float:
    """Per-worker memory estimate of a registered method (None: scoring submitted predictions)."""
    return _method_attr(method, "worker_memory_gb", SCORING_WORKER_GB, DEFAULT_WORKER_GB)


def worker_threads(method: str | None) -> int:
    """CPU threads one worker of a registered method keeps busy (None: scoring, 1)."""
    return max(1, int(_method_attr(method, "worker_threads", 1, 1)))


def choose_workers(
    requested: int | None, method: str | None, cores: int | None = None, memory: int | None = -1
) -> tuple[int, list[str]]:
    """(worker count, warnings) for a local run of ``method``: ``requested`` if given, else the default: the
    cores (at most 8) over the threads a worker of the method keeps busy, bounded by the memory.

    ``cores`` / ``memory`` (bytes; None = unknown) default to this machine's."""
    cores = usable_cores() if cores is None else cores
    memory = available_memory() if memory == -1 else memory
    per = worker_memory_gb(method)
    fit = None if memory is None else max(1, int(memory * MEMORY_FRACTION // (per * GIB)))
    what = f"method {method}" if method else "scoring"
    if requested is None or requested <= 0:
        n = max(1, min(cores, MAX_DEFAULT_WORKERS) // worker_threads(method))
        return (n if fit is None else max(1, min(n, fit))), []
    warnings = []
    if requested > cores:
        warnings.append(
            f"-j {requested} is more than the {cores} usable CPU core(s): the workers share them "
            f"(slower, not faster) and each holds its own memory"
        )
    if fit is not None and memory is not None and requested > fit:
        warnings.append(
            f"-j {requested} may run out of memory: {what} needs about {per:g} GB a worker and "
            f"{memory / GIB:.1f} GB is available now (fits about {fit})"
        )
    return requested, warnings

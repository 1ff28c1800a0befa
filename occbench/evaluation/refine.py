"""Write a method's refined predictions for a split (resumable, atomic), without scoring them.

The same scaffold as the scoring run (:mod:`occbench.evaluation.jobs`): the same jobs, executors, progress, lock,
resume and writing of the method's grids; only the metrics are left out."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from occbench.evaluation.jobs import plan_jobs, resume, run_planned, write_outputs
from occbench.evaluation.specs import DatasetSpec, Job, MethodSpec
from occbench.io.predictions import PredictionStore

__all__ = ["refine_jobs", "refine_split"]


def _refine_job(
    dspec: DatasetSpec,
    mspec: MethodSpec,
    job: Job,
    out: str,
    compressed: bool,
    on_frame: Callable[[], None] | None = None,
) -> int:
    ds = dspec.open()
    seq = ds[job.sequence]
    store = PredictionStore(out, compressed=compressed)
    done, todo = resume(store, seq.name, job.targets)
    if on_frame is not None:
        for _ in done:  # already written (resume)
            on_frame()
    n = 0
    if todo:
        for _t, _pred in write_outputs(seq, mspec.load().refine(seq, todo), todo, store, who=mspec.name, check=False):
            n += 1
            if on_frame is not None:
                on_frame()
    return n


def refine_split(
    dspec: DatasetSpec,
    mspec: MethodSpec,
    out: str,
    compressed: bool = False,
    workers: int = 1,
    targets: str = "labelled",
    executor: str = "local",
    address: str | None = None,
) -> tuple[int, int]:
    """Refine every target scan of the split into ``out`` (``<out>/sequences/XX/predictions/``).

    ``targets``: ``"labelled"`` (every scan with ground truth, the benchmark's frames) or ``"all"`` scans that have
    a pose (a scan without one cannot be registered with its neighbours; ``ScanSequence.pose_valid``).
    Scans already written are skipped, so an interrupted run resumes where it stopped; every file is
    written atomically (temporary file + rename), so no half-written file is ever left behind.
    Returns (written, total).
    """
    ds = dspec.open()
    if targets == "all":
        jobs = [Job(s.name, tuple(int(t) for t in np.flatnonzero(s.pose_valid))) for s in ds.sequences]
    else:
        jobs = plan_jobs(ds, workers)
    return refine_jobs(dspec, mspec, jobs, out, compressed, workers, executor, address), sum(
        len(j.targets) for j in jobs
    )


def refine_jobs(
    dspec: DatasetSpec,
    mspec: MethodSpec,
    jobs: list[Job],
    out: str,
    compressed: bool = False,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
) -> int:
    """Refine the target scans of ``jobs`` into ``out`` like :func:`refine_split` (resumable, atomic); returns the
    number of files written. ``occbench render`` refines the scans a picture shows this way."""
    counts = run_planned(
        _refine_job,
        jobs,
        lambda job, tick: (dspec, mspec, job, out, compressed, tick),
        desc=f"refine {mspec.name}",
        workers=workers,
        executor=executor,
        address=address,
        writes=out,
    )
    return sum(counts)

"""Write a method's refined predictions for a split (resumable, atomic), without scoring them."""
from __future__ import annotations

from collections.abc import Callable

from occbench.evaluation.run import DatasetSpec, Job, MethodSpec, plan_jobs
from occbench.evaluation.executors import run_jobs, runs_inline
from occbench.io.folder_lock import exclusive_writer
from occbench.io.predictions import PREDICTION_TEMPS, PredictionStore
from occbench.evaluation.progress import FrameTicks
from occbench.progress import progress_bar


def _refine_job(dspec: DatasetSpec, mspec: MethodSpec, job: Job, out: str, compressed: bool,
                on_frame: Callable[[], None] | None = None) -> int:
    ds = dspec.open()
    seq = ds[job.sequence]
    store = PredictionStore(out, compressed=compressed)
    todo = [t for t in job.targets if not store.exists(seq.name, t)]
    if on_frame is not None:
        for _ in range(len(job.targets) - len(todo)):  # already written (resume)
            on_frame()
    n = 0
    if todo:
        for t, pred in mspec.load().refine(seq, todo):
            store.write(seq.name, int(t), seq.label_map.to_raw(pred))
            n += 1
            if on_frame is not None:
                on_frame()
    return n


def refine_split(dspec: DatasetSpec, mspec: MethodSpec, out: str, compressed: bool = False, workers: int = 1,
                 targets: str = "labelled", executor: str = "local", address: str | None = None) -> tuple[int, int]:
    """Refine every target scan of the split into ``out`` (``<out>/sequences/XX/predictions/``).

    ``targets``: ``"labelled"`` (every scan with ground truth, the benchmark's frames) or ``"all"`` scans.
    Scans already written are skipped, so an interrupted run resumes where it stopped; every file is
    written atomically (temporary file + rename), so no half-written file is ever left behind.
    Returns (written, total).
    """
    ds = dspec.open()
    if targets == "all":
        jobs = [Job(s.name, tuple(range(s.num_scans))) for s in ds.sequences]
    else:
        jobs = plan_jobs(ds, workers)
    total = sum(len(j.targets) for j in jobs)
    bar = progress_bar(iter(()), desc=f"refine {mspec.name}", total=total)
    update = getattr(bar, "update", None)
    with exclusive_writer(out, PREDICTION_TEMPS), \
            FrameTicks(update, executor, inline=runs_inline(executor, workers, len(jobs))) as ticks:
        counts = run_jobs(_refine_job, [(dspec, mspec, j, out, compressed, ticks.tick) for j in jobs], workers, executor,
                          address, on_done=ticks.on_job_done([len(j.targets) for j in jobs]))
    if hasattr(bar, "close"):
        bar.close()
    return sum(counts), total

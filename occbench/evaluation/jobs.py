"""The scaffold that ``occbench evaluate`` and ``occbench refine`` share: cut a split into jobs (a sequence and a
contiguous block of its target scans), run them (inline, in worker processes or on Ray) with a per-frame progress
bar and, when predictions are written, the folder locked against a second writer; in a job, what is already
written is skipped (resume) and a method's grids are written, atomically, as they come."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from typing import Any

import numpy as np

from occbench.datasets import SSCDataset
from occbench.errors import OccbenchError
from occbench.evaluation.executors import run_jobs, runs_inline
from occbench.evaluation.specs import Job, MethodSpec
from occbench.grid import Grid
from occbench.io.folder_lock import exclusive_writer
from occbench.io.predictions import PREDICTION_TEMPS, PredictionStore
from occbench.runtime.progress import progress_bar
from occbench.runtime.ticks import FrameTicks


def parse_scans(text: str) -> tuple[tuple[int, int], ...]:
    """The scan numbers and ranges of ``"0,5,10-20"`` as ``(low, high)`` pairs (both ends included; a number is
    ``(n, n)``); ``ValueError`` naming what is wrong. :func:`select_scans` resolves them on a split."""
    out: list[tuple[int, int]] = []
    for part in str(text).split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if dash else a
        except ValueError:
            raise ValueError(
                f"frames {text!r}: expected scan numbers and ranges such as 0,5,10-20, found {part!r}"
            ) from None
        if a < 0 or b < a:
            raise ValueError(f"frames {text!r}: expected scan numbers >= 0 and ranges low-high, found {part!r}")
        out.append((a, b))
    return tuple(out)


def select_scans(parts: Iterable[tuple[int, int]], labelled: Iterable[int]) -> tuple[int, ...]:
    """The scans :func:`parse_scans` names on a split whose labelled scans are ``labelled``: a number as it is (it
    must be labelled: :func:`split_targets` says so if not), a range the labelled scans in it (``ValueError`` when
    it holds none). Sorted, without repeats."""
    have = sorted(set(int(t) for t in labelled))
    out: set[int] = set()
    for a, b in parts:
        if a == b:
            out.add(a)
            continue
        inside = [t for t in have if a <= t <= b]
        if not inside:
            raise ValueError(
                f"frames {a}-{b}: no labelled scan in this range (expected a range holding scans with "
                f"ground truth: {format_scans(have) or 'none'})"
            )
        out.update(inside)
    return tuple(sorted(out))


def format_scans(scans: Iterable[int]) -> str:
    """The shortest ``"0,5,10-20"`` form of ``scans`` (inverse of :func:`parse_scans`)."""
    parts: list[str] = []
    run: list[int] = []
    for t in sorted(set(int(t) for t in scans)) + [None]:
        if run and (t is None or t != run[-1] + 1):
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
            run = []
        if t is not None:
            run.append(t)
    return ",".join(parts)


def split_targets(
    dataset: SSCDataset, max_frames: int | None = None, frames: Iterable[int] | None = None
) -> list[tuple[str, list[int]]]:
    """(sequence, labelled scans) of the split in order; with ``frames`` (scan numbers), only those scans of each
    sequence (each must be a labelled scan of some sequence of the split: ``ValueError`` otherwise); with
    ``max_frames``, only the first ``max_frames`` of them (a quick partial run: sequences in order, frames in order,
    so a method's cost shrinks with it)."""
    seqs = [(s.name, list(s.labelled_frames)) for s in dataset.sequences]
    if frames is not None:
        chosen = set(int(t) for t in frames)
        labelled = {t for _, ts in seqs for t in ts}
        unknown = sorted(chosen - labelled)
        if unknown:
            have = "; ".join(f"sequence {n}: {format_scans(ts) or 'none'}" for n, ts in seqs)
            raise ValueError(
                f"frames {format_scans(unknown)}: not labelled scans of split {dataset.split!r} of "
                f"{dataset.name} (expected scans with ground truth; {have})"
            )
        seqs = [(n, [t for t in ts if t in chosen]) for n, ts in seqs]
    if max_frames is None:
        return seqs
    out, left = [], max(0, int(max_frames))
    for name, targets in seqs:
        out.append((name, targets[:left]))
        left -= len(out[-1][1])
    return out


def plan_jobs(
    dataset: SSCDataset,
    workers: int,
    max_frames: int | None = None,
    per_worker: int = 2,
    frames: Iterable[int] | None = None,
) -> list[Job]:
    """Split every sequence's labelled scans (:func:`split_targets`) into contiguous blocks, about ``per_worker``
    blocks per worker overall (scoring submitted predictions costs the same for every frame: one block per worker,
    so that fewer world map tiles straddle two jobs; methods: two, to even out the load)."""
    seqs = split_targets(dataset, max_frames, frames)
    total = sum(len(t) for _, t in seqs)
    jobs: list[Job] = []
    want = 1 if workers <= 1 else per_worker * workers
    for name, targets in seqs:
        if not targets:
            continue
        k = max(1, min(len(targets), round(want * len(targets) / max(total, 1)))) if workers > 1 else 1
        size = math.ceil(len(targets) / k)
        for i in range(0, len(targets), size):
            jobs.append(Job(name, tuple(targets[i : i + size])))
    return jobs


def run_planned(
    fn: Callable[..., Any],
    jobs: list[Job],
    job_args: Callable[[Job, Callable[..., None] | None], tuple],
    *,
    desc: str,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    writes: str | None = None,
    threads: bool = False,
) -> list[Any]:
    """Run ``fn(*job_args(job, tick))`` for every job (:func:`occbench.evaluation.executors.run_jobs`) under one
    progress bar ``desc`` of the jobs' frames; the job calls ``tick()`` once per frame (``tick`` is None when
    quiet, and picklable when the job runs in a worker process). ``writes``: the folder the jobs write predictions
    to, locked for the run (:func:`occbench.io.folder_lock.exclusive_writer`). ``threads``: local jobs run on
    ``workers`` threads of this process instead of worker processes (jobs whose work is in compiled kernels that
    release the GIL); a job on a thread ends at its next ``tick()`` once the run is interrupted or another job
    failed. Returns the jobs' results in job order."""
    _refuse_in_a_starting_worker()
    sizes = [len(j.targets) for j in jobs]
    bar = progress_bar(iter(()), desc=desc, total=sum(sizes))
    update = getattr(bar, "update", None)
    inline = runs_inline(executor, workers, len(jobs))
    stop = threading.Event() if threads and executor == "local" and not inline else None
    with (
        exclusive_writer(writes, PREDICTION_TEMPS) if writes else nullcontext(),
        FrameTicks(update, executor, inline=inline, stop=stop) as ticks,
    ):
        args = [job_args(j, ticks.tick) for j in jobs]
        results = run_jobs(
            fn,
            args,
            workers,
            executor,
            address,
            on_done=ticks.on_job_done(sizes),
            import_main=True if not inline and stop is None and _registered_in_main(args, executor) else None,
            stop=stop,
        )
    if hasattr(bar, "close"):
        bar.close()
    return results


def _refuse_in_a_starting_worker() -> None:
    """A worker process that imports the caller's script to find a method registered there (``spawn``) runs the
    script's top-level code; a run started there would start workers of its own while this one starts, which
    ``multiprocessing`` refuses with a message about ``freeze_support``. Say what to do instead. A process that has
    not imported ``multiprocessing`` is no such worker: the worker's start-up imports it."""
    import sys

    mp = sys.modules.get("multiprocessing")
    if mp is not None and getattr(mp.current_process(), "_inheriting", False):
        raise RuntimeError(
            "occbench: a worker process, importing the calling script to find the method registered in it "
            "(register_method), reached the script's run of occbench: keep the run under "
            '`if __name__ == "__main__":` (the registration outside it), run with workers=1, or install the method '
            "with an 'occbench.methods' entry point"
        )


def _registered_in_main(args: list[tuple], executor: str = "local") -> bool:
    """Whether the jobs, run in worker processes, run a method registered in this process from a script's
    ``__main__`` (``register_method`` in the script): a worker finds it only by importing the script again, as
    ``spawn`` does (the script needs its main guard). A method registered in this process that no worker can find
    that way (registered from a notebook or another module, or any with Ray) is a ``ValueError`` naming it, raised
    before any work starts (workers would only report an unknown method)."""
    import sys

    from occbench.methods.registry import method_source, registered_in_process

    local = registered_in_process()
    specs = [getattr(a, "method", a) for job in args for a in job]  # a MethodSpec, or one inside a JobRequest
    names = sorted({a.name for a in specs if isinstance(a, MethodSpec) and a.name in local})
    script = getattr(sys.modules.get("__main__"), "__file__", None) is not None
    for n in names:
        obj = method_source(n).get("object", "")
        if not (executor == "local" and script and obj.startswith("__main__:")):
            where = "a notebook or interactive session" if obj.startswith("__main__:") else f"module {obj}"
            raise ValueError(
                f"method {n!r} is registered in this process only (register_method, from {where}); worker "
                f"processes cannot find it: run with workers=1 (`-j 1`), or install it with an 'occbench.methods' "
                "entry point (docs/methods.md)"
            )
    return bool(names)


def resume(store: PredictionStore | None, sequence: str, targets: Iterable[int]) -> tuple[list[int], list[int]]:
    """(already written, still to do): the ``targets`` of ``sequence`` that ``store`` holds (None: none), and the
    others, in order."""
    targets = list(targets)
    done = [t for t in targets if store is not None and store.exists(sequence, t)]
    if not done:
        return [], targets
    written = set(done)
    return done, [t for t in targets if t not in written]


def write_outputs(
    seq: Any,
    outputs: Iterable[tuple[int, Any]],
    todo: list[int],
    store: PredictionStore | None = None,
    who: str = "onboard",
    check: bool = True,
    grid: Grid | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """``(scan, train-id grid)`` of ``outputs`` (a method's ``refine(seq, todo)``, or submitted predictions), each
    written to ``store`` (raw ids, atomically) before it is yielded. ``check``: a scan that was not asked for or
    comes twice, a grid of another shape than the grid's, or a scan of ``todo`` missing at the end is an
    :class:`occbench.errors.OccbenchError` naming ``who`` (``occbench evaluate``; ``occbench refine`` writes what the
    method returns). ``grid``: the dataset's (its protocol's), whose shape a checked grid must have."""
    wanted = set(todo)
    seen: set[int] = set()
    for t, pred in outputs:
        t = int(t)
        if check:
            if t not in wanted or t in seen:
                raise OccbenchError(
                    f"method {who} returned scan {t} of sequence {seq.name}, "
                    f"which was not asked for or was returned twice"
                )
            seen.add(t)
        pred = np.asarray(pred)
        if check and grid is not None and pred.shape != grid.shape:
            raise OccbenchError(
                f"method {who} returned a grid of shape {pred.shape} for {seq.name}/{t:06d}; expected {grid.shape}"
            )
        if check and pred.dtype.kind not in "ui":
            raise OccbenchError(
                f"method {who} returned a grid of dtype {pred.dtype} for {seq.name}/{t:06d}; expected integer train "
                f"ids (uint8, 0..{seq.label_map.num_classes - 1})"
            )
        if store is not None:
            store.write(seq.name, t, seq.label_map.to_raw(pred))
        yield t, pred
    missing = sorted(wanted - seen) if check else []
    if missing:
        raise OccbenchError(
            f"method {who} returned no prediction for {len(missing)} scan(s) of sequence {seq.name}, first "
            f"{missing[:5]}"
        )

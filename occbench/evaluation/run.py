"""Evaluation runner: dataset -> sequences -> method -> refined predictions -> metric states -> results JSON.

Work is split into jobs (a sequence and a contiguous block of its target scans). Jobs run inline, in worker
processes (methods) or on threads of this process (scoring submitted predictions); each returns integer metric
states that are merged by addition, so the numbers do not depend on the number of workers or on the order in which
jobs finish.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from occbench.errors import FormatError
from occbench.evaluation.config import EvalConfig
from occbench.evaluation.jobs import plan_jobs, resume, run_planned, split_targets, write_outputs
from occbench.evaluation.specs import DatasetSpec, Job, JobRequest, JobResult, MethodSpec, Submission
from occbench.io.predictions import PredictionStore
from occbench.results import Results
from occbench.version import __version__

__all__ = [
    "DatasetSpec",
    "EvalConfig",
    "MethodSpec",
    "Job",
    "JobRequest",
    "JobResult",
    "Submission",
    "evaluate",
    "plan_jobs",
    "split_targets",
    "run_job",
    "useful_workers",
]


def run_job(request: JobRequest, on_frame: Callable[[], None] | None = None) -> JobResult:
    """Refine (or read) the targets of one job, score them, and return mergeable metric states.

    ``request.method`` None scores the predictions of ``request.dataset.onboard`` as they are (``--predictions``).
    ``request.save_predictions_dir``: refined predictions are written there atomically; targets already
    present are read back instead of recomputed (resume). Other ``request.metrics`` than ``city`` and
    ``consistency`` are metrics of the registry (:mod:`occbench.metrics.registry`), fed every scored frame. With
    ``city`` or ``consistency`` one world map state (:class:`occbench.metrics.worldmap.WorldMapState`) serves both;
    it is planned with the poses of every scored scan of the sequence, so its tiles are reduced as the job goes and
    what it returns is the records of the tiles other jobs share (``request.spill_dir``: where it writes records
    beyond its memory bound). ``request.validate`` (submitted predictions): each prediction's content is checked as
    it is read (it must decode, and hold only predictable raw ids); a frame with a problem is not scored, and the
    problems are returned. ``on_frame()`` is called once per frame (progress).
    """
    from occbench.metrics import PROTOCOLS
    from occbench.metrics.frame import FrameArrays
    from occbench.metrics.registry import load_metric
    from occbench.metrics.worldmap import WorldMapState

    dspec, mspec, job, extras = request.dataset, request.method, request.job, request.metrics
    spill_dir, validate = request.spill_dir, request.validate
    ds = dspec.open()
    seq = ds[job.sequence]
    proto = PROTOCOLS[ds.protocol]
    ssc = load_metric("ssc", proto)
    world = _world_map_metrics(extras)
    others = {n: load_metric(n, proto) for n in dict.fromkeys(extras) if n not in world and n != "ssc"}  # ssc: always
    maps = None
    if world:
        scored = list(seq.labelled_frames)
        seq.require_poses(scored)  # the world map places every scored frame by its pose
        position = {t: i for i, t in enumerate(scored)}
        maps = WorldMapState(proto, spill_dir=spill_dir, background=True).expect(
            seq.poses[scored], [position[t] for t in job.targets]
        )
    save = request.save_predictions_dir
    store = PredictionStore(save, compressed=request.save_compressed) if save else None
    done, todo = resume(store, seq.name, job.targets)
    problems: list[str] = []

    def result() -> JobResult:  # maps travels back by pickle (process pool, Ray) and merges exactly: see settle()
        return JobResult(seq.name, len(job.targets), ssc, others, maps, tuple(problems))

    def consume(t: int, pred: np.ndarray) -> None:
        f = seq.frame(t)
        gt = f.ground_truth()  # the files are read here: metrics take arrays
        pose = seq.poses[t] if others and seq.pose_valid[t] else None
        arrays = FrameArrays(gt, pose=pose, name=str(f))
        ssc.update_frame(pred, arrays)  # raises on an invalid prediction at an evaluated voxel, before the map sees it
        if maps is not None:
            maps.add(pred if pred.dtype == np.uint8 else pred.astype(np.uint8), gt, seq.poses[t])
        for m in others.values():
            m.update_frame(pred, arrays)
        if on_frame is not None:
            on_frame()

    if mspec is None and store is None and not others and seq.scored_from_raw_files(proto):
        # submitted predictions: score straight from the files (one compiled pass per frame and metric)
        files = _frame_files(seq, todo[0]) if todo else []
        fused = validate and hasattr(ssc, "add_checked_raw") and _ids_checked_by_ssc(seq.label_map, proto)
        for i, t in enumerate(todo):
            nxt = _frame_files(seq, todo[i + 1]) if i + 1 < len(todo) else None
            problem = _update_from_files(ssc, seq, t, files, nxt, maps, validate, fused)
            if problem:
                problems.append(problem)
            files = nxt or []
            if on_frame is not None:
                on_frame()
        if maps is not None:
            maps.settle()  # keeps only the records of tiles that other jobs' frames touch too
        return result()
    for t in done:
        assert store is not None
        consume(t, seq.label_map.to_train(store.read(seq.name, t), store.find(seq.name, t)))
    if todo:
        if mspec is None:
            outputs: Iterable[tuple[int, np.ndarray]] = _submitted(seq, todo, problems if validate else None)
        else:
            outputs = mspec.load().refine(seq, todo)
        for t, pred in write_outputs(
            seq, outputs, todo, store, who=mspec.name if mspec else "onboard", grid=proto.grid
        ):
            consume(t, pred)
    if maps is not None:
        maps.settle()
    return result()


def _world_map_metrics(names: Iterable[str]) -> list[str]:
    """The metrics among ``names`` that read a world map (:class:`~occbench.metrics.worldmetric.WorldMapMetric`):
    every job keeps one world map state for all of them (see :func:`_map_metrics`)."""
    from occbench.metrics.registry import metric_class
    from occbench.metrics.worldmetric import WorldMapMetric

    return [n for n in dict.fromkeys(names) if issubclass(metric_class(n), WorldMapMetric)]


def _frame_files(seq: Any, t: int) -> list[Path]:
    """The files scoring scan ``t`` reads: ground truth ``.label`` and ``.invalid``, and the prediction."""
    f = seq.frame(t)
    path = f.prediction_file()
    return f.ground_truth_files() + ([path] if path is not None else [])


def _submitted(seq: Any, scans: list[int], problems: list[str] | None) -> Iterable[tuple[int, np.ndarray]]:
    """``(scan, train ids)`` of the submitted predictions; with ``problems`` a list, a file that does not decode or
    holds raw ids that are not predictable classes is reported there (and skipped) instead of raising."""
    from occbench.evaluation.submission import prediction_id_problem

    for t in scans:
        if problems is None:
            yield t, seq.prediction(t)
            continue
        path = seq.frame(t).prediction_file()
        try:
            raw = seq.prediction_raw(t)
        except FormatError as e:
            problems.append(str(e))
            continue
        problem = prediction_id_problem(raw, path, seq.label_map)
        if problem:
            problems.append(problem)
            continue
        yield t, seq.label_map.to_train(raw, path)


def _ids_checked_by_ssc(label_map: Any, proto: Any) -> bool:
    """Whether the SSC metric's compiled pass can check a prediction's ids for ``label_map`` (the sequence's):
    it maps raw ids with the protocol's label map, so the two must map every id alike."""
    from occbench.labels import load_label_map

    own = load_label_map(proto.label_map)
    return own.num_classes == label_map.num_classes and np.array_equal(np.asarray(own.lut), np.asarray(label_map.lut))


def _update_from_files(
    ssc: Any,
    seq: Any,
    t: int,
    files: list[Path],
    next_files: list[Path] | None = None,
    maps: Any = None,
    validate: bool = False,
    fused: bool = False,
) -> str | None:
    """Add scan ``t`` of ``seq`` to ``ssc`` (and to the world map state ``maps``) from its files
    (``_frame_files(seq, t)``): ground truth ``.label`` + packed ``.invalid`` and the prediction (a plain
    ``.label`` is memory-mapped; a ``.label.gz`` is decompressed). Same counts as
    scoring ``seq.prediction(t)`` against ``frame.ground_truth()``; errors name the prediction file. The files are read
    here and the metric is handed their arrays: raw label ids and the ``.invalid`` bits as stored. Once the files of
    ``t`` are read, ``next_files`` are prefetched (a page-cache hint: the disk reads them while ``t`` is counted).
    ``validate``: a prediction that does not decode or holds unpredictable raw ids is not counted; the problem is
    returned instead of raised. ``fused`` (with ``validate``; see :func:`_ids_checked_by_ssc`): the ids are checked
    by the SSC metric's counting pass (:meth:`~occbench.metrics.SSCMetric.add_checked_raw`), not by a pass of
    their own; a frame it refuses is checked by that pass, for the message."""
    from occbench.io.pagecache import prefetch
    from occbench.io.voxels import map_label, read_bits_packed
    from occbench.metrics.frame import FrameArrays

    gt_label, gt_invalid, *found = files
    gt = map_label(gt_label)
    inv = read_bits_packed(gt_invalid)
    path = found[0] if found else None
    try:
        pred = map_label(path) if path is not None and path.name.endswith(".label") else seq.prediction_raw(t)
    except FormatError as e:
        if not validate:
            raise
        return str(e)
    if next_files:
        prefetch(*next_files)
    arrays = FrameArrays(gt, inv, labels="raw", name=str(path))
    if not (validate and fused and ssc.add_checked_raw(pred, arrays)):
        if validate:  # not added: the ids are checked here (a problem is returned), or the frame is malformed
            from occbench.evaluation.submission import prediction_id_problem

            problem = prediction_id_problem(pred, path, seq.label_map)
            if problem:
                return problem
        ssc.update_frame(pred, arrays)  # raises on a malformed frame, naming what is wrong
    if maps is not None:
        maps.add(pred, gt, seq.poses[t], inv, raw=True)
    return None


def evaluate(config: EvalConfig) -> Results:
    """Run a method over a split, or score a submission, as ``config`` says (:class:`EvalConfig
    <occbench.evaluation.config.EvalConfig>`), and return the results (:class:`occbench.results.Results`; the
    document is described in ``docs/results-schema.md``).

    A partial run (``config.max_frames`` or ``config.frames`` short of the split) says so in the header
    (``partial``; such a file is refused by ``occbench leaderboard``). With ``config.validate``, a submission whose
    names and sizes were checked (:meth:`Submission.check_names
    <occbench.evaluation.specs.Submission.check_names>`) has every file's content checked as it is scored, and
    :class:`occbench.evaluation.submission.InvalidSubmission` lists the problems instead of a result."""
    import tempfile

    from occbench.fingerprint import dataset_fingerprint
    from occbench.metrics import PROTOCOLS
    from occbench.metrics.registry import load_metric

    if not isinstance(config, EvalConfig):
        raise TypeError(f"evaluate: expected an EvalConfig, found {type(config).__name__}")
    dspec, mspec, submission = config.scored, config.method, config.submission
    extras, executor, max_frames, frames = config.metrics, config.executor, config.max_frames, config.frames
    t0 = time.time()
    ds = dspec.open()
    proto = PROTOCOLS[ds.protocol]
    n_frames = sum(len(t) for _, t in split_targets(ds, max_frames, frames))
    world = _world_map_metrics(extras)
    workers = useful_workers(config.workers, n_frames, mspec is None, bool(world), executor)
    jobs = plan_jobs(ds, workers, max_frames, 1 if mspec is None else 2, frames)
    total = sum(len(j.targets) for j in jobs)
    scored: dict[str, list[int]] = {}
    for j in jobs:
        scored.setdefault(j.sequence, []).extend(j.targets)
    fingerprint = dataset_fingerprint(ds, scored, config.fingerprint_content)
    in_split = sum(len(t) for _, t in split_targets(ds))
    label = mspec.name if mspec else "predictions"
    local = executor == "local"  # Ray workers may run elsewhere: their states travel whole
    with tempfile.TemporaryDirectory(prefix="occbench-evaluate-") as spill:
        states = run_planned(
            run_job,
            jobs,
            lambda job, tick: (
                JobRequest(
                    dspec,
                    mspec,
                    job,
                    extras,
                    config.save_predictions_dir,
                    config.save_compressed,
                    spill if local else None,
                    config.validate,
                ),
                tick,
            ),
            desc=f"evaluate {label}",
            workers=workers,
            executor=executor,
            address=config.address,
            writes=config.save_predictions_dir,
            threads=mspec is None,  # scoring files: compiled kernels that release the GIL; methods: processes
        )
        problems = [p for s in states for p in s.problems]  # in job order: sequence and scan order
        if problems:
            from occbench.evaluation.submission import InvalidSubmission, ValidationReport

            raise InvalidSubmission(ValidationReport(checked=total, problems=problems))
        # merge in a fixed order (integers: order-independent anyway)
        states.sort(key=lambda s: (s.sequence, s.frames))
        ssc = load_metric("ssc", proto)
        for s in states:
            ssc.merge(s.ssc)
        metrics: dict[str, Any] = {"ssc": ssc.compute(), "distance": ssc.distance_curve()}
        if world:
            metrics.update(_map_metrics(states, proto, extras))  # reads what the jobs spilled
        for name in states[0].metrics if states else ():
            merged = states[0].metrics[name]
            for s in states[1:]:
                merged.merge(s.metrics[name])
            metrics[name] = merged.compute()
    method_cfg = (
        mspec.load().config(onboard=ds.describe().get("onboard"))
        if mspec
        else {"name": "submitted-predictions", "options": {}}
    )
    if mspec is not None:
        from occbench.methods.registry import method_source

        method_cfg = {**method_cfg, "source": method_source(mspec.name)}
    header: dict[str, Any] = {
        "occbench_version": __version__,
        "dataset": {**ds.describe(), "fingerprint": fingerprint},
        "method": method_cfg,
        "frames": total,
        "workers": workers,
        "executor": executor,
        "command": config.command,
        "environment": {"python": sys.version.split()[0], "platform": platform.platform(), "numpy": np.__version__},
        "wall_time_s": round(time.time() - t0, 3),
    }
    if submission is not None:  # a folder of any name: no onboard model
        header["dataset"]["onboard"] = None
        header["predictions"] = str(submission.folder)
    if total < in_split:
        header["partial"] = {"frames": total, "frames_in_split": in_split, "max_frames": max_frames}
        if frames is not None:
            from occbench.evaluation.jobs import format_scans

            header["partial"]["scans"] = format_scans(frames)
    return Results.build(proto, metrics=metrics, header=header)


def useful_workers(workers: int, frames: int, scoring_files: bool, maps: bool, executor: str = "local") -> int:
    """How many of the ``workers`` asked for are worth their cost. Scoring submitted predictions runs its jobs on
    threads of this process (nothing to start but a second opening of the dataset), but each job split off makes
    world map tiles straddle two jobs (sealed and reduced at the end). Timed on trees of 40, 64, 128 and 815
    frames (``benchmarks/bench_evaluate_cli.py``), two threads gain from 40 frames with the city map and
    consistency (the counting thread of one job is the longest part there) and from 64-128 without: a thread per
    20 or per 64 frames. Methods (whose cost is unknown here) and Ray get what was asked for."""
    if not scoring_files or executor != "local":
        return workers
    per_worker = 20 if maps else 64
    return max(1, min(workers, frames // per_worker))


def _map_metrics(states: list[JobResult], proto: Any, extras: tuple[str, ...]) -> dict[str, Any]:
    """The world-map metrics among ``extras`` (:func:`_world_map_metrics`) from the jobs' world map states, merged
    per sequence (each has its own world frame) and scored by each metric's ``scores_of_maps``."""
    from occbench.metrics.registry import metric_class

    by_seq: dict[str, Any] = {}
    for s in states:
        if s.sequence in by_seq:
            by_seq[s.sequence].merge(s.maps)
        else:
            by_seq[s.sequence] = s.maps
    sums = {k: v.reduce() for k, v in sorted(by_seq.items())}
    frames = {k: v.n_frames for k, v in by_seq.items()}
    out: dict[str, Any] = {}
    for name in _world_map_metrics(extras):
        out.update(metric_class(name).scores_of_maps(sums, frames, proto))
    return out

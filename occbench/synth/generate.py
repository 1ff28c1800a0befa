"""Write occbench-mini in the exact SemanticKITTI v1.1 layout (see docs/mini.md).

Work is split into jobs: ``(sequence, "gt")`` writes poses, calib, times, ``.bin``, ``.label``, ``.invalid``,
``.occluded``; ``(sequence, "models", t0, t1)`` writes the predictions of every onboard model for scans
t0..t1-1. Each job depends only on the configuration, so jobs run in any order, in parallel processes, and
give the same bytes. A finished job leaves a marker under ``<root>/.synth/``; a rerun with the same
configuration skips finished jobs (resume). ``mini.json`` is written last: a root without it is not a
generated data set.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from occbench.errors import FormatError, MissingDataError
from occbench.geometry import ORIGIN, VOXEL_SIZE
from occbench.grid import KITTI
from occbench.io.atomic import atomic_write_text
from occbench.io.files import read_json_document
from occbench.io.folder_lock import writes_exclusively
from occbench.io.kitti import lidar_to_cam0_poses, read_calib, read_poses, write_poses, write_times
from occbench.io.predictions import PredictionStore
from occbench.io.voxels import write_bits, write_label
from occbench.synth import world as Wmod
from occbench.synth._calib import CALIB_08_TXT
from occbench.synth.columns import BIG, BIG_N, columns
from occbench.synth.config import MiniConfig
from occbench.synth.onboard import MODEL_IDS, MODELS, FieldCache, predict
from occbench.synth.sensor import Caster, Visibility, unpack_columns

NAME = "occbench-mini"
FORMAT_VERSION = 1
TEST_GT = "test-ground-truth"
PREDICTIONS = "predictions"
MARKERS = ".synth"

G0 = (300, 172)  # index of the SSC grid inside the big volume
# the SSC grid's x and y extents (metres, LiDAR frame)
_GRID_XY = (
    (float(ORIGIN[0]), float(ORIGIN[0] + VOXEL_SIZE * KITTI.shape[0])),
    (float(ORIGIN[1]), float(ORIGIN[1] + VOXEL_SIZE * KITTI.shape[1])),
)


def seq_entropy(cfg: MiniConfig, seq: str) -> list[int]:
    return [int(cfg.seed), 7_130_111, int(seq)]


@lru_cache(maxsize=1)
def _big_visibility() -> Visibility:
    """Line of sight within 60 m of a viewpoint (``.invalid``: union over the viewpoints of a frame)."""
    return Visibility.build(BIG[0], BIG[1], max_range=60.0)


@lru_cache(maxsize=1)
def _grid_visibility() -> Visibility:
    """Line of sight inside the SSC grid (given to the simulated onboard models)."""
    return Visibility.build(*_GRID_XY, max_range=80.0)


@lru_cache(maxsize=2)
def _dense_caster(azimuths: int) -> Caster:
    """Labelled scans: HDL-64E beams over the forward half (the grid), for the ``.bin`` input occupancy."""
    return Caster.build(*_GRID_XY, azimuths // 2, az_range=(-90.0, 90.0))


_WORLD_CACHE: dict[tuple, Wmod.World] = {}
MOVING_VEHICLE_KEEP_12 = 0.3  # generator 1.2: share of the moving cars and motorcyclists kept (docs/mini.md)
STOPPED_SHARE_12 = 0.8  # generator 1.2: share of the remaining agents that stand still (docs/mini.md)


def follow_poses_of(cfg: MiniConfig, seq: str) -> np.ndarray | None:
    """The real LiDAR poses (N, 4, 4) that sequence ``seq`` follows (``cfg.follow_poses``), or None.

    Raises :class:`MissingDataError` for a missing ``poses.txt`` or ``calib.txt`` (it must sit next to the
    poses) and :class:`FormatError` for a malformed file or one with fewer poses than the sequence has scans.
    """
    if seq not in cfg.follow_poses:
        return None
    p = Path(cfg.follow_poses[seq]).expanduser()
    hint = (
        "follow_poses maps a sequence to a real KITTI odometry poses.txt (one 3x4 camera-0 pose, 12 floats, "
        "per line) with its calib.txt in the same folder"
    )
    if not p.is_file():
        raise MissingDataError(p, f"poses file of follow_poses[{seq!r}]", hint)
    c = p.parent / "calib.txt"
    if not c.is_file():
        raise MissingDataError(c, f"calib.txt next to the poses file of follow_poses[{seq!r}] ({p})", hint)
    poses = read_poses(p, read_calib(c))
    if len(poses) < cfg.scans[seq]:
        raise FormatError(
            p,
            f"at least {cfg.scans[seq]} poses (one per scan of sequence {seq})",
            f"{len(poses)} line{'s' if len(poses) != 1 else ''}",
        )
    return poses


def get_world(cfg: MiniConfig, seq: str) -> Wmod.World:
    key = (cfg.digest(), seq)
    if key not in _WORLD_CACHE:
        _WORLD_CACHE.clear()
        poses = follow_poses_of(cfg, seq)
        keep = 1.0 if cfg.generator == "1.1" else MOVING_VEHICLE_KEEP_12
        stopped = 0.0 if cfg.generator == "1.1" else STOPPED_SHARE_12
        _WORLD_CACHE[key] = Wmod.build_world(seq_entropy(cfg, seq), cfg.scans[seq], cfg.lookahead, poses, keep, stopped)
    return _WORLD_CACHE[key]


def split_of(cfg: MiniConfig, seq: str) -> str:
    for k, v in cfg.splits.items():
        if seq in v:
            return k
    raise KeyError(seq)


def grid_codes(world: Wmod.World, t: int) -> np.ndarray:
    cols = columns()
    return world.gather(tuple(world.poses[t]), cols["GU"], cols["GV"]).reshape(KITTI.shape)


def big_codes(world: Wmod.World, t: int) -> np.ndarray:
    cols = columns()
    return world.gather(tuple(world.poses[t]), cols["U"], cols["V"]).reshape(BIG_N, BIG_N, 32)


def line_of_sight(codes: np.ndarray) -> np.ndarray:
    """Voxels of the grid in line of sight of the scan's sensor (what the onboard models can see)."""
    return _grid_visibility().visible(codes > 0).reshape(KITTI.shape)


def _to_frame(world: Wmod.World, src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Big-volume column indices (in scan ``dst``'s frame) of the grid columns of scan ``src``; validity."""
    cols = columns()
    xs, ys, yaws = world.poses[src]
    xd, yd, yawd = world.poses[dst]
    cs, ss = Wmod._c(float(yaws)), Wmod._s(float(yaws))
    cd, sd = Wmod._c(float(yawd)), Wmod._s(float(yawd))
    xw = (cs * cols["GU"] - ss * cols["GV"]) + float(xs) - float(xd)
    yw = (ss * cols["GU"] + cs * cols["GV"]) + float(ys) - float(yd)
    u = cd * xw + sd * yw
    v = -sd * xw + cd * yw
    iu = np.floor((u - BIG[0][0]) / 0.2).astype(np.int64)
    iv = np.floor((v - BIG[1][0]) / 0.2).astype(np.int64)
    ok = (iu >= 0) & (iu < BIG_N) & (iv >= 0) & (iv < BIG_N)
    return np.where(ok, iu * BIG_N + iv, 0), ok


def write_sequence_meta(root: Path, world: Wmod.World, n: int) -> None:
    seq_dir = root
    seq_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(seq_dir / "calib.txt", CALIB_08_TXT)
    calib = read_calib(seq_dir / "calib.txt")
    lidar = np.stack([world.lidar_pose(t) for t in range(n)])
    write_poses(seq_dir / "poses.txt", lidar_to_cam0_poses(lidar, calib))
    write_times(seq_dir / "times.txt", np.round(np.arange(n) * 0.1, 6))


def run_gt_job(root: Path, cfg: MiniConfig, seq: str, tick: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Ground truth of one sequence. Returns per-class voxel counts of its labelled frames (valid voxels)."""
    world = get_world(cfg, seq)
    n = cfg.scans[seq]
    seq_dir = root / "sequences" / seq
    write_sequence_meta(seq_dir, world, n)
    gt_dir = (root / TEST_GT / "sequences" / seq if split_of(cfg, seq) == "test" else seq_dir) / "voxels"
    vis_big = _big_visibility()
    dense = _dense_caster(cfg.azimuths)
    labelled = list(range(0, n, cfg.label_every))
    pending: dict[int, dict[str, np.ndarray]] = {}
    counts = np.zeros(256, np.int64)
    stats = {"invalid": 0, "occluded": 0, "bin": 0, "frames": 0}
    last_view = labelled[-1] + cfg.lookahead if labelled else -1
    done_ticks = 0
    g = (slice(G0[0], G0[0] + KITTI.shape[0]), slice(G0[1], G0[1] + KITTI.shape[1]))
    for t in range(0, last_view + 1):
        is_label = t < n and t % cfg.label_every == 0
        is_view = (t % cfg.view_every == 0 and any(i <= t <= i + cfg.lookahead for i in labelled)) or is_label
        if not is_view:
            continue
        undo = world.stamp_agents(t)
        try:
            vol = big_codes(world, t)
        finally:
            world.unstamp(undo)
        occ = vol > 0
        vis = vis_big.visible(occ).reshape(BIG_N, BIG_N, 32)
        packed = np.packbits(vis.reshape(-1, 32), axis=1, bitorder="little")
        if is_label:
            codes = vol[g].copy()
            _, dhit = dense.cast(np.ascontiguousarray(occ[g]))
            # what the scan's own beams hit is observed too (real labels come from those points)
            own = vis[g] | dhit.reshape(KITTI.shape)
            pending[t] = {
                "codes": codes,
                "obs": np.packbits(own.reshape(-1, 32), axis=1, bitorder="little"),
                "occluded": ~own,
                "bin": dhit.reshape(KITTI.shape),
            }
        for i, p in pending.items():
            if i == t:
                continue
            flat, ok = _to_frame(world, i, t)
            got = packed[flat]
            got[~ok] = 0
            p["obs"] |= got
        for i in [i for i in pending if t >= min(i + cfg.lookahead, last_view)]:
            p = pending.pop(i)
            name = f"{i:06d}"
            obs = unpack_columns(p["obs"]).reshape(KITTI.shape)
            invalid = ~obs
            codes = np.where(obs, p["codes"], 0).astype(np.uint8)
            raw = Wmod.CODE_TO_RAW[codes]
            write_bits(seq_dir / "voxels" / f"{name}.bin", p["bin"])
            write_label(gt_dir / f"{name}.label", raw)
            write_bits(gt_dir / f"{name}.invalid", invalid)
            write_bits(gt_dir / f"{name}.occluded", p["occluded"])
            counts += np.bincount(Wmod.CODE_TO_TRAIN[codes][obs], minlength=256)
            stats["invalid"] += int(invalid.sum())
            stats["occluded"] += int(p["occluded"].sum())
            stats["bin"] += int(p["bin"].sum())
            stats["frames"] += 1
            if tick and n > done_ticks:
                step = min(
                    cfg.label_every, n - done_ticks
                )  # the scans up to the next labelled one, within the sequence
                tick(step)
                done_ticks += step
    if tick and n - done_ticks > 0:
        tick(n - done_ticks)
    return {"counts": counts[:20].tolist(), "ignored": int(counts[255]), **stats}


def onboard_predictor(
    cfg: MiniConfig, seq: str, model: str, world: Wmod.World, overrides: dict | None = None
) -> Callable[[int, np.ndarray, np.ndarray], np.ndarray]:
    """``predict(t, truth, vis)`` of simulated onboard model ``model`` on sequence ``seq``: the generator's error
    model (1.1: :func:`occbench.synth.onboard.predict`; 1.2: :mod:`occbench.synth.onboard12`; 1.3: the same with
    the calibrated parameters :data:`occbench.synth.onboard12.MODELS13`), with ``overrides`` of its parameters
    (calibration)."""
    if cfg.generator == "1.1":
        import dataclasses

        spec = dataclasses.replace(MODELS[model], **(overrides or {}))
        fields = FieldCache([int(cfg.seed), 7_130_112, int(seq), MODEL_IDS[model]], spec, world=world)
        return lambda t, truth, vis: predict(spec, truth, vis, fields.at(t))
    from occbench.synth.onboard12 import MODELS13, Predictor12

    if cfg.generator == "1.3":
        overrides = {**MODELS13[model], **(overrides or {})}
    return Predictor12(int(cfg.seed), seq, model, world, overrides)


def run_model_job(
    root: Path,
    cfg: MiniConfig,
    seq: str,
    models: tuple[str, ...],
    t0: int = 0,
    t1: int | None = None,
    tick: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Predictions of the simulated onboard models for scans ``t0 .. t1-1`` of a sequence (every scan).

    The scene and the line of sight of a scan are computed once and shared by the models.
    """
    world = get_world(cfg, seq)
    t1 = cfg.scans[seq] if t1 is None else t1
    stores = {m: PredictionStore(root / PREDICTIONS / m, compressed=True) for m in models}
    predictors = {m: onboard_predictor(cfg, seq, m, world) for m in models}
    lut = inv_lut()
    for t in range(t0, t1):
        undo = world.stamp_agents(t)
        try:
            codes = grid_codes(world, t)
        finally:
            world.unstamp(undo)
        truth = Wmod.CODE_TO_TRAIN[codes]
        vis = line_of_sight(codes)
        for m in models:
            stores[m].write(seq, t, lut[predictors[m](t, truth, vis)])
        if tick:
            tick(1)
    return {}


@lru_cache(maxsize=1)
def inv_lut() -> np.ndarray:
    from occbench.labels import load_label_map

    return np.asarray(load_label_map("semantickitti").inv_lut)


MODEL_CHUNK = 50  # scans per prediction job (small enough that two workers finish together)

Job = tuple[str, str, int, int, tuple[str, ...]]  # (sequence, "gt" or "models", t0, t1, onboard models)


def _marker(root: Path, seq: str, what: str, t0: int = 0, t1: int = 0) -> Path:
    """Marker of a finished piece: a sequence's ground truth (``what="gt"``) or one model's scans t0..t1-1."""
    return root / MARKERS / (f"{seq}-gt.json" if what == "gt" else f"{seq}-{what}-{t0:06d}-{t1:06d}.json")


def _jobs(root: Path, cfg: MiniConfig, want: dict[str, list[str]]) -> list[Job]:
    """What is missing under ``root`` of the splits in ``want`` (split -> onboard models): per sequence its
    ground truth, and per chunk of scans one job for the models whose predictions are not there."""
    out: list[Job] = []
    for seq in sorted(cfg.scans):
        models = want.get(split_of(cfg, seq))
        if models is None:
            continue
        n = cfg.scans[seq]
        if not _marker(root, seq, "gt").is_file():
            out.append((seq, "gt", 0, n, ()))
        for t0 in range(0, n, MODEL_CHUNK):
            t1 = min(n, t0 + MODEL_CHUNK)
            todo = tuple(m for m in models if not _marker(root, seq, m, t0, t1).is_file())
            if todo:
                out.append((seq, "models", t0, t1, todo))
    return out


def _job_name(job: Job) -> str:
    seq, role, t0, t1, models = job
    return f"{seq}-gt" if role == "gt" else f"{seq}-{'+'.join(models)}-{t0:06d}-{t1:06d}"


# Progress counts work, not scans: a scan of the ground-truth job costs about 1 unit, a scan of a prediction job
# 1 unit (the scene and its line of sight) plus 2 a model (measured on the default mini, docs/performance.md),
# so that the bar's rate, and its time estimate, stay about constant while both kinds of job run
def _cost(job: Job) -> int:
    """Progress units of a job."""
    return (job[3] - job[2]) * _units(job)


def _units(job: Job) -> int:
    return 1 if job[1] == "gt" else 1 + 2 * len(job[4])


def _run(root: Path, cfg: MiniConfig, job: Job, tick: Callable[[int], None] | None = None) -> dict[str, Any]:
    seq, role, t0, t1, models = job
    w = _units(job)
    ticks = (lambda n: tick(n * w)) if tick is not None else None  # noqa: E731
    if role == "gt":
        out = run_gt_job(root, cfg, seq, ticks)
        atomic_write_text(_marker(root, seq, "gt"), json.dumps(out))
        return out
    out = run_model_job(root, cfg, seq, models, t0, t1, ticks)
    for m in models:
        atomic_write_text(_marker(root, seq, m, t0, t1), json.dumps(out))
    return out


def _job(
    root: str, cfg: MiniConfig, job: Job, tick: Callable[[int], None] | None = None
) -> tuple[Job, dict[str, Any], float]:
    t0 = time.perf_counter()
    out = _run(Path(root), cfg, job, tick)
    return job, out, time.perf_counter() - t0


def _default_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        n = os.cpu_count() or 1
    return max(1, min(2, n))


def _checked(what: str, given: Iterable[str] | None, known: list[str]) -> list[str]:
    if given is None:
        return list(known)
    out = list(dict.fromkeys(given))
    unknown = [s for s in out if s not in known]
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; this occbench-mini configuration has {known}")
    return out


@writes_exclusively  # one generator per root; removes temporary files of an interrupted run
def generate_mini(
    root: str | Path,
    cfg: MiniConfig,
    progress: bool = True,
    workers: int | None = None,
    overwrite: bool = False,
    splits: Iterable[str] | None = None,
    onboard: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Generate occbench-mini under ``root`` and return its manifest (also written as ``mini.json``, last).

    ``splits``, ``onboard``: generate only these splits (default: all), with the predictions of only these of
    the configuration's onboard models (default: all). A root that already holds part of the same
    configuration keeps it and gains what is missing (the manifest lists what is there); generation goes job by
    job, so an interrupted one resumes. Every file is a function of the configuration and its sequence alone:
    the same bytes whatever is generated together, in whatever order. An existing data set of the same
    configuration that has everything asked for is returned as is. A different configuration raises
    ``FileExistsError`` unless ``overwrite=True`` (which deletes the generated folders first).
    """
    from occbench.io.mini_manifest import MANIFEST, generated, read_manifest, write_manifest

    root = Path(root)
    wanted = _checked("split", splits, list(cfg.splits))
    models = _checked("onboard model", onboard, list(cfg.onboard))
    for seq in sorted(cfg.follow_poses):  # fail early, in this process, on a missing or malformed poses file
        if split_of(cfg, seq) in wanted:
            follow_poses_of(cfg, seq)
    manifest_path = root / MANIFEST
    cfg_path = root / MARKERS / "config.json"
    ident = cfg.identity()
    have: dict[str, list[str]] = {}
    if manifest_path.is_file() and not overwrite:
        m = read_manifest(root)
        if m.get("config") != ident:
            raise FileExistsError(
                f"{root} holds an occbench-mini generated with another configuration; "
                "use overwrite=True (--overwrite) or another --output"
            )
        have = generated(m)
        if all(s in have and set(models) <= set(have[s]) for s in wanted):
            return m
    if (
        cfg_path.is_file()
        and _read_record(cfg_path, "the configuration of a started generation") != ident
        and not overwrite
    ):
        raise FileExistsError(
            f"{root} holds a partial generation with another configuration; "
            "use overwrite=True (--overwrite) or another --output"
        )
    if overwrite or (
        cfg_path.is_file() and _read_record(cfg_path, "the configuration of a started generation") != ident
    ):
        for sub in ("sequences", TEST_GT, PREDICTIONS, MARKERS):
            shutil.rmtree(root / sub, ignore_errors=True)
        if manifest_path.exists():
            manifest_path.unlink()
        have = {}
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg_path, json.dumps(ident, sort_keys=True))
    want = {
        s: [m for m in cfg.onboard if m in set(have.get(s, [])) | (set(models) if s in wanted else set())]
        for s in cfg.splits
        if s in have or s in wanted
    }
    todo = _jobs(root, cfg, want)
    workers = _default_workers() if workers is None else max(1, workers)
    t_start = time.perf_counter()
    what = [s for s in want if want[s] != have.get(s)]
    timings = _run_jobs(root, cfg, todo, workers, progress, what)
    manifest = _manifest(root, cfg, want)
    # timings vary from run to run: kept out of mini.json (which is byte-identical for a configuration)
    atomic_write_text(
        root / MARKERS / "timings.json",
        json.dumps({"seconds": round(time.perf_counter() - t_start, 1), "jobs": timings}, indent=1),
    )
    write_manifest(root, manifest)
    return manifest


def _run_jobs(
    root: Path, cfg: MiniConfig, todo: list[Job], workers: int, progress: bool, splits: list[str]
) -> dict[str, float]:
    """Run the jobs ``todo`` (inline or in ``workers`` processes); their outputs land in their markers. The
    progress bar moves scan by scan in every job (from worker processes through a queue)."""
    from occbench.runtime.progress import is_quiet
    from occbench.runtime.ticks import FrameTicks

    bar = None
    if progress and todo and not is_quiet():
        from tqdm.auto import tqdm

        bar = tqdm(
            total=sum(_cost(j) for j in todo),
            desc=f"generating {NAME} {'+'.join(splits)}",
            dynamic_ncols=True,
            bar_format="{l_bar}{bar}| [{elapsed}<{remaining}]",
        )
    inline = workers == 1 or len(todo) <= 1
    timings: dict[str, float] = {}
    try:
        with FrameTicks(bar.update if bar is not None else None, "local", inline=inline) as ticks:
            if inline:
                for job in todo:
                    t0 = time.perf_counter()
                    _run(root, cfg, job, ticks.tick)
                    timings[_job_name(job)] = round(time.perf_counter() - t0, 2)
            else:
                # spawned, not forked: a worker holds the generator, not the memory of the command that started it;
                # and it does not re-run the caller's script (no main guard needed around a loader that generates)
                from occbench.runtime.processes import worker_context
                from occbench.runtime.supervision import helper_init, stop_pool

                ex = ProcessPoolExecutor(
                    max_workers=workers, mp_context=worker_context(), initializer=helper_init, initargs=(os.getpid(),)
                )
                try:
                    futs = [ex.submit(_job, str(root), cfg, job, ticks.tick) for job in todo]
                    for f in as_completed(futs):
                        job, _, dt = f.result()
                        timings[_job_name(job)] = round(dt, 2)
                except BaseException:  # interrupt or failed job: queued jobs cancelled, workers ended now
                    stop_pool(ex)
                    raise
                ex.shutdown(wait=True)
    finally:
        if bar is not None:
            bar.close()
    return timings


def _read_record(path: Path, what: str) -> Any:
    """A JSON record the generator wrote (bounded reader; a damaged one is an error naming it and the way out)."""
    try:
        return read_json_document(path, what)
    except FormatError as e:
        raise FormatError(path, f"{what}; delete it (or the folder) to generate again", e.found) from None


def _manifest(root: Path, cfg: MiniConfig, want: dict[str, list[str]]) -> dict[str, Any]:
    """``mini.json`` of the generated splits ``want`` (split -> onboard models with predictions; ground-truth
    statistics from the job markers): with every split and model, byte for byte the manifest of a complete
    generation; otherwise it also says what is there (``generated``)."""
    counts = {split: np.zeros(20, np.int64) for split in want}
    gt_stats: dict[str, dict[str, Any]] = {}
    for seq in sorted(cfg.scans):
        if split_of(cfg, seq) not in counts:
            continue
        path = _marker(root, seq, "gt")
        r = _read_record(path, "the ground-truth record of a generated sequence")
        keys = ("frames", "invalid", "occluded", "bin", "ignored")
        if not (
            isinstance(r, dict)
            and isinstance(r.get("counts"), list)
            and len(r["counts"]) == 20
            and all(type(c) is int for c in r["counts"])
            and all(type(r.get(k)) is int for k in keys)
        ):
            raise FormatError(
                path,
                "the ground-truth record of a generated sequence (20 class counts and "
                f"{', '.join(keys)}); delete it to generate sequence {seq} again",
                "something else",
            )
        counts[split_of(cfg, seq)] += np.asarray(r["counts"], np.int64)
        gt_stats[seq] = {k: r[k] for k in keys}
    manifest: dict[str, Any] = {
        "name": NAME,
        "format_version": FORMAT_VERSION,
        "generator_version": cfg.generator,
        "seed": cfg.seed,
        "size": cfg.size,
        "splits": {k: list(v) for k, v in cfg.splits.items()},
        "label_every": cfg.label_every,
        "onboard": list(cfg.onboard),
        "scans": {s: int(cfg.scans[s]) for s in sorted(cfg.scans)},
        "test_ground_truth": TEST_GT,
        "predictions": PREDICTIONS,
        "synthetic": True,
        "invalid_viewpoints": {"lookahead_scans": cfg.lookahead, "every": cfg.view_every},
        "voxel_counts": {k: v.tolist() for k, v in counts.items()},
        "gt_stats": gt_stats,
        "config": cfg.identity(),
    }
    if want != {s: list(cfg.onboard) for s in cfg.splits}:
        manifest["generated"] = want
    return manifest

"""Metric speed: occbench's one-pass SSC metric vs the two common reference patterns, on the same frames.

Run: ``pytest benchmarks/bench_metrics.py --benchmark-only`` (add ``--benchmark-columns=min,median,mean``).
The split groups time a split written to disk, read from the page cache and (``cold``) from the disk, each
file dropped from the page cache before every round (``occbench.io.pagecache.evict``, checked with mincore).
All timings are single-threaded (numpy, or the compiled numba kernel). Frames:
``occbench.metrics.testing.synthetic_frame`` (SemanticKITTI-like structure, ~6 % occupied) and, as a worst case for the
skip-empty trick, uniformly random frames (30 % ignore, random classes everywhere, like the anchors micro-benchmark).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from occbench.geometry import RANGE_SLICES
from occbench.io.pagecache import evict, prefetch, resident_fraction
from occbench.io.voxels import map_label, read_bits, read_invalid_as_stored, read_label, write_bits, write_label
from occbench.labels import load_label_map
from occbench.metrics import CityMapMetric, FrameArrays, SSCMetric, _kernel
from occbench.metrics.testing import synthetic_frame

_kernel.warm_up()  # compile (or load the cached machine code) outside the timed calls

C = 20
SHAPE = (256, 256, 32)
# frames of the synthetic split written to disk (about 8.4 MB each); OCCBENCH_BENCH_SPLIT_FRAMES=815 gives the
# size of SemanticKITTI val (6.8 GB on disk)
N_SPLIT = int(os.environ.get("OCCBENCH_BENCH_SPLIT_FRAMES", "24"))
SPLIT_ROUNDS = 20 if N_SPLIT <= 100 else 5  # rounds of the fast split benchmarks (3 for the official pattern)


@pytest.fixture(scope="module")
def frame():
    return synthetic_frame(np.random.default_rng(0))


@pytest.fixture(scope="module")
def dense_frame():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, C, SHAPE).astype(np.uint8)
    gt[rng.random(SHAPE) < 0.3] = 255
    pred = rng.integers(0, C, SHAPE).astype(np.uint8)
    return pred, gt, None


# ---------------------------------------------------------------- reference patterns (re-implemented)
def monoscene_sscmetrics_one_range(pred: np.ndarray, gt: np.ndarray) -> tuple:
    """MonoScene/VoxFormer/SSCBench SSCMetrics.add_batch pattern: copy, 255 -> 0, per-class np.where x3."""
    predict, target = pred.reshape(1, -1).copy(), gt.reshape(1, -1).copy()
    predict[target == 255] = 0
    target[target == 255] = 0
    y_true, y_pred = target[0], predict[0]
    b_true, b_pred = y_true > 0, y_pred > 0
    ctp = np.array(np.where(b_true & b_pred)).size
    cfp = np.array(np.where(~b_true & b_pred)).size
    cfn = np.array(np.where(b_true & ~b_pred)).size
    tp, fp, fn = np.zeros(C, np.int64), np.zeros(C, np.int64), np.zeros(C, np.int64)
    for j in range(C):
        tp[j] += np.array(np.where(np.logical_and(y_true == j, y_pred == j))).size
        fp[j] += np.array(np.where(np.logical_and(y_true != j, y_pred == j))).size
        fn[j] += np.array(np.where(np.logical_and(y_true == j, y_pred != j))).size
    return ctp, cfp, cfn, tp, fp, fn


def bincount_one_range(
    pred: np.ndarray, gt: np.ndarray, inv: np.ndarray | None, sl=(slice(None), slice(None))
) -> np.ndarray:
    """nuScenes / mmdet3d / Occ3D pattern: mask, then one np.bincount(C * gt + pred)."""
    p, g = pred[sl], gt[sl]
    mask = g != 255
    if inv is not None:
        mask &= ~inv[sl]
    return np.bincount(C * g[mask].astype(np.int64) + p[mask], minlength=C * C).reshape(C, C)


def bincount_three_ranges(pred, gt, inv):
    return [bincount_one_range(pred, gt, inv, RANGE_SLICES[r]) for r in (12.8, 25.6, 51.2)]


# ---------------------------------------------------------------- one frame
@pytest.mark.benchmark(group="one frame (SemanticKITTI-like), in memory")
def test_occbench_three_ranges_one_pass(benchmark, frame):
    pred, gt, inv = frame
    m = SSCMetric()
    benchmark(m.update_frame, pred, FrameArrays(gt, inv))
    benchmark.extra_info["what"] = "all 3 ranges + 1.6 m distance bins, train ids + invalid mask"


@pytest.mark.benchmark(group="one frame (SemanticKITTI-like), in memory")
def test_occbench_three_ranges_numpy_kernel(benchmark, frame):
    """The pure-numpy kernel (fallback without numba; the raw-id path of older versions)."""
    pred, gt, inv = frame
    m = SSCMetric()
    m.use_compiled = False
    benchmark(m.update_frame, pred, FrameArrays(gt, inv))


@pytest.mark.benchmark(group="one frame (SemanticKITTI-like), in memory")
def test_occbench_three_ranges_invalid_folded(benchmark, frame):
    pred, gt, inv = frame
    g = gt.copy()
    g[inv] = 255
    m = SSCMetric()
    benchmark(m.update_frame, pred, FrameArrays(g))


@pytest.mark.benchmark(group="one frame (SemanticKITTI-like), in memory")
def test_occbench_three_ranges_raw_ids_packed_invalid(benchmark, frame):
    pred, gt, inv = frame
    lm = load_label_map("semantickitti")
    pr, gr = lm.inv_lut[pred], lm.inv_lut[np.where(gt == 255, 0, gt)]
    gr[gt == 255] = 52
    packed = np.packbits(inv.reshape(-1))
    m = SSCMetric()
    benchmark(m.update_frame, pr, FrameArrays(gr, packed, labels="raw"))


@pytest.mark.benchmark(group="one frame (SemanticKITTI-like), in memory")
def test_reference_bincount_one_range(benchmark, frame):
    benchmark(bincount_one_range, *frame)


@pytest.mark.benchmark(group="one frame (SemanticKITTI-like), in memory")
def test_reference_bincount_three_ranges(benchmark, frame):
    benchmark(bincount_three_ranges, *frame)


@pytest.mark.benchmark(group="one frame (SemanticKITTI-like), in memory")
def test_reference_monoscene_loop_one_range(benchmark, frame):
    pred, gt, inv = frame
    g = gt.copy()
    g[inv] = 255
    benchmark.pedantic(monoscene_sscmetrics_one_range, args=(pred, g), rounds=5, iterations=1)


@pytest.mark.benchmark(group="one frame, dense random worst case")
def test_occbench_dense_random(benchmark, dense_frame):
    pred, gt, _ = dense_frame
    m = SSCMetric()
    benchmark(m.update_frame, pred, FrameArrays(gt))


@pytest.mark.benchmark(group="one frame, dense random worst case")
def test_reference_bincount_one_range_dense(benchmark, dense_frame):
    benchmark(bincount_one_range, *dense_frame)


# ---------------------------------------------------------------- a split from disk
@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    """N_SPLIT frames in the official layout: voxels/NNNNNN.{label,invalid} + predictions/NNNNNN.label."""
    root = tmp_path_factory.mktemp("split")
    lm = load_label_map("semantickitti")
    (root / "voxels").mkdir()
    (root / "predictions").mkdir()
    rng = np.random.default_rng(5)
    base = [synthetic_frame(rng) for _ in range(4)]
    for f in range(N_SPLIT):
        pred, gt, inv = base[f % 4]
        pred = np.roll(pred, f, axis=1)  # distinct files
        gt_raw = lm.inv_lut[np.where(gt == 255, 0, gt)].astype(np.uint16)
        gt_raw[gt == 255] = 52
        write_label(root / "voxels" / f"{f:06d}.label", np.roll(gt_raw, f, axis=1))
        write_bits(root / "voxels" / f"{f:06d}.invalid", np.roll(inv, f, axis=1))
        write_label(root / "predictions" / f"{f:06d}.label", lm.inv_lut[pred].astype(np.uint16))
    return root


def _files(root: Path, f: int) -> tuple[Path, Path, Path]:
    return (
        root / "predictions" / f"{f:06d}.label",
        root / "voxels" / f"{f:06d}.label",
        root / "voxels" / f"{f:06d}.invalid",
    )


def _read_only(root: Path, prefetch_next: bool = False) -> int:
    """Reading the three files of every frame with ``np.fromfile``; with ``prefetch_next`` the next frame's
    files are prefetched (the fairest reading time on a cold cache)."""
    n = 0
    for f in range(N_SPLIT):
        pred, gt, inv = _files(root, f)
        a = np.fromfile(gt, np.uint16)
        b = np.fromfile(inv, np.uint8)
        c = np.fromfile(pred, np.uint16)
        if prefetch_next and f + 1 < N_SPLIT:
            prefetch(*_files(root, f + 1))
        n += a.size + b.size + c.size
    return n


def _occbench_split(root: Path, prefetch_next: bool = True) -> dict:
    """occbench end to end, the public files path: map both .label files, packed .invalid, one kernel pass;
    the next frame's files are prefetched (what ``occbench evaluate --predictions`` does)."""
    m = SSCMetric()
    for f in range(N_SPLIT):
        nxt = _files(root, f + 1) if (prefetch_next and f + 1 < N_SPLIT) else ()
        pred_label, gt_label, gt_invalid = _files(root, f)
        p, g, inv = map_label(pred_label), map_label(gt_label), read_invalid_as_stored(gt_invalid)
        if nxt:
            prefetch(*nxt)
        m.update_frame(p, FrameArrays(g, inv, labels="raw", name=f"{f:06d}"))
    return m.compute()


def _occbench_split_fromfile(root: Path) -> dict:
    """occbench from arrays read with np.fromfile (copies), packed .invalid bytes passed as they are."""
    m = SSCMetric()
    for f in range(N_SPLIT):
        gt = read_label(root / "voxels" / f"{f:06d}.label")
        packed = np.fromfile(root / "voxels" / f"{f:06d}.invalid", np.uint8)
        pred = read_label(root / "predictions" / f"{f:06d}.label")
        m.update_frame(pred, FrameArrays(gt, packed, labels="raw", name=f"{f:06d}"))
    return m.compute()


def _official_pattern_split(root: Path) -> np.ndarray:
    """evaluate_completion.py pattern with bincount instead of np.add.at: read, LUT both, mask, count."""
    lut = load_label_map("semantickitti").lut.astype(np.int64)
    conf = np.zeros((C, C), np.int64)
    for f in range(N_SPLIT):
        pred = lut[np.fromfile(root / "predictions" / f"{f:06d}.label", np.uint16)]
        target = lut[np.fromfile(root / "voxels" / f"{f:06d}.label", np.uint16)]
        inv = np.unpackbits(np.fromfile(root / "voxels" / f"{f:06d}.invalid", np.uint8))
        mask = (target != 255) & (inv != 1)
        conf += np.bincount(pred[mask] * C + target[mask], minlength=C * C).reshape(C, C)
    return conf


@pytest.mark.benchmark(group=f"split of {N_SPLIT} frames from disk (page cache)")
def test_split_read_files_only(benchmark, split_dir):
    _read_only(split_dir)  # warm the page cache
    benchmark.pedantic(_read_only, args=(split_dir,), rounds=SPLIT_ROUNDS, iterations=1)


@pytest.mark.benchmark(group=f"split of {N_SPLIT} frames from disk (page cache)")
def test_split_occbench_end_to_end(benchmark, split_dir):
    res = benchmark.pedantic(_occbench_split, args=(split_dir,), rounds=SPLIT_ROUNDS, iterations=1)
    assert 0 < res["51.2"]["miou"] < 1


@pytest.mark.benchmark(group=f"split of {N_SPLIT} frames from disk (page cache)")
def test_split_occbench_from_fromfile_arrays(benchmark, split_dir):
    res = benchmark.pedantic(_occbench_split_fromfile, args=(split_dir,), rounds=SPLIT_ROUNDS, iterations=1)
    assert 0 < res["51.2"]["miou"] < 1


@pytest.mark.benchmark(group=f"split of {N_SPLIT} frames from disk (page cache)")
def test_split_official_pattern_bincount_one_range(benchmark, split_dir):
    conf = benchmark.pedantic(_official_pattern_split, args=(split_dir,), rounds=3, iterations=1)
    assert conf.sum() > 0


def test_split_occbench_equals_official_pattern(split_dir):
    """Not a benchmark: the fast path and the official pattern agree on the split."""
    m = SSCMetric()
    for f in range(N_SPLIT):
        m.update_frame(
            read_label(split_dir / "predictions" / f"{f:06d}.label"),
            FrameArrays(
                read_label(split_dir / "voxels" / f"{f:06d}.label"),
                read_bits(split_dir / "voxels" / f"{f:06d}.invalid"),
                labels="raw",
            ),
        )
    np.testing.assert_array_equal(m.confusion(51.2), _official_pattern_split(split_dir))
    assert _occbench_split(split_dir) == _occbench_split_fromfile(split_dir) == m.compute()


# ---------------------------------------------------------------- city map
@pytest.mark.benchmark(group="city map, one frame")
def test_city_map_update_frame(benchmark, frame):
    pred, gt, inv = frame
    city = CityMapMetric()
    T = np.eye(4)
    T[:3, 3] = (100.0, 50.0, 1.0)
    benchmark.pedantic(city.update_frame, args=(pred, FrameArrays(gt, inv, pose=T)), rounds=5, iterations=1)
    benchmark.extra_info["bytes_per_distinct_entry"] = 12


# ---------------------------------------------------------------- the same split, read from the disk
COLD = f"split of {N_SPLIT} frames from disk (cold: evicted from the page cache before each round)"


def _evicted(root: Path):
    """pytest-benchmark setup: drop every file of the split from the page cache, and check that it worked."""
    files = [p for f in range(N_SPLIT) for p in _files(root, f)]
    evict(*files)
    left = [resident_fraction(p) for p in files]
    if any(r is None for r in left):
        pytest.skip("this OS cannot report page-cache residency (mincore), so a cold read cannot be checked")
    if max(left) > 0.01:
        pytest.skip(f"the page cache kept {max(left):.0%} of a file after POSIX_FADV_DONTNEED: no cold reads here")
    return (root,), {}


@pytest.mark.benchmark(group=COLD)
def test_cold_read_files_only(benchmark, split_dir):
    benchmark.pedantic(_read_only, setup=lambda: _evicted(split_dir), rounds=SPLIT_ROUNDS // 2, iterations=1)


@pytest.mark.benchmark(group=COLD)
def test_cold_read_files_only_prefetch_next(benchmark, split_dir):
    benchmark.pedantic(
        lambda root: _read_only(root, prefetch_next=True),
        setup=lambda: _evicted(split_dir),
        rounds=SPLIT_ROUNDS // 2,
        iterations=1,
    )


@pytest.mark.benchmark(group=COLD)
def test_cold_occbench_end_to_end(benchmark, split_dir):
    res = benchmark.pedantic(_occbench_split, setup=lambda: _evicted(split_dir), rounds=SPLIT_ROUNDS // 2, iterations=1)
    assert res == _occbench_split(split_dir)


@pytest.mark.benchmark(group=COLD)
def test_cold_occbench_end_to_end_no_prefetch(benchmark, split_dir):
    res = benchmark.pedantic(
        lambda root: _occbench_split(root, prefetch_next=False),
        setup=lambda: _evicted(split_dir),
        rounds=SPLIT_ROUNDS // 2,
        iterations=1,
    )
    assert res == _occbench_split(split_dir)


@pytest.mark.benchmark(group=COLD)
def test_cold_official_pattern_bincount_one_range(benchmark, split_dir):
    conf = benchmark.pedantic(_official_pattern_split, setup=lambda: _evicted(split_dir), rounds=3, iterations=1)
    assert conf.sum() > 0

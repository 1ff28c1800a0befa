"""Throughput of region-centric voting: reference vs fast engine, n = 5, 10, 25.

Data: occbench-mini val (sequence 08 of ``$OCCBENCH_MINI`` if set: predictions of
``voxformer-sim``), else a synthetic static scene seen from real sequence-08 poses (scans 1000..).
Targets: every 5th scan (the labelled frames). Reported: targets per second (``extra_info``), and
the projected time for real sequence 08 (815 labelled targets of 4071 scans).

    pytest benchmarks/bench_voting.py --benchmark-only --benchmark-columns=mean,rounds -s
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from baselines.voting import VotingConfig, VotingEngine, default_device, vote_frame_reference
from baselines.voting.synthetic import SyntheticSequence
from occbench.io.kitti import read_calib, read_poses

SEQ08 = Path(__file__).resolve().parents[2] / "shared" / "data" / "kitti-odometry" / "sequences" / "08"
SEQ08_TARGETS = 815  # labelled (every 5th) scans of the 4071 of real sequence 08
STEP, N_TARGETS = 5, 4


def _data(num: int):
    mini = os.environ.get("OCCBENCH_MINI")
    if mini:
        from occbench.io.predictions import PredictionStore
        root = Path(mini)
        d = root / "sequences" / "08"
        calib = read_calib(d / "calib.txt")
        poses = read_poses(d / "poses.txt", calib)
        store = PredictionStore(root / "predictions" / "voxformer-sim")
        from occbench.labels import load_label_map
        lm = load_label_map()
        cache: dict[int, np.ndarray] = {}

        def frames(i: int) -> np.ndarray:
            if i not in cache:
                cache[i] = lm.to_train(store.read("08", i)).astype(np.uint8).reshape(256, 256, 32)
            return cache[i]
        return "mini-08", calib, poses, frames
    calib = read_calib(SEQ08 / "calib.txt")
    poses = read_poses(SEQ08 / "poses.txt", calib)[1000:1000 + num]
    seq = SyntheticSequence(poses, seed=1)
    grids = [seq.noisy(i) for i in range(num)]
    return "synthetic-08-poses", calib, poses, grids.__getitem__


@pytest.fixture(scope="module")
def data():
    return _data(2 * 25 + STEP * N_TARGETS + 1)


def _targets(n: int, num: int) -> list[int]:
    t0 = min(n, num - 1)
    return [t for t in range(t0, num, STEP)][:N_TARGETS]


def _report(benchmark, name, n, ntargets):
    fps = ntargets / benchmark.stats.stats.mean
    benchmark.extra_info.update(targets_per_s=fps, projected_seq08_s=SEQ08_TARGETS / fps, device=str(default_device()))
    print(f"\n[{name} n={n}] {fps:.3f} targets/s -> projected real seq 08 ({SEQ08_TARGETS} targets): "
          f"{SEQ08_TARGETS / fps / 60:.1f} min on {default_device()}")


@pytest.mark.parametrize("n", [5, 10, 25])
def test_bench_fast(benchmark, data, n):
    """Sliding window over N_TARGETS consecutive labelled targets (includes the first, full build)."""
    name, calib, poses, frames = data
    from baselines.voting import SensorWeights
    cfg = VotingConfig(n=n, weights=SensorWeights(kind="camera"))
    targets = _targets(n, len(poses))

    def run():
        for _ in VotingEngine(frames, poses, calib, cfg).run(targets):
            pass
    benchmark.pedantic(run, rounds=1, iterations=1)
    _report(benchmark, f"fast {name}", n, len(targets))


@pytest.mark.parametrize("n", [5, 25])
def test_bench_reference(benchmark, data, n):
    name, calib, poses, frames = data
    from baselines.voting import SensorWeights
    cfg = VotingConfig(n=n, weights=SensorWeights(kind="camera"))
    t = _targets(n, len(poses))[0]
    benchmark.pedantic(lambda: vote_frame_reference(t, frames, poses, calib, cfg), rounds=1, iterations=1)
    _report(benchmark, f"reference {name}", n, 1)

"""benchmarks/citymap_memory.py stays runnable: its world-consistent frame generator and its report on a few frames."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from occbench.testing import straight_poses

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "citymap_memory.py"


def _load():
    spec = importlib.util.spec_from_file_location("citymap_memory", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generator_frames_are_world_consistent_and_realistic():
    mod = _load()
    poses = straight_poses(100, speed=1.0)  # the road goes on ahead of the frames
    scene = mod.WorldScene(poses)
    pred, gt, inv = scene.frame(0)
    assert pred.shape == gt.shape == inv.shape == (256, 256, 32) and pred.dtype == gt.dtype == np.uint8
    assert 0.1 < inv.mean() < 0.5
    occ = (gt != 0) & (gt != 255) & ~inv
    assert 0.02 < occ.mean() < 0.15
    assert (gt == 255).any() and set(np.unique(gt)) <= set(range(20)) | {255}
    assert pred.max() < 20 and (pred != gt)[occ].mean() > 0.1
    # the car moved 1 m = 5 voxels along x: the ground truth of frame 1 is that of frame 0 shifted (world-fixed scene)
    _, gt1, _ = scene.frame(1)
    a, b = np.where(gt[5:] == 255, 0, gt[5:]), np.where(gt1[:-5] == 255, 0, gt1[:-5])
    assert (a == b).mean() > 0.99


def test_run_reports_checkpoints():
    mod = _load()
    for plan in (True, False):
        rows = mod.run(
            straight_poses(100, speed=2.0), checkpoints=[2, 3], max_minutes=10, log=lambda *a: None, plan=plan
        )
        assert [r["frames"] for r in rows] == [2, 3]
        last = rows[-1]
        assert last["map_voxels"] > 1_000_000 and last["planned"] is plan
        assert last["peak_rss_mb"] >= last["peak_rss_mb_adding"] > 0 and last["state_mb_before_compute"] > 0
        assert last["tracemalloc_peak_mb_adding"] > 0 and last["tracemalloc_peak_mb_compute"] > 0
        assert last["city_map"]["n_frames"] == 3 and 0 < last["city_map"]["miou"] < 1
        # the same frames give the same map, planned or not
        if plan:
            planned = last["city_map"]
        else:
            assert last["city_map"] == planned

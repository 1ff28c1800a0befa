"""GPU check of the exact voting engine: CUDA (torch backend) labels == CPU (numba) labels, and their speeds.

    python benchmarks/check_voting_cuda.py [--root MINI_ROOT] [--n 25] [--targets 8] [--json OUT.json]

Data: sequence 08 of occbench-mini val when ``--root`` (or ``$OCCBENCH_MINI``, or the generated default mini) is
found, else the synthetic scene of ``occbench_baselines.voting.synthetic`` along real-like poses generated here (a
gentle curve with pitch and roll). For every sensor weighting (none, camera, lidar) the same targets are voted on the
CPU (numba) and on CUDA (torch), read with the three empty policies, and compared voxel for voxel; the votes too for the
first target. Exit status 1 if any label differs. Without CUDA it says so and exits 2 (nothing was checked).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from occbench_baselines.voting import EMPTY_POLICIES, SensorWeights, VotingConfig, VotingEngine
from occbench_baselines.voting.synthetic import SyntheticSequence


def curve_poses(num: int) -> np.ndarray:
    """A car turning left at 1 m per scan, with a little pitch and roll (LiDAR poses)."""
    out = np.stack([np.eye(4)] * num)
    for i in range(num):
        yaw, pitch, roll = 0.02 * i, 0.01 * np.sin(i / 7), 0.008 * np.cos(i / 5)
        cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
        out[i, :3, :3] = (
            np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
            @ np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
            @ np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
        )
        out[i, :3, 3] = [np.sin(yaw) / 0.02 if i else 0.0, (1 - np.cos(yaw)) / 0.02 if i else 0.0, 0.05 * np.sin(i / 9)]
    return out


def cached(read):
    grids: dict[int, np.ndarray] = {}

    def frames(i: int) -> np.ndarray:
        if i not in grids:
            grids[i] = read(i)
        return grids[i]

    return frames


def load(root: str | None, num: int):
    from occbench.synth.cache import default_mini_root

    r = (
        Path(root)
        if root
        else Path(os.environ["OCCBENCH_MINI"])
        if os.environ.get("OCCBENCH_MINI")
        else default_mini_root()
    )
    if (r / "mini.json").is_file():
        from occbench.datasets import OccbenchMini

        seq = OccbenchMini(r, split="val", onboard="voxformer-sim", generate=False, progress=False)["08"]
        return f"mini val 08 ({r})", seq.poses[:num], seq.calib, tuple(seq.image_size), cached(seq.prediction)
    from occbench.io.kitti import Calibration

    P2 = np.array([[707.0, 0, 604, 0], [0, 707, 180, 0], [0, 0, 1, 0]])
    Tr = np.eye(4)
    Tr[:3, :3] = [[0, -1, 0], [0, 0, -1], [1, 0, 0]]
    poses = curve_poses(num)
    syn = SyntheticSequence(poses, seed=4)
    return (
        "synthetic scene, curved poses",
        poses,
        Calibration(P={k: P2 for k in ("P0", "P1", "P2", "P3")}, Tr=Tr),
        (1220, 370),
        cached(syn.noisy),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=None)
    ap.add_argument("--n", type=int, default=25)
    ap.add_argument("--targets", type=int, default=8)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing checked")
        return 2
    torch.set_num_threads(1)
    num = 2 * a.n + 5 * a.targets + 1
    name, poses, calib, image_size, frames = load(a.root, num)
    targets = list(range(a.n, min(len(poses), a.n + 5 * a.targets), 5))
    report = {"data": name, "n": a.n, "targets": targets, "device": torch.cuda.get_device_name(0), "runs": []}
    bad = 0
    for kind in ("none", "camera", "lidar"):
        cfg = VotingConfig(n=a.n, weights=SensorWeights(kind=kind, image_size=image_size))
        res = {}
        for dev in ("cpu", "cuda"):
            eng = VotingEngine(frames, poses, calib, cfg, device=dev)
            eng.vote(targets[0])  # warm-up and first window
            t0 = time.perf_counter()
            res[dev] = {t: {p: eng.vote(t, empty_policy=p) for p in EMPTY_POLICIES} for t in targets}
            if dev == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            res[dev]["rate"] = len(targets) / dt
            res[dev]["votes"] = eng.votes(targets[0]).cpu().numpy()
        diff = sum(int((res["cpu"][t][p] != res["cuda"][t][p]).sum()) for t in targets for p in EMPTY_POLICIES)
        vdiff = int((res["cpu"]["votes"] != res["cuda"]["votes"]).sum())
        bad += diff + vdiff
        row = {
            "weights": kind,
            "differing_labels": diff,
            "differing_votes": vdiff,
            "cpu_targets_per_s": res["cpu"]["rate"],
            "cuda_targets_per_s": res["cuda"]["rate"],
        }
        report["runs"].append(row)
        print(row, flush=True)
    print("IDENTICAL" if bad == 0 else f"DIFFERENT: {bad} voxels/votes differ")
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

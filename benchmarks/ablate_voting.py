"""Ablation of region-centric voting on occbench-mini val (sequence 08): empty policy, sensor weights, n.

    python benchmarks/ablate_voting.py <mini_root> [--model voxformer-sim] [--max-targets 20]

Prints mIoU (classes 1..19, GT ``.invalid`` voxels ignored) at the 12.8 / 25.6 / 51.2 m crops for the
onboard predictions and each configuration (engine, every 5th scan as target). NOT YET RUN: the
defaults in ``VotingConfig``/``SensorWeights`` are the paper's appendix D.2 values and ``empty_policy='vote'``
until this script's table is written into docs/baselines/voting.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from baselines.voting import SensorWeights, VotingConfig, VotingEngine
from occbench.geometry import RANGE_SLICES
from occbench.io.kitti import read_calib, read_poses
from occbench.io.predictions import PredictionStore
from occbench.io.voxels import read_bits, read_label
from occbench.labels import IGNORE, load_label_map

CONFIGS: dict[str, VotingConfig] = {
    "avgfusion-vote-n25": VotingConfig(n=25, empty_policy="vote"),
    "avgfusion-occupancy-n25": VotingConfig(n=25, empty_policy="occupancy"),
    "avgfusion-ignore-n25": VotingConfig(n=25, empty_policy="ignore"),
    "camera-vote-n25": VotingConfig(n=25, weights=SensorWeights(kind="camera")),
    "camera-occupancy-n25": VotingConfig(n=25, empty_policy="occupancy", weights=SensorWeights(kind="camera")),
    "camera-vote-n10": VotingConfig(n=10, weights=SensorWeights(kind="camera")),
    "camera-vote-n5": VotingConfig(n=5, weights=SensorWeights(kind="camera")),
    "camera-wmed0.3-n25": VotingConfig(n=25, weights=SensorWeights(kind="camera", w_med=0.3)),
    "lidar-vote-n25": VotingConfig(n=25, weights=SensorWeights(kind="lidar")),
}


class Score:
    def __init__(self, C: int = 20):
        self.C = C
        self.cm = {r: np.zeros((C, C), np.int64) for r in RANGE_SLICES}

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        for r, (sx, sy) in RANGE_SLICES.items():
            g, p = gt[sx, sy].reshape(-1), pred[sx, sy].reshape(-1)
            ok = g != IGNORE
            self.cm[r] += np.bincount(g[ok].astype(np.int64) * self.C + p[ok], minlength=self.C**2).reshape(self.C, self.C)

    def miou(self) -> dict[float, float]:
        out = {}
        for r, cm in self.cm.items():
            tp = np.diag(cm)[1:]
            union = cm.sum(0)[1:] + cm.sum(1)[1:] - tp
            out[r] = float(np.mean(tp[union > 0] / union[union > 0]))
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("--model", default="voxformer-sim")
    ap.add_argument("--seq", default="08")
    ap.add_argument("--max-targets", type=int, default=0)
    a = ap.parse_args()
    d = a.root / "sequences" / a.seq
    calib = read_calib(d / "calib.txt")
    poses = read_poses(d / "poses.txt", calib)
    lm = load_label_map()
    store = PredictionStore(a.root / "predictions" / a.model)
    cache: dict[int, np.ndarray] = {}

    def frames(i: int) -> np.ndarray:
        if i not in cache:
            cache[i] = lm.to_train(store.read(a.seq, i)).astype(np.uint8).reshape(256, 256, 32)
        return cache[i]

    targets = sorted(int(p.name[:6]) for p in (d / "voxels").glob("*.label"))
    if a.max_targets:
        targets = targets[: a.max_targets]

    def gt(t: int) -> np.ndarray:
        g = lm.to_train(read_label(d / "voxels" / f"{t:06d}.label")).astype(np.uint8).reshape(256, 256, 32)
        inv = d / "voxels" / f"{t:06d}.invalid"
        if inv.is_file():
            g = np.where(read_bits(inv).reshape(g.shape), IGNORE, g).astype(np.uint8)
        return g

    onboard = Score()
    for t in targets:
        onboard.add(frames(t), gt(t))
    rows = [("onboard", onboard.miou())]
    for name, cfg in CONFIGS.items():
        s = Score()
        for t, out in VotingEngine(frames, poses, calib, cfg).run(targets):
            s.add(out, gt(t))
        rows.append((name, s.miou()))
        print(name, rows[-1][1], flush=True)
    print("| config | 12.8 m | 25.6 m | 51.2 m |\n|---|---|---|---|")
    for name, m in rows:
        print(f"| {name} | " + " | ".join(f"{100 * m[r]:.2f}" for r in sorted(m)) + " |")


if __name__ == "__main__":
    main()

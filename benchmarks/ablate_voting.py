"""Ablation of region-centric voting on occbench-mini val (sequence 08): empty policy, sensor weights, n.

    python benchmarks/ablate_voting.py ROOT --model voxformer-sim [--max-targets 0] [--runs all|main]

``ROOT``: an occbench-mini with the val split and onboard predictions (e.g. the default mini, or
``generate_mini(ROOT, MiniConfig(scans={"08": 300}, splits={"train": (), "val": ("08",), "test": ()}))``,
whose sequence 08 is the default mini's). Targets: the labelled scans (every 5th). Scores: the official
``SSCMetric`` (semantickitti-ssc protocol: ``.invalid`` and ignore voxels not evaluated), IoU / mIoU in %
at the 12.8 / 25.6 / 51.2 m crops, for the onboard predictions and each configuration. One engine run
per (weights, n) is read with the three empty policies (the map does not depend on the policy).
Prints a markdown table (and ``--json PATH`` writes the rows).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from baselines.voting import EMPTY_POLICIES, SensorWeights, VotingConfig, VotingEngine
from occbench.metrics import SSCMetric

RANGES = ("12.8", "25.6", "51.2")


def runs(kind: str, sensor: str) -> list[tuple[str, SensorWeights, int]]:
    """(label, weights, n): every weight kind at n = 5, 10, 25, and weight variants of the model's sensor at n = 25."""
    out = [(k, SensorWeights(kind=k), n) for k in ("none", "camera", "lidar") for n in (5, 10, 25)]  # type: ignore[arg-type]
    if kind == "main":
        return out
    if sensor == "camera":
        out += [("camera w_med=0.3 w_low=0.03", SensorWeights(kind="camera", w_med=0.3, w_low=0.03), 25),
                ("camera w_med=0.5 w_low=0.1", SensorWeights(kind="camera", w_med=0.5, w_low=0.1), 25),
                ("camera w_med=0.03 w_low=0.001", SensorWeights(kind="camera", w_med=0.03, w_low=0.001), 25)]
    else:
        out += [("lidar w_max=1", SensorWeights(kind="lidar", w_max=1.0), 25),
                ("lidar w_max=100", SensorWeights(kind="lidar", w_max=100.0), 25),
                ("lidar max_range=25.6", SensorWeights(kind="lidar", max_range=25.6), 25)]
    return out


def scores(m: SSCMetric) -> dict[str, tuple[float, float]]:
    c = m.compute()
    return {r: (100 * c[r]["iou"], 100 * c[r]["miou"]) for r in RANGES}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("--model", default="voxformer-sim")
    ap.add_argument("--seq", default="08")
    ap.add_argument("--max-targets", type=int, default=0)
    ap.add_argument("--runs", default="all", choices=("all", "main"))
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    from occbench.datasets import OccbenchMini

    ds = OccbenchMini(a.root, split="val", onboard=a.model, generate=False, progress=False)
    seq = ds[a.seq]
    sensor = seq.sensor or "camera"
    targets = list(seq.labelled_frames)
    if a.max_targets:
        targets = targets[: a.max_targets]
    t0 = time.perf_counter()
    gts = {t: seq.frame(t).ground_truth() for t in targets}
    preds: dict[int, np.ndarray] = {}

    def frames(i: int) -> np.ndarray:
        if i not in preds:
            preds[i] = seq.prediction(i)
        return preds[i]

    onboard = SSCMetric()
    for t in targets:
        onboard.update(frames(t), gts[t])
    rows = [{"config": "onboard", "policy": "-", "n": 0, "scores": scores(onboard)}]
    print(f"{a.model} ({sensor}): {len(targets)} targets of {seq.num_scans} scans; data {time.perf_counter() - t0:.0f} s", flush=True)
    for label, sw, n in runs(a.runs, sensor):
        sw = replace(sw, image_size=tuple(seq.image_size))
        cfg = VotingConfig(n=n, empty_policy="vote", weights=sw, num_classes=seq.label_map.num_classes)
        eng = VotingEngine(frames, seq.poses, seq.calib, cfg, device="cpu")
        ms = {p: SSCMetric() for p in EMPTY_POLICIES}
        t1 = time.perf_counter()
        for t in targets:
            for p in EMPTY_POLICIES:
                ms[p].update(eng.vote(t, empty_policy=p), gts[t])
        for p in EMPTY_POLICIES:
            rows.append({"config": label, "policy": p, "n": n, "scores": scores(ms[p])})
        print(f"{label} n={n}: {time.perf_counter() - t1:.0f} s; " + "; ".join(
            f"{p} mIoU {ms[p].compute()['51.2']['miou'] * 100:.2f}" for p in EMPTY_POLICIES), flush=True)
    print(f"\n{a.model}: IoU / mIoU (%) on mini val {a.seq}, {len(targets)} targets\n")
    print("| weights | n | empty policy | " + " | ".join(f"{r} m IoU / mIoU" for r in RANGES) + " |")
    print("|---|---|---|" + "---|" * len(RANGES))
    for r in rows:
        s = r["scores"]
        print(f"| {r['config']} | {r['n'] or '-'} | {r['policy']} | " + " | ".join(f"{s[k][0]:.2f} / {s[k][1]:.2f}" for k in RANGES) + " |")
    if a.json:
        a.json.write_text(json.dumps({"model": a.model, "targets": targets, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

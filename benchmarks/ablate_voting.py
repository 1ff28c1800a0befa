"""Voting configurations scored on one split of occbench-mini: empty policy, sensor weights, LiDAR range, n.

    python benchmarks/ablate_voting.py [ROOT] --split train --model voxformer-sim --runs select --json OUT.json

``ROOT``: an occbench-mini (default: the default mini, ``$OCCBENCH_MINI`` or ``$OCCBENCH_DATA/mini-v<version>``).
``--split train`` (sequences 00 and 01) is where the defaults of the voting methods are **selected** (``--runs select``;
protocol in ``docs/baselines/voting.md``); the val split is only for reporting. Targets: every labelled scan of every
sequence of the split. Scores: the official ``SSCMetric`` (``.invalid`` and ignore voxels not evaluated), IoU / mIoU in
% at the 12.8 / 25.6 / 51.2 m crops, for the onboard predictions and each configuration. One engine run per (weights, n)
is read with the three empty policies (the votes do not depend on the policy). Prints a markdown table; ``--json PATH``
writes the rows.

``--predictions-root`` votes on other grids than the onboard predictions (e.g. stage-1 outputs); their scores are then
the "onboard" row. Run sets: ``select`` (the selection: unweighted = Average Fusion, the model's own sensor
weights, and LiDAR weights with ``max_range`` 25.6 / 38.4 / 51.2 / 76.8 m, all at the paper's n = 25), ``main`` (every
weight kind at n = 5, 10, 25), ``all`` (``main`` plus weight-value variants at n = 25), ``ranges`` (LiDAR weights at
``--max-ranges`` only).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from occbench.metrics import FrameArrays, SSCMetric
from occbench_baselines.voting import EMPTY_POLICIES, SensorWeights, VotingConfig, make_engine

RANGES = ("12.8", "25.6", "51.2")
MAX_RANGES = (25.6, 38.4, 51.2, 76.8)


def runs(kind: str, sensor: str, max_ranges: tuple[float, ...] = MAX_RANGES) -> list[tuple[str, SensorWeights, int]]:
    """(label, weights, n) of a run set (``sensor``: the onboard model's modality)."""
    if kind == "select":
        out = [("none", SensorWeights(kind="none"), 25)]
        if sensor == "camera":
            out.append(("camera", SensorWeights(kind="camera"), 25))
        out += [(f"lidar max_range={r}", SensorWeights(kind="lidar", max_range=r), 25) for r in max_ranges]
        return out
    if kind == "ranges":
        return [(f"lidar max_range={r}", SensorWeights(kind="lidar", max_range=r), 25) for r in max_ranges]
    out = [(k, SensorWeights(kind=k), n) for k in ("none", "camera", "lidar") for n in (5, 10, 25)]
    if kind == "main":
        return out
    if sensor == "camera":
        out += [
            ("camera w_med=0.3 w_low=0.03", SensorWeights(kind="camera", w_med=0.3, w_low=0.03), 25),
            ("camera w_med=0.5 w_low=0.1", SensorWeights(kind="camera", w_med=0.5, w_low=0.1), 25),
            ("camera w_med=0.03 w_low=0.001", SensorWeights(kind="camera", w_med=0.03, w_low=0.001), 25),
        ]
    else:
        out += [
            ("lidar w_max=1", SensorWeights(kind="lidar", w_max=1.0), 25),
            ("lidar w_max=100", SensorWeights(kind="lidar", w_max=100.0), 25),
            ("lidar max_range=25.6", SensorWeights(kind="lidar", max_range=25.6), 25),
        ]
    return out


def scores(m: SSCMetric) -> dict[str, tuple[float, float]]:
    c = m.compute()
    return {r: (100 * c[r]["iou"], 100 * c[r]["miou"]) for r in RANGES}


class Split:
    """The sequences of one split: labelled targets and their ground truth (predictions are read by the engines)."""

    def __init__(
        self,
        root: Path,
        split: str,
        model: str,
        max_targets: int = 0,
        predictions_root: Path | None = None,
        exclude: tuple[str, ...] = (),
    ):
        from occbench.datasets import OccbenchMini

        self.ds = OccbenchMini(
            root, split=split, onboard=model, predictions_root=predictions_root, generate=False, progress=False
        )
        self.seqs = [s for s in self.ds.sequences if s.name not in exclude]
        self.targets = {s.name: list(s.labelled_frames)[: max_targets or None] for s in self.seqs}
        self.gts = {s.name: {t: s.frame(t).ground_truth() for t in self.targets[s.name]} for s in self.seqs}

    def frames(self, seq):
        return seq.prediction

    @property
    def num_targets(self) -> int:
        return sum(len(v) for v in self.targets.values())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path, nargs="?", default=None)
    ap.add_argument("--split", default="train", help="split to score (default train: selection never looks at val)")
    ap.add_argument("--model", default="voxformer-sim")
    ap.add_argument("--engine", default="exact", help="voting engine (exact, lattice, reference)")
    ap.add_argument("--max-targets", type=int, default=0, help="per sequence (0: all labelled scans)")
    ap.add_argument("--runs", default="select", choices=("select", "ranges", "main", "all"))
    ap.add_argument(
        "--max-ranges",
        type=float,
        nargs="+",
        default=list(MAX_RANGES),
        help="LiDAR max_range candidates of the run sets 'select' and 'ranges'",
    )
    ap.add_argument(
        "--exclude-sequence",
        action="append",
        default=[],
        metavar="XX",
        help="leave this sequence out (repeatable), e.g. 01, the held-out sequence of the generator calibration",
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--predictions-root",
        type=Path,
        default=None,
        help="vote on other grids: a folder holding <model>/sequences/XX/predictions (e.g. stage-1 outputs "
        "written by `occbench refine --targets all`)",
    )
    a = ap.parse_args()
    if a.root is None:
        from occbench.synth.cache import default_mini_root

        a.root = default_mini_root()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = Split(a.root, a.split, a.model, a.max_targets, a.predictions_root, tuple(a.exclude_sequence))
    sensor = data.seqs[0].sensor or "camera"
    onboard = SSCMetric()
    for s in data.seqs:
        read = data.frames(s)
        for t in data.targets[s.name]:
            onboard.update_frame(read(t), FrameArrays(data.gts[s.name][t]))
    rows = [{"config": "onboard", "policy": "-", "n": 0, "scores": scores(onboard)}]
    print(
        f"{a.model} ({sensor}), {a.split} {[s.name for s in data.seqs]}: {data.num_targets} targets; "
        f"data {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    for label, sw, n in runs(a.runs, sensor, tuple(a.max_ranges)):
        ms = {p: SSCMetric() for p in EMPTY_POLICIES}
        t1 = time.perf_counter()
        for s in data.seqs:
            cfg = VotingConfig(
                n=n,
                empty_policy="vote",
                weights=replace(sw, image_size=tuple(s.image_size)),
                num_classes=s.label_map.num_classes,
            )
            eng = make_engine(a.engine, data.frames(s), s.poses, s.calib, cfg, device="cpu")
            for t in data.targets[s.name]:
                for p in EMPTY_POLICIES:
                    ms[p].update_frame(eng.vote(t, empty_policy=p), FrameArrays(data.gts[s.name][t]))
        for p in EMPTY_POLICIES:
            rows.append({"config": label, "policy": p, "n": n, "scores": scores(ms[p])})
        print(
            f"{label} n={n}: {time.perf_counter() - t1:.0f} s; "
            + "; ".join(
                f"{p} IoU/mIoU {ms[p].compute()['51.2']['iou'] * 100:.2f}/{ms[p].compute()['51.2']['miou'] * 100:.2f}"
                for p in EMPTY_POLICIES
            ),
            flush=True,
        )
    print(f"\n{a.model}: IoU / mIoU (%) on mini {a.split}, {data.num_targets} targets, engine {a.engine}\n")
    print("| weights | n | empty policy | " + " | ".join(f"{r} m IoU / mIoU" for r in RANGES) + " |")
    print("|---|---|---|" + "---|" * len(RANGES))
    for r in rows:
        s = r["scores"]
        print(
            f"| {r['config']} | {r['n'] or '-'} | {r['policy']} | "
            + " | ".join(f"{s[k][0]:.2f} / {s[k][1]:.2f}" for k in RANGES)
            + " |"
        )
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "model": a.model,
                    "split": a.split,
                    "engine": a.engine,
                    "votes_on": "onboard predictions" if a.predictions_root is None else "refined grids",
                    "targets": data.targets,
                    "rows": rows,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()

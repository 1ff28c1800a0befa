"""Measure the simulated onboard models against Table 2 of the OccFiner paper (IoU / mIoU by range).

    python -m occbench.synth.calibrate --root ROOT [--model voxformer-sim] [--split val]

reads a generated mini root (ground truth + predictions) and prints, per model, completion IoU and mIoU at
12.8 / 25.6 / 51.2 m with the official rules (global confusion matrix over all frames, mask =
``label != 255 & invalid == 0``, mIoU over classes 1..19) next to the paper's numbers of the real model.

``--in-memory`` recomputes the predictions of the labelled frames from the world instead of reading them
(same bytes; used while tuning :data:`occbench.synth.onboard.MODELS`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from occbench.io.predictions import PredictionStore
from occbench.io.voxels import read_bits, read_label
from occbench.labels import load_label_map

RANGES = {12.8: (slice(0, 64), slice(96, 160)), 25.6: (slice(0, 128), slice(64, 192)), 51.2: (slice(0, 256), slice(0, 256))}
PAPER = {  # OccFiner Table 2 (SemanticKITTI val): IoU and mIoU at 12.8 / 25.6 / 51.2 m
    "voxformer-sim": {"real": "VoxFormer", "iou": (65.38, 57.70, 44.16), "miou": (22.13, 18.58, 13.33)},
    "sscnet-sim": {"real": "SSCNet", "iou": (50.85, 52.54, 44.90), "miou": (17.59, 17.39, 14.11)},
}


class Confusion:
    def __init__(self, n: int = 20):
        self.n = n
        self.m = {r: np.zeros((n, n), np.int64) for r in RANGES}

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """pred: train ids 0..19; gt: train ids with 255 = ignore (already merged with .invalid)."""
        for r, (sx, sy) in RANGES.items():
            p = pred[sx, sy].reshape(-1)
            g = gt[sx, sy].reshape(-1)
            k = g != 255
            self.m[r] += np.bincount(p[k].astype(np.int64) * self.n + g[k], minlength=self.n * self.n).reshape(self.n, self.n)

    def scores(self) -> dict[float, dict[str, float]]:
        out = {}
        for r, m in self.m.items():
            tp = np.diag(m).astype(np.float64)
            iou = tp / np.maximum(m.sum(0) + m.sum(1) - tp, 1e-15)
            occ_tp = m[1:, 1:].sum()
            ciou = occ_tp / max(m.sum() - m[0, 0], 1)
            out[r] = {"iou": 100 * float(ciou), "miou": 100 * float(iou[1:].mean()), "per_class": (100 * iou).tolist()}
        return out


def load_gt(root: Path, manifest: dict, seq: str, frame: int) -> np.ndarray:
    lm = load_label_map("semantickitti")
    base = root / manifest["test_ground_truth"] if seq in manifest["splits"].get("test", []) else root
    d = base / "sequences" / seq / "voxels"
    gt = lm.to_train(read_label(d / f"{frame:06d}.label"))
    gt = np.where(read_bits(d / f"{frame:06d}.invalid") == 1, 255, gt).astype(np.uint8)
    return gt


def measure(root: str | Path, models: list[str] | None = None, split: str = "val", in_memory: bool = False,
            overrides: dict[str, dict] | None = None) -> dict[str, dict[float, dict[str, float]]]:
    root = Path(root)
    manifest = json.loads((root / "mini.json").read_text())
    models = models or manifest["onboard"]
    lm = load_label_map("semantickitti")
    results = {}
    for model in models:
        conf = Confusion()
        for seq in manifest["splits"][split]:
            n = manifest["scans"][seq]
            if in_memory:
                from occbench.synth import world as Wm
                from occbench.synth.config import config_from_identity
                from occbench.synth.generate import get_world, grid_codes, line_of_sight
                from occbench.synth.onboard import MODEL_IDS, MODELS, FieldCache, predict

                cfg = config_from_identity(manifest["config"])
                spec = MODELS[model]
                if overrides and model in overrides:
                    spec = dataclasses.replace(spec, **overrides[model])
                w = get_world(cfg, seq)
                fields = FieldCache([int(cfg.seed), 7_130_112, int(seq), MODEL_IDS[model]], spec)
            else:
                store = PredictionStore(root / manifest["predictions"] / model)
            for f in range(0, n, manifest["label_every"]):
                gt = load_gt(root, manifest, seq, f)
                if in_memory:
                    undo = w.stamp_agents(f)
                    try:
                        codes = grid_codes(w, f)
                    finally:
                        w.unstamp(undo)
                    pred = predict(spec, Wm.CODE_TO_TRAIN[codes], line_of_sight(codes), fields.at(f))
                else:
                    pred = lm.to_train(store.read(seq, f))
                conf.update(pred, gt)
        results[model] = conf.scores()
    return results


def table(results: dict[str, dict[float, dict[str, float]]]) -> str:
    rows = ["| model | IoU 12.8 | IoU 25.6 | IoU 51.2 | mIoU 12.8 | mIoU 25.6 | mIoU 51.2 |",
            "|---|---|---|---|---|---|---|"]
    for model, sc in results.items():
        rows.append(f"| {model} (mini val) | " + " | ".join(f"{sc[r]['iou']:.2f}" for r in RANGES) + " | "
                    + " | ".join(f"{sc[r]['miou']:.2f}" for r in RANGES) + " |")
        if model in PAPER:
            p = PAPER[model]
            rows.append(f"| {p['real']} (paper, real val) | " + " | ".join(f"{x:.2f}" for x in p["iou"]) + " | "
                        + " | ".join(f"{x:.2f}" for x in p["miou"]) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--model", action="append")
    ap.add_argument("--split", default="val")
    ap.add_argument("--in-memory", action="store_true")
    ap.add_argument("--per-class", action="store_true")
    a = ap.parse_args(argv)
    res = measure(a.root, a.model, a.split, a.in_memory)
    print(table(res))
    if a.per_class:
        names = load_label_map("semantickitti").class_names
        for m, sc in res.items():
            print(m, " ".join(f"{names[c]}={sc[51.2]['per_class'][c]:.1f}" for c in range(1, 20)))


if __name__ == "__main__":
    main()

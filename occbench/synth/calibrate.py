"""Measure the simulated onboard models against Table 2 of the OccFiner paper (IoU / mIoU by range).

    python -m occbench.synth.calibrate --root ROOT [--model voxformer-sim] [--split val]

reads a generated mini root (ground truth + predictions) and prints, per model, completion IoU and mIoU at
12.8 / 25.6 / 51.2 m with the official rules (global confusion matrix over all frames, mask =
``label != 255 & invalid == 0``, mIoU over classes 1..19) next to the paper's numbers of the real model.

``--in-memory`` recomputes the predictions of the labelled frames from the world instead of reading them
(same bytes; used while tuning :data:`occbench.synth.onboard.MODELS`). ``--set PARAMETER=NUMBER`` overrides a
parameter of the ``--model`` (e.g. ``world_share=0.45``); with ``--write-predictions DIR`` every scan of the split
is written to ``DIR/<model>/`` for multi-frame methods (docs/mini.md, "Calibration of the shared error").
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from occbench.geometry import RANGE_SLICES
from occbench.io.mini_manifest import read_manifest
from occbench.io.predictions import PredictionStore
from occbench.io.voxels import read_bits, read_label
from occbench.labels import load_label_map

RANGES = RANGE_SLICES
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
            self.m[r] += np.bincount(p[k].astype(np.int64) * self.n + g[k], minlength=self.n * self.n).reshape(
                self.n, self.n
            )

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


def _in_memory_predictions(
    root: Path, manifest: dict, model: str, seq: str, frames: range, overrides: dict[str, dict] | None = None
):
    """(frame, prediction in train ids) recomputed from the world, with ``overrides[model]`` applied to the spec."""
    from occbench.synth import world as Wm
    from occbench.synth.config import config_from_identity
    from occbench.synth.generate import get_world, grid_codes, line_of_sight, onboard_predictor

    cfg = config_from_identity(manifest["config"])
    w = get_world(cfg, seq)
    predict = onboard_predictor(cfg, seq, model, w, (overrides or {}).get(model))
    for f in frames:
        undo = w.stamp_agents(f)
        try:
            codes = grid_codes(w, f)
        finally:
            w.unstamp(undo)
        yield f, predict(f, Wm.CODE_TO_TRAIN[codes], line_of_sight(codes))


def measure(
    root: str | Path,
    models: list[str] | None = None,
    split: str = "val",
    in_memory: bool = False,
    overrides: dict[str, dict] | None = None,
) -> dict[str, dict[float, dict[str, Any]]]:
    root = Path(root)
    manifest = read_manifest(root)
    models = models or manifest["onboard"]
    lm = load_label_map("semantickitti")
    results = {}
    for model in models:
        conf = Confusion()
        for seq in manifest["splits"][split]:
            frames = range(0, manifest["scans"][seq], manifest["label_every"])
            if in_memory:
                preds = _in_memory_predictions(root, manifest, model, seq, frames, overrides)
            else:
                store = PredictionStore(root / manifest["predictions"] / model)
                preds = ((f, lm.to_train(store.read(seq, f))) for f in frames)
            for f, pred in preds:
                conf.update(pred, load_gt(root, manifest, seq, f))
        results[model] = conf.scores()
    return results


def write_predictions(
    root: str | Path,
    out: str | Path,
    models: list[str] | None = None,
    split: str = "val",
    overrides: dict[str, dict] | None = None,
) -> Path:
    """Write the predictions of **every** scan of a split, with spec overrides, as ``out/<model>/sequences/...``.

    For calibrating parameters that only multi-frame methods see (``world_share``): score a method on them with
    ``occbench evaluate --root ROOT --predictions-root OUT --onboard MODEL --method average-fusion``.
    """
    from occbench.synth.generate import inv_lut

    root, out = Path(root), Path(out)
    manifest = read_manifest(root)
    lut = inv_lut()
    for model in models or manifest["onboard"]:
        store = PredictionStore(out / model, compressed=True)
        for seq in manifest["splits"][split]:
            for f, pred in _in_memory_predictions(root, manifest, model, seq, range(manifest["scans"][seq]), overrides):
                store.write(seq, f, lut[pred])
    return out


def table(results: dict[str, dict[float, dict[str, float]]]) -> str:
    rows = [
        "| model | IoU 12.8 | IoU 25.6 | IoU 51.2 | mIoU 12.8 | mIoU 25.6 | mIoU 51.2 |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, sc in results.items():
        rows.append(
            f"| {model} (mini val) | "
            + " | ".join(f"{sc[r]['iou']:.2f}" for r in RANGES)
            + " | "
            + " | ".join(f"{sc[r]['miou']:.2f}" for r in RANGES)
            + " |"
        )
        if model in PAPER:
            p = PAPER[model]
            rows.append(
                f"| {p['real']} (paper, real val) | "
                + " | ".join(f"{x:.2f}" for x in p["iou"])
                + " | "
                + " | ".join(f"{x:.2f}" for x in p["miou"])
                + " |"
            )
    return "\n".join(rows)


def _parse_override(text: str) -> tuple[str, float]:
    k, sep, v = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--set expects PARAMETER=NUMBER (e.g. world_share=0.5), got {text!r}")
    return k, float(v)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--model", action="append")
    ap.add_argument("--split", default="train", help="split to measure (default train: calibration never looks at val)")
    ap.add_argument("--in-memory", action="store_true")
    ap.add_argument("--per-class", action="store_true")
    ap.add_argument(
        "--set",
        type=_parse_override,
        action="append",
        default=[],
        metavar="PARAMETER=NUMBER",
        help="override a numeric ModelSpec parameter of the --model(s) (implies --in-memory)",
    )
    ap.add_argument(
        "--write-predictions",
        metavar="DIR",
        help="write every scan's prediction of the split to DIR/<model>/ instead of scoring",
    )
    a = ap.parse_args(argv)
    overrides = None
    if a.set:
        if not a.model:
            ap.error("--set needs --model")
        overrides = {m: dict(a.set) for m in a.model}
    if a.write_predictions:
        print(write_predictions(a.root, a.write_predictions, a.model, a.split, overrides))
        return
    res = measure(a.root, a.model, a.split, a.in_memory or bool(a.set), overrides)
    print(table(res))
    if a.per_class:
        names = load_label_map("semantickitti").class_names
        for m, sc in res.items():
            print(m, " ".join(f"{names[c]}={sc[51.2]['per_class'][c]:.1f}" for c in range(1, 20)))


if __name__ == "__main__":
    main()

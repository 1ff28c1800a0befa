"""The plain numpy reference that ``bench_evaluate_cli.py`` times ``occbench evaluate`` against.

What a user writes in a few minutes (the pattern of semantic-kitti-api ``evaluate_completion.py``, with one
``np.bincount`` instead of ``np.add.at``): for every ground-truth ``.label`` present in
``ROOT/sequences/SEQ/voxels``, read the three files of the frame (ground truth ``.label`` and ``.invalid``, the
prediction ``.label``), map both label grids with the official LUT, mask ignore and invalid voxels, and add one
confusion matrix of the full 51.2 m grid (one range). Prints the completion IoU and mIoU.

    python benchmarks/plain_score.py ROOT PREDICTIONS [--sequence 08]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

# semantic-kitti-api config/semantic-kitti.yaml learning_map (raw id -> train id), as in the official script
LEARNING_MAP = {
    0: 0,
    1: 0,
    10: 1,
    11: 2,
    13: 5,
    15: 3,
    16: 5,
    18: 4,
    20: 5,
    30: 6,
    31: 7,
    32: 8,
    40: 9,
    44: 10,
    48: 11,
    49: 12,
    50: 13,
    51: 14,
    52: 0,
    60: 9,
    70: 15,
    71: 16,
    72: 17,
    80: 18,
    81: 19,
    99: 0,
    252: 1,
    253: 7,
    254: 6,
    255: 8,
    256: 5,
    257: 5,
    258: 4,
    259: 5,
}
C = 20


def official_lut() -> np.ndarray:
    lut = np.zeros(max(LEARNING_MAP) + 100, np.int64)
    lut[list(LEARNING_MAP)] = list(LEARNING_MAP.values())
    lut[lut == 0] = 255
    lut[0] = 0
    return lut


def score(root: str, predictions: str, sequences: list[str]) -> np.ndarray:
    lut = official_lut()
    conf = np.zeros((C, C), np.int64)
    for seq in sequences:
        vox = os.path.join(root, "sequences", seq, "voxels")
        for name in sorted(f for f in os.listdir(vox) if f.endswith(".label")):
            base = os.path.join(vox, name[:-6])
            target = lut[np.fromfile(base + ".label", np.uint16)]
            invalid = np.unpackbits(np.fromfile(base + ".invalid", np.uint8))
            pred = lut[np.fromfile(os.path.join(predictions, "sequences", seq, "predictions", name), np.uint16)]
            mask = (target != 255) & (invalid != 1)
            conf += np.bincount(pred[mask] * C + target[mask], minlength=C * C).reshape(C, C)
    return conf


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root")
    ap.add_argument("predictions")
    ap.add_argument("--sequence", action="append", default=None)
    a = ap.parse_args(argv)
    conf = score(a.root, a.predictions, a.sequence or ["08"])
    tp = np.diag(conf)
    iou = tp / (conf.sum(0) + conf.sum(1) - tp + 1e-15)
    occ = conf[1:, 1:].sum() / (conf.sum() - conf[0, 0])
    print(f"completion IoU {100 * occ:.2f}  mIoU {100 * iou[1:].mean():.2f}  ({conf.sum()} voxels evaluated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

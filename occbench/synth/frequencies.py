"""Class frequencies of a generated mini, per split, next to real SemanticKITTI's.

    python -m occbench.synth.frequencies --root ROOT [--json]

reads the ground truth of every labelled frame of every split (test ground truth from ``test-ground-truth/``),
maps the raw ids to the 20 train ids with the SemanticKITTI label map and counts the *valid* voxels with the
official mask (``label != 255 & invalid == 0``). It prints a markdown table: per class, its share of the valid
occupied voxels (classes 1-19) in real SemanticKITTI (the MonoScene voxel frequencies of the label map) and in
each mini split, and the ratio mini (all splits) / real.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from occbench.io.mini_manifest import present_splits, read_manifest
from occbench.io.voxels import read_bits, read_label
from occbench.labels import IGNORE, LabelMap, load_label_map

SPLIT_ORDER = ("train", "val", "test")


def frame_counts(raw: np.ndarray, invalid: np.ndarray, lm: LabelMap, path: str | Path | None = None) -> np.ndarray:
    """Per-train-id counts (``num_classes``) of the valid voxels of one frame (``raw``: ``.label`` raw ids)."""
    train = lm.to_train(raw, path)
    valid = (train != IGNORE) & (np.asarray(invalid) == 0)
    return np.bincount(train[valid], minlength=256)[: lm.num_classes].astype(np.int64)


def split_counts(root: str | Path, lm: LabelMap | None = None) -> dict[str, dict]:
    """``{split: {"sequences", "frames", "counts"}}`` over the labelled frames of a generated mini at ``root``."""
    root = Path(root)
    lm = lm or load_label_map("semantickitti")
    m = read_manifest(root)
    test_gt = root / m.get("test_ground_truth", "test-ground-truth")
    every = int(m.get("label_every", 5))
    out: dict[str, dict] = {}
    splits = sorted(present_splits(m), key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else 99, s))
    for split in splits:
        counts = np.zeros(lm.num_classes, np.int64)
        frames = 0
        for seq in m["splits"][split]:
            d = (test_gt if split == "test" else root) / "sequences" / seq / "voxels"
            for i in range(0, int(m["scans"][seq]), every):
                p = d / f"{i:06d}.label"
                counts += frame_counts(read_label(p), read_bits(p.with_suffix(".invalid")), lm, p)
                frames += 1
        out[split] = {"sequences": list(m["splits"][split]), "frames": frames, "counts": counts}
    return out


def _share(counts: np.ndarray) -> np.ndarray:
    occ = counts[1:].astype(np.float64)
    return occ / max(occ.sum(), 1.0)


def frequency_table(per_split: dict[str, dict], lm: LabelMap | None = None) -> str:
    """Markdown table: share (%) of the valid occupied voxels per class, real vs each mini split, ratio."""
    lm = lm or load_label_map("semantickitti")
    real = np.asarray(lm.voxel_frequencies, np.float64)
    real_share = _share(real)
    splits = list(per_split)
    total = sum((np.asarray(v["counts"], np.int64) for v in per_split.values()), np.zeros(lm.num_classes, np.int64))
    all_share = _share(total)
    shares = {s: _share(np.asarray(per_split[s]["counts"])) for s in splits}
    head = (
        ["class", "real SemanticKITTI"]
        + [f"mini {s} ({'+'.join(per_split[s]['sequences'])})" for s in splits]
        + ["mini all", "mini all / real"]
    )
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in range(1, lm.num_classes):
        k = c - 1
        ratio = all_share[k] / real_share[k] if real_share[k] > 0 else float("nan")
        rows.append(
            f"| {lm.class_names[c]} | {100 * real_share[k]:.2f} % | "
            + " | ".join(f"{100 * shares[s][k]:.2f} %" for s in splits)
            + f" | {100 * all_share[k]:.2f} % | {ratio:.2f} |"
        )
    # context rows: labelled frames, occupied voxels per frame, empty share of the valid voxels
    frames = {s: int(per_split[s]["frames"]) for s in splits}
    nf = sum(frames.values())
    rows.append(
        "| *labelled frames* | 3,834 (train) | " + " | ".join(f"{frames[s]:,}" for s in splits) + f" | {nf:,} | |"
    )

    def per_frame(counts: np.ndarray, n: int) -> str:
        return f"{counts[1:].sum() / max(n, 1):,.0f}"

    rows.append(
        "| *occupied voxels / frame* | "
        + per_frame(real, 3834)
        + " | "
        + " | ".join(per_frame(np.asarray(per_split[s]["counts"]), frames[s]) for s in splits)
        + f" | {per_frame(total, nf)} | "
        + f"{(total[1:].sum() / max(nf, 1)) / (real[1:].sum() / 3834):.2f} |"
    )

    def empty(counts: np.ndarray) -> float:
        return 100 * float(counts[0]) / max(float(counts.sum()), 1.0)

    rows.append(
        f"| *empty, % of valid voxels* | {empty(real):.1f} % | "
        + " | ".join(f"{empty(np.asarray(per_split[s]['counts'])):.1f} %" for s in splits)
        + f" | {empty(total):.1f} % | {empty(total) / empty(real):.2f} |"
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--root", required=True, help="root of a generated occbench-mini (holds mini.json)")
    ap.add_argument("--json", action="store_true", help="print the raw per-split counts as JSON instead")
    a = ap.parse_args(argv)
    lm = load_label_map("semantickitti")
    res = split_counts(a.root, lm)
    if a.json:
        print(json.dumps({s: {**v, "counts": np.asarray(v["counts"]).tolist()} for s, v in res.items()}, indent=1))
    else:
        print(frequency_table(res, lm))


if __name__ == "__main__":
    main()

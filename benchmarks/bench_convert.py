"""Time and memory of ``occbench convert --from monoscene-pkl`` against the conversion users write by hand.

``make`` writes a tree the way MonoScene's ``generate_output.py`` writes it (``<out>/kitti/08/NNNNNN.pkl``, a
pickled dict of ``y_pred`` uint16 train ids plus ``target``, ``fov_mask_1``, ``cam_k``, ``T_velo_2_cam``), with
blocky scenes from :func:`occbench.testing.random_scene`. ``reference`` is the hand-written conversion: an
unrestricted ``pickle.load``, ``learning_map_inv`` through a lookup table, ``tofile`` into the submission layout
(no validation, nothing refused). Time both as whole processes::

    python benchmarks/bench_convert.py make /tmp/mono --frames 100
    /usr/bin/time -v occbench convert /tmp/mono /tmp/conv --from monoscene-pkl --dataset semantickitti --plain -q
    /usr/bin/time -v python benchmarks/bench_convert.py reference /tmp/mono/kitti /tmp/ref
    cmp -s <(cat /tmp/conv/sequences/08/predictions/*) <(cat /tmp/ref/sequences/08/predictions/*) && echo identical
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np


def make(out: Path, frames: int, seed: int = 0) -> None:
    from occbench.testing import random_scene

    rng = np.random.default_rng(seed)
    d = out / "kitti" / "08"
    d.mkdir(parents=True, exist_ok=True)
    for t in range(frames):
        scene = random_scene(rng)
        out_dict = {
            "y_pred": scene.astype(np.uint16),
            "target": scene.astype(np.uint16),
            "fov_mask_1": np.ones(256 * 256 * 32, bool),
            "cam_k": np.eye(3),
            "T_velo_2_cam": np.eye(4),
        }
        with open(d / f"{t:06d}.pkl", "wb") as f:
            pickle.dump(out_dict, f)


def reference(src: Path, dst: Path) -> None:
    from occbench.labels import load_label_map

    inv = np.asarray(load_label_map("semantickitti").learning_map_inv, np.uint16)
    for seq in sorted(p for p in src.iterdir() if p.is_dir()):
        out = dst / "sequences" / seq.name / "predictions"
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(seq.glob("*.pkl")):
            with open(f, "rb") as h:
                y = pickle.load(h)["y_pred"]
            inv[y].tofile(out / f"{f.stem}.label")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out", type=Path)
    m.add_argument("--frames", type=int, default=100)
    r = sub.add_parser("reference")
    r.add_argument("src", type=Path)
    r.add_argument("dst", type=Path)
    a = ap.parse_args()
    if a.cmd == "make":
        make(a.out, a.frames)
    else:
        reference(a.src, a.dst)


if __name__ == "__main__":
    main()

"""Storage cost per frame of top-1 and top-2 pseudo-labels (``.pl`` as stored: zlib level 6) of a source with
scores (``refine_top2``) on occbench-mini val frames; the numbers of docs/autolabel.md, "Storage cost per frame".

    python benchmarks/bench_pl_storage.py occfiner-stage1 --frames 4
    python benchmarks/bench_pl_storage.py occfiner --frames 4        # stage 1 of ~2n+1 scans per run: minutes on CPU

The frames are ``--frames`` consecutive labelled scans from the middle of the first val sequence.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib

import numpy as np


def main() -> None:
    from occbench.autolabel.storage import PseudoLabel, encode, top2_pseudo_label
    from occbench.datasets import open_dataset
    from occbench.methods import load_method, parse_options

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("method")
    ap.add_argument("--onboard", default="voxformer-sim")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--option", "-O", action="append", default=[], help="method option key=value")
    a = ap.parse_args()
    ds = open_dataset("mini", split="val", onboard=a.onboard)
    seq = ds[ds.sequence_names[0]]
    lab = [int(f) for f in seq.labelled_frames]
    mid = len(lab) // 2
    targets = lab[max(0, mid - a.frames // 2) :][: a.frames]
    m = load_method(a.method, **parse_options(a.option))
    if getattr(m, "refine_top2", None) is None:
        raise SystemExit(f"{a.method} has no refine_top2 (no scores): top-1 only")
    rows, t0 = [], time.time()
    for t, l1, l2, p1, p2 in m.refine_top2(seq, targets):
        pl = top2_pseudo_label(l1, l2, p1, p2)
        planes = [len(zlib.compress(np.ascontiguousarray(x).tobytes(), 6)) for x in (pl.top1, pl.top2, *pl.conf)]
        rows.append(
            {
                "scan": int(t),
                "top1_bytes": len(encode(PseudoLabel(pl.top1))),
                "top2_bytes": len(encode(pl)),
                "plane_bytes_top1_top2_c1_c2": planes,
            }
        )
    kib = lambda k: round(float(np.mean([r[k] for r in rows])) / 1024, 1)  # noqa: E731
    print(
        json.dumps(
            {
                "method": a.method,
                "onboard": a.onboard,
                "sequence": seq.name,
                "frames": rows,
                "top1_KiB_per_frame": kib("top1_bytes"),
                "top2_KiB_per_frame": kib("top2_bytes"),
                "seconds": round(time.time() - t0, 1),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

"""Time and memory of ``occbench render citymap`` on a whole sequence of saved predictions.

Builds a synthetic SemanticKITTI tree on the real trajectory of KITTI sequence 00 (``tests/data/kitti-odometry``;
its first ``--scans`` poses, default 4,000: about 3.3 km with loop closures), stored as sequence 08 of the val split:
ground truth (``.label`` + ``.invalid``) every 5th scan, and a folder of saved predictions (``.label.gz``, what
``occbench refine`` writes) for those scans. The frames are the world-consistent scenes of
``benchmarks/citymap_memory.py`` (a street along the trajectory seen from each pose). Then runs, under
``/usr/bin/time -v`` and ``nice``::

    occbench render citymap --dataset semantickitti --root TREE --predictions saved=PREDS -o OUT.png

and prints the command's wall time, CPU time and peak RSS. The tree needs about 4.2 MB per labelled scan
(3.4 GB for 4,000 scans); ``--keep`` keeps it.

    python benchmarks/bench_render_citymap.py [--scans 4000] [--work DIR] [--keep]
    python benchmarks/bench_render_citymap.py --footprint 800 4000   # the map's tiles only, for extrapolating
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from citymap_memory import SEQ00, WorldScene  # noqa: E402

from occbench.io.kitti import read_calib, read_poses, write_times  # noqa: E402
from occbench.io.predictions import PredictionStore  # noqa: E402
from occbench.io.voxels import write_bits, write_label  # noqa: E402
from occbench.labels import load_label_map  # noqa: E402


def build(work: Path, scans: int, every: int = 5) -> tuple[Path, Path]:
    lm = load_label_map("semantickitti")
    calib = read_calib(SEQ00 / "calib.txt")
    poses = read_poses(SEQ00 / "poses.txt", calib)[:scans]
    root, preds = work / "tree", work / "saved"
    seq = root / "sequences" / "08"
    (seq / "voxels").mkdir(parents=True, exist_ok=True)
    shutil.copy(SEQ00 / "calib.txt", seq / "calib.txt")
    lines = (SEQ00 / "poses.txt").read_text().splitlines()[:scans]
    (seq / "poses.txt").write_text("\n".join(lines) + "\n")
    write_times(seq / "times.txt", 0.1 * np.arange(scans))
    store = PredictionStore(preds, compressed=True)
    scene = WorldScene(poses)
    t0 = time.perf_counter()
    for t in range(0, scans, every):
        pred, gt, invalid = scene.frame(t)
        raw = lm.to_raw(np.where(gt == 255, 0, gt))
        raw[gt == 255] = 52  # other-structure: ignored by the official LUT
        write_label(seq / "voxels" / f"{t:06d}.label", raw)
        write_bits(seq / "voxels" / f"{t:06d}.invalid", invalid)
        store.write("08", t, lm.to_raw(pred))
        if t % 500 == 0:
            print(f"built scan {t} of {scans} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return root, preds


def footprint(scans: int, every: int = 5, resolution: float = 0.2) -> dict:
    """Without rendering: the map tiles the labelled frames of the first ``scans`` poses touch (every column of the
    grid, as :class:`occbench.render.citymap.CityCanvas` places them), the tiles' bytes and the dense map's size."""
    from occbench.grid import KITTI
    from occbench.render.citymap import TILE

    calib = read_calib(SEQ00 / "calib.txt")
    poses = read_poses(SEQ00 / "poses.txt", calib)[:scans]
    xc, yc = KITTI.column_centres()
    cols = np.stack(np.broadcast_arrays(xc, yc), axis=-1).reshape(-1, 2)
    tiles: set[tuple[int, int]] = set()
    for t in range(0, scans, every):
        P = poses[t]
        pix = np.floor((cols @ P[:2, :2].T + P[:2, 3]) / resolution).astype(np.int64) // TILE
        tiles |= set(map(tuple, np.unique(pix, axis=0).tolist()))
    ks = np.array(sorted(tiles))
    span = (ks.max(axis=0) - ks.min(axis=0) + 1) * TILE
    n_cat = 12  # no static voxel + the 11 static classes of SemanticKITTI
    return {
        "scans": scans,
        "frames": len(range(0, scans, every)),
        "tiles": len(tiles),
        "tile_bytes": len(tiles) * 2 * TILE * TILE * n_cat * 2,
        "map_pixels": int(span[0] * span[1]),
        "path_m": float(np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1).sum()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scans", type=int, default=4000)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--output", type=Path, default=None, help="the picture (default: in the work folder)")
    ap.add_argument(
        "--footprint",
        type=int,
        nargs="*",
        default=None,
        metavar="SCANS",
        help="only report the map tiles the first SCANS scans touch (no tree, no rendering)",
    )
    a = ap.parse_args(argv)
    if a.footprint is not None:
        for n in a.footprint or [800, 4000]:
            f = footprint(n)
            print(
                f"{n} scans ({f['frames']} labelled, {f['path_m']:.0f} m driven): {f['tiles']} tiles, "
                f"{f['tile_bytes'] / 2**20:.0f} MiB of votes; dense map {f['map_pixels'] / 1e6:.1f} M pixels"
            )
        return 0
    work = a.work or Path(tempfile.mkdtemp(prefix="occbench-citymap-render-"))
    try:
        root, preds = build(work, a.scans)
        out = a.output or work / "citymap.png"
        cmd = [
            "/usr/bin/time",
            "-v",
            "nice",
            "-n",
            "10",
            "occbench",
            "render",
            "citymap",
            "--dataset",
            "semantickitti",
            "--root",
            str(root),
            "--predictions",
            f"saved={preds}",
            "-o",
            str(out),
        ]
        print("$ " + " ".join(cmd[5:]), flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True)
        err = r.stderr

        def grab(key: str) -> str:
            m = re.search(rf"{re.escape(key)}: (.+)", err)
            return m.group(1).strip() if m else "?"

        print(r.stdout.strip().splitlines()[-1] if r.stdout.strip() else err[-2000:])
        print(
            f"exit {r.returncode}; wall {grab('Elapsed (wall clock) time (h:mm:ss or m:ss)')}; "
            f"user {grab('User time (seconds)')} s; system {grab('System time (seconds)')} s; "
            f"peak RSS {int(grab('Maximum resident set size (kbytes)')) / 1024:.0f} MiB"
        )
        return r.returncode
    finally:
        if not a.keep and a.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

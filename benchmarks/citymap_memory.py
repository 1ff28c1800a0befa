"""Memory and time of the city-level map metric over a whole real sequence (issue 3: "a whole real sequence
(4k scans, a map of thousands of voxels on a side) fits in a few GB at most").

:class:`occbench.metrics.CityMapMetric` gets one frame per real LiDAR pose of a KITTI sequence (default 00,
4,541 scans, about 3.7 km of driving with loop closures). The frames are synthetic but consistent in the
world, like real scans of one street: a scene is defined once in world coordinates around the real
trajectory and every frame is that scene seen from its pose, so consecutive frames overlap exactly as real
scans do and the map's size is set by the real trajectory.

Scene (world): ground at the height of the nearest pose minus 1.73 m (the HDL-64 mounting height); road
within 5 m of the trajectory, sidewalk to 7.5 m, parking or terrain to 10 m; between 10 and 22 m, in 4 m
world blocks: buildings (50 %: a facade slab 12-16 m from the road, 3-6 m high), trees (25 %: trunk +
canopy), terrain; parked cars on the road edge; poles and traffic signs along the sidewalk; beyond 22 m:
terrain and trees. Per frame: invalid = below the ground, beyond 24 m from the trajectory, inside and behind
the buildings (from 1 m behind the facade to 20 m), plus 5 % random speckle: 20-38 % of the grid, about
30 % on average; about 6.5 % of the grid is occupied and evaluated, as in SemanticKITTI. 0.5 % of the
occupied voxels are ignore (255). Prediction = ground truth with 20 % of the occupied voxels relabelled to
a random class 1..19 and 2 % of the empty voxels predicted as a random class.

Reported at each checkpoint (``--checkpoints``, default 1000 2000 4541, as far as ``--max-minutes`` allows):
frames, seconds per frame (generation excluded and included), peak RSS of the process
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, before and after ``compute()``), the peak of numpy/Python
allocations (``tracemalloc``) while adding frames and during ``compute()``, the metric's own state
(:class:`occbench.metrics.worldmap.WorldMapState`: ``nbytes`` in memory, ``spilled_bytes`` on disk, the number
of world tiles reduced early), the map size in world voxels and the ``compute()`` result (``compute`` leaves the
state unchanged, so adding frames afterwards continues normally). With ``--plan`` (default) the state is told
the poses of every frame first (``expect``), as ``occbench evaluate`` does, so tiles no later frame touches are
reduced as the drive goes; ``--no-plan`` shows an unplanned state. The peak RSS includes the generator's
per-frame arrays (about 60 MB) and the interpreter with numpy, scipy and numba (about 300 MB).

    python benchmarks/citymap_memory.py [--poses POSES --calib CALIB] [--json out.json]

(default: the real sequence 00 shipped in ``tests/data/kitti-odometry/sequences/00``).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from occbench.geometry import ORIGIN, VOXEL_SIZE
from occbench.grid import KITTI
from occbench.io.kitti import read_calib, read_poses
from occbench.metrics import CityMapMetric, FrameArrays

SEQ00 = Path(__file__).resolve().parents[1] / "tests" / "data" / "kitti-odometry" / "sequences" / "00"
LIDAR_HEIGHT = 1.73  # m above the ground (KITTI HDL-64 mounting)
# SemanticKITTI train ids
CAR, ROAD, PARKING, SIDEWALK, BUILDING, FENCE, VEG, TRUNK, TERRAIN, POLE, SIGN = (
    1,
    9,
    10,
    11,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
)
NX, NY, NZ = KITTI.shape


def _hash01(a: np.ndarray, b: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic uniform [0, 1) per integer cell (a, b): a world-fixed random field."""
    h = (a.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (b.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F))
    h ^= np.uint64(salt * 0x165667B19E3779F9 & 0xFFFFFFFFFFFFFFFF)
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class WorldScene:
    """The world-fixed scene around a trajectory and its frames (ground truth, prediction, invalid)."""

    def __init__(self, poses: np.ndarray, cell: float = 1.0, margin: float = 60.0, seed: int = 0):
        from scipy.spatial import cKDTree

        self.poses = np.asarray(poses, np.float64)
        self.seed = seed
        xy = self.poses[:, :2, 3]
        self.cell = cell
        self.lo = xy.min(axis=0) - margin
        shape = np.ceil((xy.max(axis=0) + margin - self.lo) / cell).astype(int) + 1
        gx, gy = np.meshgrid(
            self.lo[0] + cell * (np.arange(shape[0]) + 0.5),
            self.lo[1] + cell * (np.arange(shape[1]) + 0.5),
            indexing="ij",
        )
        d, nearest = cKDTree(xy).query(np.stack([gx.ravel(), gy.ravel()], axis=1))
        self.dist = d.reshape(shape).astype(np.float32)  # distance to the trajectory (~ the road centre line)
        self.ground = (self.poses[nearest, 2, 3] - LIDAR_HEIGHT).reshape(shape).astype(np.float32)  # ground height
        self.shape = shape
        # frame-local column centres (x, y) at ground level
        i = np.arange(NX)[:, None]
        j = np.arange(NY)[None, :]
        self.xc = np.broadcast_to(ORIGIN[0] + VOXEL_SIZE * (i + 0.5), (NX, NY)).reshape(-1)
        self.yc = np.broadcast_to(ORIGIN[1] + VOXEL_SIZE * (j + 0.5), (NX, NY)).reshape(-1)
        self.k = np.arange(NZ, dtype=np.int16)[None, :]

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pred uint8, gt uint8 with 255 = ignore, invalid bool), each (256, 256, 32), of pose ``t``."""
        T = self.poses[t]
        R, tr = T[:3, :3], T[:3, 3]
        zl = -LIDAR_HEIGHT
        wx = R[0, 0] * self.xc + R[0, 1] * self.yc + R[0, 2] * zl + tr[0]
        wy = R[1, 0] * self.xc + R[1, 1] * self.yc + R[1, 2] * zl + tr[1]
        ci = np.clip(((wx - self.lo[0]) / self.cell).astype(np.int64), 0, self.shape[0] - 1)
        cj = np.clip(((wy - self.lo[1]) / self.cell).astype(np.int64), 0, self.shape[1] - 1)
        d = self.dist[ci, cj]
        gz = self.ground[ci, cj]
        # local height of the ground: world z -> local z (small pitch/roll: first order)
        local_z = (gz - tr[2] - R[2, 0] * self.xc - R[2, 1] * self.yc) / R[2, 2]
        kg = np.clip(np.floor((local_z - ORIGIN[2]) / VOXEL_SIZE), -1, NZ - 1).astype(np.int16)
        b4i, b4j = np.floor(wx / 4.0).astype(np.int64), np.floor(wy / 4.0).astype(np.int64)
        hb = _hash01(b4i, b4j, 1)  # 4 m block draw
        hh = _hash01(b4i, b4j, 2)  # block height draw
        h1 = _hash01(np.floor(wx).astype(np.int64), np.floor(wy).astype(np.int64), 3)  # 1 m draw
        # ground class per column
        gcls = np.where(
            d < 5, ROAD, np.where(d < 7.5, SIDEWALK, np.where(d < 10, np.where(hb < 0.3, PARKING, TERRAIN), TERRAIN))
        ).astype(np.uint8)
        built = hb < 0.5  # a block with a building: 4 m deep facade slab from 12 m, occluding what is behind
        building = built & (d >= 12) & (d < 16)
        tree = ((d >= 10) & (d < 22) & (hb >= 0.5) & (hb < 0.75)) | ((d >= 22) & (hb < 0.2))
        trunk = tree & (h1 < 0.06)
        car = (d >= 3.2) & (d < 4.8) & (hb < 0.35)
        pole = (d >= 7.0) & (d < 7.5) & (h1 < 0.04)
        bh = (15 + 15 * hh).astype(np.int16)  # building height 3-6 m in voxels
        c0 = (8 + 4 * hh).astype(np.int16)  # canopy bottom
        c1 = c0 + (6 + 10 * h1).astype(np.int16)
        rel = self.k - kg[:, None]  # (65536, 32) height above the ground in voxels
        gt = np.zeros((NX * NY, NZ), np.uint8)
        gt[rel == 0] = np.broadcast_to(gcls[:, None], rel.shape)[rel == 0]
        up = rel > 0
        gt[up & building[:, None] & (rel <= bh[:, None])] = BUILDING
        gt[up & (tree & (h1 < 0.7))[:, None] & (rel >= c0[:, None]) & (rel < c1[:, None])] = VEG
        gt[up & trunk[:, None] & (rel < c0[:, None])] = TRUNK
        gt[up & car[:, None] & (rel <= 8)] = CAR
        gt[up & pole[:, None] & (rel <= 30)] = POLE
        gt[pole[:, None] & (rel > 24) & (rel <= 30) & (h1[:, None] < 0.02)] = SIGN
        fence = (d >= 9.8) & (d < 10) & (hb >= 0.7)
        gt[up & fence[:, None] & (rel <= 6)] = FENCE
        rng = np.random.default_rng((self.seed, t))
        u = rng.random(gt.shape, dtype=np.float32)
        occ = gt != 0
        # invalid: below ground, far from the road, inside and behind buildings, high up, random speckle
        behind = built & (d >= 13) & (d < 20)
        invalid = (rel < 0) | (d > 24)[:, None] | (behind[:, None] & up) | (u < 0.05)
        # prediction: 20 % of the occupied voxels relabelled, 2 % of the empty ones predicted occupied
        pred = gt.copy()
        noisy = (occ & (u >= 0.05) & (u < 0.25)) | (~occ & (u >= 0.25) & (u < 0.27))
        pred[noisy] = (1 + (u[noisy] * 1e4).astype(np.int64) % 19).astype(np.uint8)
        gt[occ & (u >= 0.995)] = 255
        return pred.reshape(KITTI.shape), gt.reshape(KITTI.shape), invalid.reshape(KITTI.shape)


def _rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return r / 1024 if sys.platform != "darwin" else r / 2**20


def _log(*args) -> None:
    print(*args, flush=True)


def run(poses: np.ndarray, checkpoints: list[int], max_minutes: float, log=_log, plan: bool = True) -> list[dict]:
    tracemalloc.start()
    scene = WorldScene(poses)
    city = CityMapMetric()
    n = len(poses)
    checkpoints = sorted({min(c, n) for c in checkpoints})
    if plan:
        city.expect(poses[: checkpoints[-1]])
    out: list[dict] = []
    t_gen = t_add = 0.0
    inv_frac = []
    t0 = time.perf_counter()
    done = 0
    for cp in checkpoints:
        for t in range(done, cp):
            a = time.perf_counter()
            pred, gt, inv = scene.frame(t)
            b = time.perf_counter()
            city.update_frame(pred, FrameArrays(gt, inv, pose=poses[t]))
            t_add += time.perf_counter() - b
            t_gen += b - a
            if t % 500 == 0:
                inv_frac.append(float(inv.mean()))
                log(
                    f"  frame {t}: {time.perf_counter() - t0:.0f} s, state {city.state.nbytes / 2**20:.0f} MiB "
                    f"(+{city.state.spilled_bytes / 2**20:.0f} MiB on disk), peak RSS {_rss_mb():.0f} MB"
                )
        done = cp
        add_peak = tracemalloc.get_traced_memory()[1]
        rss_before = _rss_mb()
        before, spilled = city.state.nbytes, city.state.spilled_bytes
        tracemalloc.reset_peak()
        a = time.perf_counter()
        res = city.compute()  # seals the live tiles and reduces every record, partition by partition
        t_fin = time.perf_counter() - a
        fin_peak = tracemalloc.get_traced_memory()[1]
        row = {
            "frames": cp,
            "planned": plan,
            "s_per_frame_metric": t_add / cp,
            "s_per_frame_with_generation": (t_add + t_gen) / cp,
            "compute_s": t_fin,
            "wall_s": time.perf_counter() - t0,
            "peak_rss_mb_adding": rss_before,
            "peak_rss_mb": _rss_mb(),
            "tracemalloc_peak_mb_adding": add_peak / 2**20,
            "tracemalloc_peak_mb_compute": fin_peak / 2**20,
            "state_mb_before_compute": before / 2**20,
            "spilled_mb_before_compute": spilled / 2**20,
            "tiles_reduced_early": int(city.state.finalised_early),
            "map_voxels": int(res["n_map_voxels"]),
            "invalid_fraction_sampled": float(np.mean(inv_frac)),
            "city_map": {
                k: res[k] for k in ("iou", "miou", "n_map_voxels", "n_static_gt", "n_static_pred", "n_frames")
            },
        }
        tracemalloc.reset_peak()
        out.append(row)
        log(json.dumps(row))
        if time.perf_counter() - t0 > 60 * max_minutes and cp < checkpoints[-1]:
            log(f"stopping after {cp} frames: --max-minutes {max_minutes} reached")
            break
    tracemalloc.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--poses", type=Path, default=SEQ00 / "poses.txt", help="KITTI poses.txt (camera 0) of the sequence"
    )
    ap.add_argument("--calib", type=Path, default=SEQ00 / "calib.txt", help="its calib.txt (for the LiDAR poses)")
    ap.add_argument("--checkpoints", type=int, nargs="+", default=[1000, 2000, 4541])
    ap.add_argument(
        "--max-minutes", type=float, default=60.0, help="no further checkpoint once this much time has passed"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the checkpoint rows here")
    ap.add_argument(
        "--no-plan", dest="plan", action="store_false", help="do not declare the poses first (unbounded state)"
    )
    a = ap.parse_args(argv)
    poses = read_poses(a.poses, read_calib(a.calib))
    _log(
        f"{a.poses}: {len(poses)} poses, "
        f"path length {np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1).sum():.0f} m"
    )
    rows = run(poses, a.checkpoints, a.max_minutes, plan=a.plan)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

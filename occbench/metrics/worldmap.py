"""The state behind the city map and temporal consistency: per world voxel, how many evaluated frame voxels
observed it, with which reference category and which predicted label, in bounded memory.

Per world voxel the metrics need only three things: ``n`` (observations), the histogram of reference categories
(0 = not static, 1..S = the static classes: the ground truth's, or the prediction's without ground truth) and the
histogram of predicted train ids. :class:`WorldMapState` keeps them

- **live**, in tiles of 8 x 8 x 8 world voxels (:mod:`occbench.metrics._worldkernels`): a uint16 count per voxel,
  and a histogram row (S + C - 1 uint16 counts, in chunks of 64 rows per tile) only for voxels with a non-zero
  category or label. A frame first
  makes the tiles of its footprint live, then one compiled pass counts its evaluated voxels;
- **sealed**, as records: a tile leaving the view (not touched for ``keep_frames`` frames, its area out of the
  last frame's view) is written as a record (key; per voxel with observations its index, ``n`` and histogram
  row). Records are sorted by tile key into runs; runs held in memory beyond ``spill_bytes`` are written to disk
  (``spill_dir``) and read back memory-mapped;
- **finalised**, into integer sums (the city-map confusion and the consistency counts) as soon as a tile is known
  to be complete. That needs a plan (:meth:`WorldMapState.expect`): the poses of every frame that will ever be
  added, to this state or to states merged with it. A tile whose 12.8 m supertile no pending frame can touch
  is reduced and dropped at once; the rest are sealed and reduced when the result is asked for.

Results are reduced from the sums and the records with a batched k-way merge by tile key (records of one tile,
from any run, are summed first), so memory holds the live tiles, at most ``spill_bytes`` of records and one
batch, whatever the drive's length. Every count is an integer, so results do not depend on the order of
frames, on how they were split between states, on when tiles were sealed or spilled, or on the batch size.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from occbench.errors import FormatError
from occbench.geometry import GRID_SHAPE, ORIGIN, VOXEL_SIZE
from occbench.metrics import _worldkernels as K
from occbench.metrics._kernel import INV_BYTES, INV_NONE, INV_PACKED, readonly
from occbench.metrics.protocol import Protocol, get_protocol

NUM_VOXELS = GRID_SHAPE[0] * GRID_SHAPE[1] * GRID_SHAPE[2]
_NO_INV = readonly(np.zeros(8, np.uint8))


def pose_coefficients(pose: np.ndarray, voxel_size: float) -> np.ndarray:
    """(3, 4) float64: per world axis ``d``, ``(c0, ai, aj, ak)`` such that the world voxel of frame voxel
    ``(i, j, k)`` is ``floor(((c0 + ai * i) + aj * j) + ak * k)``: the floating-point operations, in the same
    order, of :func:`occbench.metrics.citymap.world_keys`, so both give the same voxel to the last bit."""
    pose = np.asarray(pose, np.float64)
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise FormatError(None, "a finite 4x4 LiDAR pose", f"shape {pose.shape}")
    R, t = pose[:3, :3], pose[:3, 3]
    base = R @ (ORIGIN + 0.5 * VOXEL_SIZE) + t
    A = VOXEL_SIZE * R / voxel_size
    coef = np.empty((3, 4), np.float64)
    for d in range(3):
        coef[d] = (base[d] / voxel_size, A[d, 0], A[d, 1], A[d, 2])
    return coef


def _range_error() -> FormatError:
    return FormatError(None, f"world voxel indices within +-{K.OFFSETS[0]} (x, y) and +-{K.OFFSETS[2]} (z) of the origin",
                       "a pose too far from the origin")


def frame_footprint(coef: np.ndarray) -> np.ndarray:
    """Sorted supertile keys (12.8 m squares at 0.2 m, all heights) that a frame at these coefficients may touch."""
    out = np.empty(16384, np.int64)
    n = K.frame_supertiles(coef, out)
    if n < 0:
        raise _range_error()
    return np.unique(out[:n])


# ---------------------------------------------------------------------------- records
@dataclass
class _Run:
    """Sealed tiles: ``keys`` (sorted, repeats allowed), per record the voxel range ``voff[r]:voff[r + 1]`` of
    ``vidx`` (voxel within the tile), ``vn`` (observations) and ``vrow`` (row of ``rowdata`` or -1)."""

    keys: np.ndarray
    voff: np.ndarray
    vidx: np.ndarray
    vn: np.ndarray
    vrow: np.ndarray
    rowdata: np.ndarray
    spill: "_SpillFile | None" = None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.keys, self.voff, self.vidx, self.vn, self.vrow, self.rowdata))

    def slice(self, r0: int, r1: int) -> "_Run":
        """Records ``r0:r1`` as a run of their own (voxel and row indices rebased)."""
        v0, v1 = int(self.voff[r0]), int(self.voff[r1])
        vrow = np.asarray(self.vrow[v0:v1])
        used = vrow[vrow >= 0]
        q0, q1 = (int(used.min()), int(used.max()) + 1) if used.size else (0, 0)
        return _Run(np.asarray(self.keys[r0:r1]), np.asarray(self.voff[r0:r1 + 1]) - v0, np.asarray(self.vidx[v0:v1]),
                    np.asarray(self.vn[v0:v1]), np.where(vrow >= 0, vrow - q0, -1).astype(np.int32),
                    np.asarray(self.rowdata[q0:q1]))


def _concat(runs: list[_Run], width: int) -> _Run:
    """One run holding the records of ``runs`` in order (not sorted)."""
    if not runs:
        return _Run(np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.uint16), np.zeros(0, np.uint16),
                    np.zeros(0, np.int32), np.zeros((0, width), np.uint16))
    voff, vrow = [], []
    vb = qb = 0
    for r in runs:
        voff.append(np.asarray(r.voff[:-1]) + vb)
        vr = np.asarray(r.vrow)
        vrow.append(np.where(vr >= 0, vr + qb, -1).astype(np.int32))
        vb += int(r.voff[-1])
        qb += r.rowdata.shape[0]
    voff.append(np.array([vb], np.int64))
    return _Run(np.concatenate([r.keys for r in runs]), np.concatenate(voff).astype(np.int64),
                np.concatenate([r.vidx for r in runs]), np.concatenate([r.vn for r in runs]), np.concatenate(vrow),
                np.concatenate([r.rowdata for r in runs]))


def _sorted(run: _Run) -> _Run:
    """The run's records in key order (stable)."""
    order = np.argsort(run.keys, kind="stable")
    if order.size == 0 or np.all(order == np.arange(order.size)):
        return run
    sizes = np.diff(run.voff)[order]
    vstart = np.asarray(run.voff[:-1])[order]
    voff = np.zeros(order.size + 1, np.int64)
    np.cumsum(sizes, out=voff[1:])
    take = np.repeat(vstart - voff[:-1], sizes) + np.arange(int(voff[-1]))
    vrow = run.vrow[take]
    has = vrow >= 0
    new_vrow = np.full(vrow.size, -1, np.int32)
    new_vrow[has] = np.arange(int(has.sum()), dtype=np.int32)
    return _Run(run.keys[order], voff, run.vidx[take], run.vn[take], new_vrow, run.rowdata[vrow[has]])


class _SpillDir:
    """A folder of spilled runs. Created by the state (removed when no run refers to it any more) or given by
    the caller (``owned=False``: left alone; the caller removes it)."""

    def __init__(self, path: str | None = None):
        self.owned = path is None
        self.path = Path(tempfile.mkdtemp(prefix="occbench-worldmap-") if path is None else path)
        if self.owned:
            weakref.finalize(self, shutil.rmtree, str(self.path), True)


@dataclass
class _SpillFile:
    folder: _SpillDir
    path: Path
    layout: list  # (name, dtype str, shape, offset)


def _write_run(run: _Run, folder: _SpillDir) -> _Run:
    fd, name = tempfile.mkstemp(prefix="run-", suffix=".bin", dir=folder.path)
    layout, off = [], 0
    with os.fdopen(fd, "wb") as fh:
        for attr in ("keys", "voff", "vidx", "vn", "vrow", "rowdata"):
            a = np.ascontiguousarray(getattr(run, attr))
            pad = (-off) % 64
            fh.write(b"\0" * pad)
            off += pad
            layout.append((attr, a.dtype.str, a.shape, off))
            fh.write(a.tobytes())
            off += a.nbytes
    return _open_run(_SpillFile(folder, Path(name), layout))


def _open_run(sf: _SpillFile) -> _Run:
    arrays = {}
    for attr, dt, shape, off in sf.layout:
        n = int(np.prod(shape))
        arrays[attr] = (np.memmap(sf.path, dtype=dt, mode="r", offset=off, shape=tuple(shape)) if n
                        else np.zeros(shape, dt))
    return _Run(spill=sf, **arrays)


# ---------------------------------------------------------------------------- live tiles
class _Pool:
    """Live tiles and chunks of 64 histogram rows (grown by doubling), and the direct-mapped tile table."""

    def __init__(self, width: int, tiles: int = 2048, chunks: int = 1024):
        self.width = width
        self.tab_key = np.full(K.TABLE_SIZE, -1, np.int64)
        self.tab_tile = np.zeros(K.TABLE_SIZE, np.int32)
        self.t_n = np.zeros((0, K.TILE_VOXELS), np.uint16)
        self.t_row = np.zeros((0, K.TILE_VOXELS), np.int16)
        self.t_cnt = np.zeros(0, np.int32)
        self.t_chunk = np.zeros((0, 8), np.int32)
        self.t_key = np.zeros(0, np.int64)
        self.t_last = np.zeros(0, np.int64)
        self.t_frames = np.zeros(0, np.int32)
        self.t_sup = np.zeros(0, np.int32)
        self.free_t = np.zeros(0, np.int32)
        self.ttop = np.zeros(1, np.int64)
        self.rows = np.zeros((0, width), np.uint16)
        self.free_c = np.zeros(0, np.int32)
        self.ctop = np.zeros(1, np.int64)
        self.grow_tiles(tiles)
        self.grow_chunks(chunks)

    @staticmethod
    def _grown(free: np.ndarray, top: np.ndarray, old: int, new: int) -> np.ndarray:
        """The free stack with the new items ``old..new-1`` pushed (lowest on top)."""
        t = int(top[0])
        out = np.empty(new, np.int32)
        out[:t] = free[:t]
        out[t:t + new - old] = np.arange(new - 1, old - 1, -1, dtype=np.int32)
        top[0] = t + new - old
        return out

    def grow_tiles(self, n: int | None = None) -> None:
        old = self.t_key.size
        pad = n or max(old, 1024)
        self.t_n = np.concatenate((self.t_n, np.zeros((pad, K.TILE_VOXELS), np.uint16)))
        self.t_row = np.concatenate((self.t_row, np.full((pad, K.TILE_VOXELS), -1, np.int16)))
        self.t_cnt = np.concatenate((self.t_cnt, np.zeros(pad, np.int32)))
        self.t_chunk = np.concatenate((self.t_chunk, np.full((pad, 8), -1, np.int32)))
        self.t_key = np.concatenate((self.t_key, np.full(pad, -1, np.int64)))
        self.t_last = np.concatenate((self.t_last, np.zeros(pad, np.int64)))
        self.t_frames = np.concatenate((self.t_frames, np.zeros(pad, np.int32)))
        self.t_sup = np.concatenate((self.t_sup, np.full(pad, -1, np.int32)))
        self.free_t = self._grown(self.free_t, self.ttop, old, old + pad)

    def grow_chunks(self, n: int | None = None) -> None:
        old = self.rows.shape[0] // 64
        pad = n or max(old, 256)
        self.rows = np.concatenate((self.rows, np.zeros((64 * pad, self.width), np.uint16)))
        self.free_c = self._grown(self.free_c, self.ctop, old, old + pad)

    @property
    def live_tiles(self) -> int:
        return int(self.t_key.size - self.ttop[0])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray))


class _Plan:
    """The frames a state (and the states it will be merged with) will ever see, for early finalisation."""

    def __init__(self, poses: np.ndarray, voxel_size: float, mine: np.ndarray):
        poses = np.asarray(poses, np.float64)
        self.id = hashlib.sha256(np.ascontiguousarray(poses).tobytes() + repr(voxel_size).encode()).hexdigest()[:16]
        feet = [frame_footprint(pose_coefficients(p, voxel_size)) for p in poses]
        self.sup_keys = np.unique(np.concatenate(feet)) if feet else np.zeros(0, np.int64)
        self.frame_sups = [np.searchsorted(self.sup_keys, f).astype(np.int64) for f in feet]
        self.mine = np.zeros(len(poses), bool)
        self.mine[mine] = True
        self.rem = np.zeros(self.sup_keys.size, np.int32)
        self.ext = np.zeros(self.sup_keys.size, np.int32)
        for f, s in enumerate(self.frame_sups):
            (self.rem if self.mine[f] else self.ext)[s] += 1
        self.sealed = np.zeros(self.sup_keys.size, np.bool_)
        self.seen_at = np.full(self.sup_keys.size, -1, np.int64)
        self.pending: dict[bytes, list[int]] = {}
        for f in np.flatnonzero(self.mine)[::-1]:
            self.pending.setdefault(poses[f].tobytes(), []).append(int(f))

    def take(self, pose: np.ndarray) -> int:
        """The planned frame of this pose that has not been added yet."""
        left = self.pending.get(np.asarray(pose, np.float64).tobytes())
        if not left:
            raise ValueError("a frame was added whose pose is not among the frames this state expects "
                             "(see WorldMapState.expect), or more frames than expected at this pose")
        return left.pop()


# ---------------------------------------------------------------------------- the state
class WorldMapState:
    """Per world voxel counts of observations, reference categories and predicted labels (see the module doc).

    Args:
        protocol: metric protocol (classes, static classes, invalid policy).
        voxel_size: world voxel size in metres.
        spill_dir: folder for runs spilled to disk; default a temporary folder of the state's own (removed with
            it). A caller-given folder is left alone (the caller removes it), and pickling the state then refers
            to the files instead of copying them.
        spill_bytes: records held in memory before they are written to disk.
        keep_frames: a live tile not touched for this many frames (and outside the last frame's view) is sealed.
    """

    def __init__(self, protocol: Protocol | str = "semantickitti-ssc", voxel_size: float = VOXEL_SIZE,
                 spill_dir: str | os.PathLike | None = None, spill_bytes: int = 128 << 20, keep_frames: int = 2):
        self.protocol = get_protocol(protocol)
        self.voxel_size = float(voxel_size)
        if not self.voxel_size > 0:
            raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
        p = self.protocol
        self.S = len(p.static_ids)
        self.C = p.num_classes
        self.width = self.S + self.C - 1
        cat = np.zeros(self.C, np.int64)
        cat[list(p.static_ids)] = np.arange(1, self.S + 1)
        self.cat = cat
        self.spill_bytes = int(spill_bytes)
        self.keep_frames = int(keep_frames)
        self._spill_dir = None if spill_dir is None else _SpillDir(os.fspath(spill_dir))
        self._max_frames = 65535 // self._max_obs_per_frame()
        kk = self.S + 1
        self.conf = np.zeros(kk * kk, np.int64)
        self.psame = np.zeros(kk, np.int64)
        self.pall = np.zeros(kk, np.int64)
        self.scal = np.zeros(4, np.int64)  # modal sum, observations, static voxels kept, all-agree voxels
        self.runs: list[_Run] = []  # spilled runs (memory-mapped files)
        self._mem: list[tuple[int, _Run]] = []  # (tier, run) held in memory
        self._mem_bytes = 0
        self._pool: _Pool | None = None
        self._plan: _Plan | None = None
        self._plan_id: str | None = None
        self._mine: set[int] = set()
        self._unplanned = False
        self._frame_no = 0
        self.n_frames = 0
        self.finalised_early = 0
        self._luts: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _max_obs_per_frame(self) -> int:
        """Upper bound of the frame voxels (a cubic lattice of 0.2 m) falling into one world voxel."""
        m = int(np.floor(self.voxel_size / VOXEL_SIZE * np.sqrt(3.0))) + 1
        return max(8, m ** 3)

    # -------------------------------------------------------------------- plan
    def expect(self, poses: np.ndarray, mine: np.ndarray | list[int] | None = None) -> WorldMapState:
        """Declare every frame that will be added to this state or to the states it will be merged with (their
        4x4 LiDAR poses), and which of them this state adds (``mine``, indices; default all). Tiles then finalise
        as soon as no pending frame can touch them, so memory stays small. States planned with the same poses
        and disjoint ``mine`` merge exactly; frames must be added with exactly these poses."""
        if self.n_frames or self._plan_id is not None:
            raise ValueError("expect() must be called once, before any frame is added or merged")
        poses = np.asarray(poses, np.float64)
        idx = np.arange(len(poses)) if mine is None else np.asarray(mine, np.int64)
        self._plan = _Plan(poses, self.voxel_size, idx)
        self._plan_id = self._plan.id
        self._mine = set(int(i) for i in idx)
        return self

    # -------------------------------------------------------------------- adding frames
    def luts(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """``(r_lut, l_lut)`` for ``kind`` ``"train"`` (uint8 train ids; a ground truth of C..254 is malformed),
        ``"train-lenient"`` (the same, but such a ground truth counts as not static), ``"raw"`` (uint16 raw ids
        of the protocol's label map) or ``"pred-ref"`` (train ids, reference = the prediction's category)."""
        if kind not in self._luts:
            C = self.C
            if kind == "raw":
                from occbench.labels import load_label_map

                lut = np.asarray(load_label_map(self.protocol.label_map).lut)
                r = np.full(1 << 16, 254, np.uint8)
                lab = np.full(1 << 16, 255, np.uint8)
                r[:lut.size] = np.where(lut == 255, 255, self.cat[np.minimum(lut, C - 1)])
                lab[:lut.size] = np.where(lut < C, lut, 255)
            else:
                r = np.full(256, 254 if kind == "train" else 0, np.uint8)
                r[:C] = self.cat
                if kind != "pred-ref":
                    r[self.protocol.ignore_index] = 255
                lab = np.full(256, 255, np.uint8)
                lab[:C] = np.arange(C)
            self._luts[kind] = (r, lab)
        return self._luts[kind]

    def add(self, pred: np.ndarray, gt: np.ndarray | None, pose: np.ndarray, invalid: np.ndarray | None = None, *,
            raw: bool = False, lenient: bool = False) -> int:
        """Add one frame; returns the number of evaluated voxels with a malformed ground truth or an invalid
        prediction, which are not counted (callers check their inputs first: a non-zero return means the
        frame was partly counted).

        ``pred``, ``gt``: (256, 256, 32) or flat, uint8 train ids (``raw=False``) or uint16 raw ids (``raw=True``),
        ``gt`` 255 / an ignore-mapped raw id = not evaluated; ``gt=None``: every voxel is evaluated and the
        reference is the prediction's category. ``invalid``: as :meth:`SSCMetric.update` takes it (bit-packed
        bytes, or one flag per voxel); under the protocol's ``mask-empty-only`` policy it drops only voxels
        whose ground truth is empty. ``lenient``: train-id ground truth of C..254 counts as not static."""
        coef = pose_coefficients(pose, self.voxel_size)
        plan = self._plan
        f = plan.take(pose) if plan is not None else -1
        if plan is None:
            self._unplanned = True
        p = readonly(np.ascontiguousarray(pred).reshape(-1))
        g = p if gt is None else readonly(np.ascontiguousarray(gt).reshape(-1))
        if p.size != NUM_VOXELS or g.size != NUM_VOXELS or p.dtype != g.dtype:
            raise FormatError(None, f"prediction and ground truth of {NUM_VOXELS} voxels and one dtype",
                              f"{p.size} {p.dtype} and {g.size} {g.dtype}")
        r_lut, l_lut = self.luts("raw" if raw else ("pred-ref" if gt is None else "train-lenient" if lenient else "train"))
        mode, inv = self._invalid(invalid)
        if self._pool is None:
            self._pool = _Pool(self.width)
        pool = self._pool
        fn = self._frame_no + 1
        sup_keys = plan.sup_keys if plan is not None else np.zeros(0, np.int64)
        conflicts = np.empty(4096, np.int64)
        while True:
            status, nconf = K.prepare(coef, fn, self._max_frames, pool.tab_key, pool.tab_tile, pool.t_key, pool.t_last,
                                      pool.t_frames, pool.t_sup, pool.free_t, pool.ttop, sup_keys, conflicts)
            if status == K.NEED_TILES:
                pool.grow_tiles()
            elif status == K.CONFLICT:
                self._seal(conflicts[:nconf].copy())
            elif status == K.OUT_OF_RANGE:
                raise _range_error()
            else:
                break
        empty_only = self.protocol.invalid_policy == "mask-empty-only" and gt is not None
        col, bad = 0, 0
        while col >= 0:
            col, b, status = K.accumulate(p, g, inv, mode, empty_only, r_lut, l_lut, coef, pool.tab_key, pool.tab_tile,
                                          pool.t_n, pool.t_row, pool.t_cnt, pool.t_chunk, pool.rows, pool.free_c, pool.ctop,
                                          self.S, col)
            bad += b
            if status == K.NEED_ROWS:
                pool.grow_chunks()
            elif status != K.OK:  # pragma: no cover - a footprint that misses a voxel would be a bug
                raise RuntimeError(f"world map: voxel outside the prepared footprint (status {status})")
        self._frame_no = fn
        self.n_frames += 1
        if plan is not None:
            s = plan.frame_sups[f]
            plan.rem[s] -= 1
            plan.seen_at[s] = fn
        self._evict(force=False)
        return bad

    def _invalid(self, invalid: np.ndarray | None) -> tuple[int, np.ndarray]:
        if invalid is None:
            return INV_NONE, _NO_INV
        inv = np.asarray(invalid)
        if inv.dtype == np.uint8 and inv.size == NUM_VOXELS // 8:
            return INV_PACKED, readonly(np.ascontiguousarray(inv).reshape(-1))
        if inv.size != NUM_VOXELS:
            raise FormatError(None, f"an invalid mask of {NUM_VOXELS} voxels (or {NUM_VOXELS // 8} bit-packed bytes)", f"{inv.size} values")
        if inv.dtype != np.bool_:
            inv = inv != 0
        return INV_BYTES, readonly(np.ascontiguousarray(inv).reshape(-1).view(np.uint8))

    # -------------------------------------------------------------------- sealing, spilling
    def _evict(self, force: bool) -> None:
        pool = self._pool
        if pool is None:
            return
        plan = self._plan
        if plan is None:
            z32, zb, z64 = np.zeros(0, np.int32), np.zeros(0, np.bool_), np.zeros(0, np.int64)
            rem = ext = z32
            sealed, seen = zb, z64
        else:
            rem, ext, sealed, seen = plan.rem, plan.ext, plan.sealed, plan.seen_at
        before = pool.live_tiles
        out = np.empty(pool.t_key.size, np.int64)
        ns = K.evict(self._frame_no, self.keep_frames, force, plan is not None, pool.t_key, pool.t_last, pool.t_sup,
                     rem, ext, sealed, seen, out, pool.t_n, pool.t_row, pool.t_cnt, pool.t_chunk, pool.rows, pool.free_c,
                     pool.ctop, pool.tab_key, pool.free_t, pool.ttop, self.S, self.C, self.cat, self.conf, self.psame,
                     self.pall, self.scal)
        self.finalised_early += before - pool.live_tiles
        if ns:
            self._seal(out[:ns])

    def _seal(self, tiles: np.ndarray) -> None:
        pool = self._pool
        assert pool is not None
        tiles = tiles[np.argsort(pool.t_key[tiles], kind="stable")]
        nv, nr = K.seal_sizes(tiles, pool.t_n, pool.t_row)
        run = _Run(np.empty(tiles.size, np.int64), np.empty(tiles.size + 1, np.int64), np.empty(nv, np.uint16),
                   np.empty(nv, np.uint16), np.empty(nv, np.int32), np.empty((nr, self.width), np.uint16))
        K.seal_fill(tiles, pool.t_key, pool.t_n, pool.t_row, pool.t_cnt, pool.t_chunk, pool.rows, run.keys, run.voff,
                    run.vidx, run.vn, run.vrow, run.rowdata, pool.tab_key, pool.free_c, pool.ctop, pool.free_t, pool.ttop)
        self._add_run(run)

    def _add_run(self, run: _Run) -> None:
        """Keep a sealed run: spilled runs as they are; runs in memory are merged in tiers (8 runs of one tier make
        one of the next, so a record is re-sorted a few times at most) and written to disk together once they
        hold more than ``spill_bytes``."""
        if run.spill is not None:
            self.runs.append(run)
            return
        self._mem.append((0, run))
        self._mem_bytes += run.nbytes
        while len(self._mem) >= 8 and len({t for t, _ in self._mem[-8:]}) == 1:
            tier = self._mem[-1][0]
            merged = _sorted(_concat([r for _, r in self._mem[-8:]], self.width))
            del self._mem[-8:]
            self._mem.append((tier + 1, merged))
        if self._mem_bytes > self.spill_bytes:
            if self._spill_dir is None:
                self._spill_dir = _SpillDir()
            self.runs.append(_write_run(_sorted(_concat([r for _, r in self._mem], self.width)), self._spill_dir))
            self._mem, self._mem_bytes = [], 0

    @property
    def _all_runs(self) -> list[_Run]:
        return self.runs + [r for _, r in self._mem]

    def flush(self) -> WorldMapState:
        """Finalise or seal every live tile (done before reducing, merging and pickling)."""
        self._evict(force=True)
        if self._pool is not None and self._pool.live_tiles == 0:
            self._pool = None  # frees the pool's memory; a later frame allocates a new one
        return self

    # -------------------------------------------------------------------- merging
    def merge(self, other: WorldMapState) -> WorldMapState:
        """Add ``other``'s counts to this state. Both must be planned for the same frames with disjoint shares
        (:meth:`expect`), or neither may have finalised anything early."""
        if other.protocol != self.protocol or other.voxel_size != self.voxel_size:
            raise ValueError("cannot merge world map states of different protocols or voxel sizes")
        for a, b in ((self, other), (other, self)):
            if a._plan_id is not None and (b._unplanned or (b._plan_id not in (None, a._plan_id))):
                raise ValueError("cannot merge world map states planned for different frames (see WorldMapState.expect)")
        if self._mine & other._mine:
            raise ValueError("cannot merge world map states that both added the same planned frames")
        other.flush()
        self._plan_id = self._plan_id or other._plan_id
        self._mine |= other._mine
        self._unplanned = self._unplanned or other._unplanned
        if self._plan is not None:  # tiles that the merged frames touched have records now: never finalise them live
            for f in other._mine:
                self._plan.sealed[self._plan.frame_sups[f]] = True
        for a, b in ((self.conf, other.conf), (self.psame, other.psame), (self.pall, other.pall), (self.scal, other.scal)):
            a += b
        self.n_frames += other.n_frames
        self.finalised_early += other.finalised_early
        for r in other._all_runs:
            self._add_run(r)
        return self

    def __getstate__(self) -> dict[str, Any]:
        self.flush()
        d = dict(self.__dict__)
        d["_pool"] = None
        d["_luts"] = {}
        if self._spill_dir is not None and self._spill_dir.owned:
            d["_spill_dir"] = None  # our own folder is removed with us; the copy makes its own when it spills
        runs = []
        for r in self._all_runs:
            if r.spill is not None and r.spill.folder.owned:  # our own temporary files die with us: copy them
                r = _Run(*(np.array(getattr(r, a)) for a in ("keys", "voff", "vidx", "vn", "vrow", "rowdata")))
            runs.append(r if r.spill is None else r.spill)
        d["runs"], d["_mem"], d["_mem_bytes"] = runs, [], 0
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        runs = [_open_run(r) if isinstance(r, _SpillFile) else r for r in d["runs"]]
        d["runs"] = [r for r in runs if r.spill is not None]
        d["_mem"] = [(0, r) for r in runs if r.spill is None]
        d["_mem_bytes"] = sum(r.nbytes for _, r in d["_mem"])
        self.__dict__.update(d)

    # -------------------------------------------------------------------- results
    @property
    def nbytes(self) -> int:
        """Memory held: live tiles and rows (with the table), records in memory and the sums."""
        pool = self._pool.nbytes if self._pool is not None else 0
        return pool + self._mem_bytes + self.conf.nbytes + 64

    @property
    def spilled_bytes(self) -> int:
        return sum(r.nbytes for r in self.runs)

    @property
    def record_bytes(self) -> int:
        return sum(r.nbytes for r in self._all_runs)

    def reduce(self, want_maps: bool = False, batch_records: int = 8192) -> dict[str, Any]:
        """The sums over every world voxel: ``conf`` ((S+1)^2, index ``p * (S+1) + g``: predicted and ground-truth
        map categories), ``psame`` / ``pall`` (per reference category: same-label and all pairs of observations
        of static voxels with n >= 2), ``scal`` (modal sum, observations, such voxels, all-agree voxels). With
        ``want_maps``: ``keys`` (packed world voxel keys, sorted) and their ``g`` and ``p``; only for states that
        never finalised a tile early. The state itself is unchanged (live tiles are sealed first)."""
        self.flush()
        if want_maps and self.finalised_early:
            raise ValueError("the per-voxel maps of a planned state are gone (tiles finalised early); "
                             "build the maps without expect()")
        conf, psame, pall, scal = self.conf.copy(), self.psame.copy(), self.pall.copy(), self.scal.copy()
        mkeys, mcat = [], []
        runs = [r for r in self._all_runs if r.keys.size]
        pos = [0] * len(runs)
        per_run = max(64, batch_records // max(1, len(runs)))
        while True:
            live = [i for i, r in enumerate(runs) if pos[i] < r.keys.size]
            if not live:
                break
            hi = min(int(runs[i].keys[min(pos[i] + per_run, runs[i].keys.size) - 1]) for i in live)
            parts = []
            for i in live:
                end = int(np.searchsorted(runs[i].keys, hi, side="right"))
                if end > pos[i]:
                    parts.append(runs[i].slice(pos[i], end))
                    pos[i] = end
            batch = _concat(parts, self.width)
            order = np.argsort(batch.keys, kind="stable")
            nv = int(batch.voff[-1]) if want_maps else 0
            mk, mc = np.empty(nv, np.int64), np.empty(nv, np.int64)
            m = K.reduce_records(batch.keys, batch.voff, batch.vidx, batch.vn, batch.vrow, batch.rowdata, order, self.S,
                                 self.C, self.cat, conf, psame, pall, scal, want_maps, mk, mc)
            if want_maps:
                mkeys.append(mk[:m])
                mcat.append(mc[:m])
        out: dict[str, Any] = {"conf": conf, "psame": psame, "pall": pall, "scal": scal}
        if want_maps:
            keys = np.concatenate(mkeys) if mkeys else np.zeros(0, np.int64)
            cat = np.concatenate(mcat) if mcat else np.zeros(0, np.int64)
            o = np.argsort(keys, kind="stable")
            kk = self.S + 1
            out.update(keys=keys[o].astype(np.uint64), g=cat[o] // kk, p=cat[o] % kk)
        return out

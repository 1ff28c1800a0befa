"""The state behind the city map and temporal consistency: per world voxel, how many evaluated frame voxels
observed it, with which reference category and which predicted label, in bounded memory.

Per world voxel the metrics need only three things: ``n`` (observations), the histogram of reference categories
(0 = not static, 1..S = the static classes: the ground truth's, or the prediction's without ground truth) and the
histogram of predicted train ids. :class:`WorldMapState` keeps them

- **live**, in tiles of 8 x 8 x 8 world voxels (:mod:`occbench.metrics._worldkernels`): a count per voxel (uint8;
  uint16 for world voxels over 1.15 times the frame's, which can take more than 8 observations a frame), and a log
  per tile (chunks of 256 uint32 entries) with one entry (voxel, category, label) per observation whose
  category or label is not 0, folded into histogram rows only when the tile is finalised or sealed. A frame first
  makes the tiles of its footprint live, then one compiled pass counts its evaluated voxels;
- **finalised**, into integer sums (the city-map confusion and the consistency counts) as soon as a tile is known
  to be complete. That needs a plan (:meth:`WorldMapState.expect`): the poses of every frame that will ever be
  added, to this state or to the states merged with it. A tile whose 12.8 m supertile no pending frame can touch
  is reduced and dropped at once;
- **sealed**, as records, when a tile leaves the view before it is complete (the drive comes back later, another
  state adds frames there, or there is no plan): its key and one uint32 entry per non-zero count (the voxel within
  the tile, the column: ``n`` or a column of the histogram row, the count), so a voxel only ever seen empty takes 4
  bytes and a typical row 2-3 entries. Records go to one of 16 partitions by a hash of the tile key; beyond
  ``spill_bytes`` in memory, every partition appends what it holds to its own file (``spill_dir``).

With ``background=True`` the counting pass of a frame runs on a thread of the state's own while the caller goes on
(the compiled passes release the GIL); the caller's next call waits for it.

Results are reduced from the sums and the records partition by partition (the records of one tile, from any
batch or state, are summed before its voxels are reduced), so memory holds the live tiles (bounded by what the
last few frames see), at most ``spill_bytes`` of records and two partitions while reducing (on two threads),
whatever the drive's length. Every count is an integer: results do not depend on the order of frames, on how they
were split between states, on when tiles were sealed or spilled.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from occbench.errors import FormatError
from occbench.grid import KITTI, Grid
from occbench.metrics import _worldkernels as K
from occbench.metrics._kernel import INV_BYTES, INV_NONE, INV_PACKED, readonly, words
from occbench.metrics.protocol import EvalProtocol, get_protocol

_NO_INV = readonly(np.zeros(8, np.uint8))


def pose_coefficients(pose: np.ndarray, voxel_size: float, grid: Grid = KITTI) -> np.ndarray:
    """(3, 4) float64: per world axis ``d``, ``(c0, ai, aj, ak)`` such that the world voxel of frame voxel
    ``(i, j, k)`` of ``grid`` is ``floor(((c0 + ai * i) + aj * j) + ak * k)``: the floating-point operations, in the
    same order, of :func:`occbench.metrics.worldmetric.world_keys`, so both give the same voxel to the last bit."""
    pose = np.asarray(pose, np.float64)
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise FormatError(None, "a finite 4x4 LiDAR pose", f"shape {pose.shape}")
    R, t = pose[:3, :3], pose[:3, 3]
    base = R @ (np.asarray(grid.origin, np.float64) + 0.5 * grid.voxel_size) + t
    A = grid.voxel_size * R / voxel_size
    coef = np.empty((3, 4), np.float64)
    for d in range(3):
        coef[d] = (base[d] / voxel_size, A[d, 0], A[d, 1], A[d, 2])
    return coef


def _range_error() -> FormatError:
    return FormatError(
        None,
        f"world voxel indices within +-{K.OFFSETS[0]} (x, y) and +-{K.OFFSETS[2]} (z) of the origin",
        "a pose too far from the origin",
    )


def frame_footprint(coef: np.ndarray, grid: Grid = KITTI) -> np.ndarray:
    """Sorted supertile keys (64 x 64 world voxels, all heights) that a frame of ``grid`` at these coefficients may
    touch."""
    nx, ny, nz = grid.shape
    out = np.empty(4 * (-(-nx // K.BI)) * (-(-ny // K.BJ)) * (-(-nz // K.BK)), np.int64)
    n = K.frame_supertiles(coef, nx, ny, nz, out)
    while n == -2:  # more supertiles (with repeats) than the buffer holds: tiny world voxels
        out = np.empty(2 * out.size, np.int64)
        n = K.frame_supertiles(coef, nx, ny, nz, out)
    if n < 0:
        raise _range_error()
    return np.unique(out[:n])


# ---------------------------------------------------------------------------- records
PARTITIONS = 16
REDUCE_THREADS = 2  # partitions reduced at once (settle, reduce): what a 2-core machine has
_BATCH_FIELDS = ("keys", "ne", "ent")
_DTYPES = dict(zip(_BATCH_FIELDS, map(np.dtype, ("i8", "i4", "u4"))))


@dataclass
class _Batch:
    """Records: tile ``keys``; per record ``ne`` entries; ``ent`` (records one after the other): per observed voxel
    of the tile, ``li << 23 | 0 << 16 | n`` then ``li << 23 | (1 + w) << 16 | count`` for each non-zero column ``w``
    of its histogram row (:func:`occbench.metrics._worldkernels.seal_fill`)."""

    keys: np.ndarray
    ne: np.ndarray
    ent: np.ndarray

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f).nbytes for f in _BATCH_FIELDS)

    @property
    def sizes(self) -> tuple[int, int]:
        """(records, entries)."""
        return self.keys.size, self.ent.size

    def offsets(self) -> np.ndarray:
        """Per record, its first entry."""
        eoff = np.zeros(self.keys.size, np.int64)
        np.cumsum(self.ne[:-1], out=eoff[1:])
        return eoff

    def take(self, sel: np.ndarray) -> _Batch:
        """Records ``sel`` (in that order)."""
        ne = self.ne[sel]
        out = _Batch(self.keys[sel], ne, np.empty(int(ne.sum()), np.uint32))
        K.gather_records(sel, self.offsets(), self.ne, self.ent, out.ent)
        return out


def _supertile_of(keys: np.ndarray) -> np.ndarray:
    """Supertile keys (``(x >> 6) << 15 | y >> 6``) of tile keys."""
    tx, ty = keys >> (K.KY + K.KZ), (keys >> K.KZ) & ((1 << K.KY) - 1)
    return ((tx >> (6 - K.XB)) << 15) | (ty >> (6 - K.YB))


def _partition(keys: np.ndarray) -> np.ndarray:
    """Partition (0..15) of tile keys: the top bits of a multiplicative hash."""
    return ((keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(60)).astype(np.int64)


class _SpillDir:
    """A folder of spilled records. Created by the state (removed when nothing refers to it any more) or given by
    the caller (``owned=False``: left alone; the caller removes it)."""

    def __init__(self, path: str | None = None):
        self.owned = path is None
        self.path = Path(tempfile.mkdtemp(prefix="occbench-worldmap-") if path is None else path)
        if self.owned:
            weakref.finalize(self, shutil.rmtree, str(self.path), True)


def _each_partition(
    work: Callable[[int, dict[str, np.ndarray]], Any], sums: dict[str, np.ndarray], threads: int | None = None
) -> list[Any]:
    """``work(p, into)`` for every partition ``p``, on ``threads`` threads (default :data:`REDUCE_THREADS`; the
    compiled reduction releases the GIL; at most ``threads`` partitions in memory at once): each thread adds into
    sums of its own, added into ``sums`` at the end (integers: the same whichever thread reduced what). Returns the
    results in partition order."""
    threads = max(1, REDUCE_THREADS if threads is None else threads)
    out: list[Any] = [None] * PARTITIONS
    todo = iter(range(PARTITIONS))
    lock = threading.Lock()

    def run(into: dict[str, np.ndarray]) -> None:
        while True:
            with lock:
                p = next(todo, None)
            if p is None:
                return
            out[p] = work(p, into)

    if threads == 1:
        run(sums)
        return out
    own = [sums] + [{k: np.zeros_like(v) for k, v in sums.items()} for _ in range(threads - 1)]
    with ThreadPoolExecutor(threads - 1, thread_name_prefix="occbench-reduce") as ex:
        helpers = [ex.submit(run, into) for into in own[1:]]
        run(own[0])
        for h in helpers:
            h.result()
    for into in own[1:]:
        for k, v in into.items():
            sums[k] += v
    return out


@dataclass
class _Spilled:
    """A batch written to a partition file: where, and the shapes of its arrays."""

    folder: _SpillDir
    path: Path
    offset: int
    shapes: tuple
    nbytes: int

    @property
    def sizes(self) -> tuple[int, int]:
        """(records, entries), as for a batch."""
        return self.shapes[0][0], self.shapes[2][0]

    def load(self) -> _Batch:
        out = _Batch(*(np.empty(shape, _DTYPES[f]) for f, shape in zip(_BATCH_FIELDS, self.shapes)))
        self.load_into(out, 0, 0)
        return out

    def load_into(self, out: _Batch, r: int, e: int) -> None:
        """Read the batch into ``out`` from record ``r`` and entry ``e`` on (``out`` has room for it)."""
        off = self.offset
        with open(self.path, "rb") as fh:
            for f, shape, at in zip(_BATCH_FIELDS, self.shapes, (r, r, e)):
                dst = getattr(out, f)[at : at + shape[0]]
                fh.seek(off)
                if fh.readinto(memoryview(dst).cast("B")) != dst.nbytes:
                    raise OSError(f"{self.path}: spilled records end early (at byte {fh.tell()})")
                off += dst.nbytes


# spilled records are written in pieces of this size: single writes of several MB measured 5-8x slower here (the
# kernel's page cache allocating large pages for them, presumably) than the same bytes in pieces of 1 MB
_WRITE_BYTES = 1 << 20


class _Records:
    """Sealed tiles, by partition: batches in memory, or appended to the partition's file once the memory held
    passes ``spill_bytes``."""

    def __init__(self, width: int, spill_bytes: int, spill_dir: _SpillDir | None):
        self.width = width
        self.spill_bytes = spill_bytes
        self.spill_dir = spill_dir
        self.parts: list[list[_Batch | _Spilled]] = [[] for _ in range(PARTITIONS)]
        self.mem_bytes = 0
        self._files: dict[int, Path] = {}  # partition -> the file this object appends to
        self._shared = False  # its files are referred to from elsewhere too (portable(), extend()): kept

    def add(self, batch: _Batch, borrowed: bool = False) -> None:
        """Add a batch of records (any order), split by partition (records of one partition keep their order in
        the batch). ``borrowed``: the batch's arrays will be reused by the caller, so what is kept is copied."""
        if not batch.keys.size:
            return
        part = _partition(batch.keys)
        if np.any(part[1:] < part[:-1]):
            order = np.argsort(part, kind="stable")
            batch, part, borrowed = batch.take(order), part[order], False
        bounds = np.searchsorted(part, np.arange(PARTITIONS + 1))
        eend = np.append(batch.offsets(), batch.ent.size)
        for p in range(PARTITIONS):
            a, b = int(bounds[p]), int(bounds[p + 1])
            if a == b:
                continue
            e0, e1 = int(eend[a]), int(eend[b])
            kept = _Batch(batch.keys[a:b], batch.ne[a:b], batch.ent[e0:e1])
            self.parts[p].append(_Batch(*(getattr(kept, f).copy() for f in _BATCH_FIELDS)) if borrowed else kept)
        self.mem_bytes += batch.nbytes
        if self.mem_bytes > self.spill_bytes:
            self.spill()

    def spill(self) -> None:
        """Append every partition's batches held in memory to its file."""
        if self.spill_dir is None:
            self.spill_dir = _SpillDir()
        for p, items in enumerate(self.parts):
            mem = [b for b in items if isinstance(b, _Batch)]
            if not mem:
                continue
            path = self._files.get(p)
            if path is None:
                fd, name = tempfile.mkstemp(prefix=f"part{p:02d}-", suffix=".bin", dir=self.spill_dir.path)
                os.close(fd)
                path = self._files[p] = Path(name)
            try:
                with open(path, "ab") as fh:  # the batches' bytes, field by field, one after the other
                    offset = fh.tell()
                    for f in _BATCH_FIELDS:
                        for b in mem:
                            data = np.ascontiguousarray(getattr(b, f)).data.cast("B")
                            for at in range(0, len(data), _WRITE_BYTES):
                                fh.write(data[at : at + _WRITE_BYTES])
            except OSError as e:  # a failed write names no file: name the spill file (e.g. a full $TMPDIR)
                if e.filename is None:
                    raise OSError(e.errno, e.strerror, str(path)) from e
                raise
            shapes = tuple((sum(getattr(b, f).shape[0] for b in mem),) for f in _BATCH_FIELDS)
            spilled = _Spilled(self.spill_dir, path, offset, shapes, sum(b.nbytes for b in mem))
            kept: list[_Batch | _Spilled] = [b for b in items if not isinstance(b, _Batch)]
            self.parts[p] = kept + [spilled]
        self.mem_bytes = 0

    def extend(self, other: _Records) -> None:
        other._shared = True
        for p in range(PARTITIONS):
            self.parts[p].extend(other.parts[p])
        self.mem_bytes += other.mem_bytes
        if self.mem_bytes > self.spill_bytes:
            self.spill()

    def partition(self, p: int) -> _Batch:
        """Every record of partition ``p`` in one batch (spilled ones read back straight into it)."""
        items = self.parts[p]
        if len(items) == 1 and isinstance(items[0], _Batch):
            return items[0]
        nr = sum(b.sizes[0] for b in items)
        ne = sum(b.sizes[1] for b in items)
        out = _Batch(np.empty(nr, _DTYPES["keys"]), np.empty(nr, _DTYPES["ne"]), np.empty(ne, _DTYPES["ent"]))
        r = e = 0
        for b in items:
            dr, de = b.sizes
            if isinstance(b, _Spilled):
                b.load_into(out, r, e)
            else:
                out.keys[r : r + dr], out.ne[r : r + dr], out.ent[e : e + de] = b.keys, b.ne, b.ent
            r, e = r + dr, e + de
        return out

    def drop_file(self, p: int) -> None:
        """Remove partition ``p``'s file once its records are read for the last time (:meth:`WorldMapState.settle`
        replaces these records), so that the folder's removal at the end of a run does not free every spilled
        byte at once. Nothing is removed from records whose files are referred to from elsewhere."""
        path = self._files.pop(p, None)
        if path is not None and not self._shared:
            path.unlink(missing_ok=True)

    def keys(self) -> np.ndarray:
        return (
            np.concatenate([self.partition(p).keys for p in range(PARTITIONS)])
            if self.nbytes
            else np.zeros(0, np.int64)
        )

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for items in self.parts for b in items)

    @property
    def spilled_bytes(self) -> int:
        return sum(b.nbytes for items in self.parts for b in items if isinstance(b, _Spilled))

    def portable(self) -> _Records:
        """A copy whose batches are in memory or in files the caller manages (for pickling): files in a folder
        of our own are removed with us, so their batches are read back."""
        self._shared = True
        out = _Records(self.width, self.spill_bytes, None)
        out.parts = [
            [b.load() if isinstance(b, _Spilled) and b.folder.owned else b for b in items] for items in self.parts
        ]
        out.mem_bytes = sum(b.nbytes for items in out.parts for b in items if isinstance(b, _Batch))
        return out


# ---------------------------------------------------------------------------- live tiles
def _extended(a: np.ndarray, pad: int, zero: bool) -> np.ndarray:
    """``a`` with ``pad`` rows more, zero (``zero``) or uninitialised. Only ``a``'s rows are written: the new ones
    are pages the kernel maps (zeroed) when they are first used, not when the pool grows (``np.concatenate`` wrote
    them all, twice for a zeroed array)."""
    out = (np.zeros if zero else np.empty)((a.shape[0] + pad,) + a.shape[1:], a.dtype)
    out[: a.shape[0]] = a
    return out


class _Pool:
    """Live tiles and the chunks of their logs (both grown by doubling), and the direct-mapped tile table."""

    def __init__(self, tb: int = K.TXB, tiles: int = 2048, chunks: int = 4096, counts: type = np.uint8):
        self.tab_key = np.full(1 << (3 * tb), -1, np.int64)
        self.tab_tile = np.zeros(1 << (3 * tb), np.int32)
        self.t_n: np.ndarray = np.zeros((0, K.TILE_VOXELS), counts)
        self.t_head = np.zeros(0, np.int32)
        self.t_tail = np.zeros(0, np.int32)
        self.t_fill = np.zeros(0, np.int32)
        self.t_key = np.zeros(0, np.int64)
        self.t_last = np.zeros(0, np.int64)
        self.t_frames = np.zeros(0, np.int32)
        self.t_sup = np.zeros(0, np.int32)
        self.t_hasrec = np.zeros(0, np.bool_)
        self.free_t = np.zeros(0, np.int32)
        self.ttop = np.zeros(1, np.int64)
        self.log = np.zeros((0, K.LOGC), np.uint32)
        self.l_next = np.zeros(0, np.int32)
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
        out[t : t + new - old] = np.arange(new - 1, old - 1, -1, dtype=np.int32)
        top[0] = t + new - old
        return out

    def grow_tiles(self, n: int | None = None) -> None:
        old = self.t_key.size
        pad = n or max(old, 1024)
        self.t_n = _extended(self.t_n, pad, zero=True)
        self.t_head = np.concatenate((self.t_head, np.full(pad, -1, np.int32)))
        self.t_tail = np.concatenate((self.t_tail, np.full(pad, -1, np.int32)))
        self.t_fill = np.concatenate((self.t_fill, np.full(pad, K.LOGC, np.int32)))
        self.t_key = np.concatenate((self.t_key, np.full(pad, -1, np.int64)))
        self.t_last = np.concatenate((self.t_last, np.zeros(pad, np.int64)))
        self.t_frames = np.concatenate((self.t_frames, np.zeros(pad, np.int32)))
        self.t_sup = np.concatenate((self.t_sup, np.full(pad, -1, np.int32)))
        self.t_hasrec = np.concatenate((self.t_hasrec, np.zeros(pad, np.bool_)))
        self.free_t = self._grown(self.free_t, self.ttop, old, old + pad)

    def grow_chunks(self, n: int | None = None) -> None:
        old = self.log.shape[0]
        pad = n or max(old, 1024)
        self.log = _extended(self.log, pad, zero=False)
        self.l_next = np.concatenate((self.l_next, np.full(pad, -1, np.int32)))
        self.free_c = self._grown(self.free_c, self.ctop, old, old + pad)

    @property
    def live_tiles(self) -> int:
        return int(self.t_key.size - self.ttop[0])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray))


_FOOTPRINTS: dict[tuple, tuple[np.ndarray, list[np.ndarray]]] = {}  # the last plan's, for the jobs that share it
_FOOTPRINTS_LOCK = threading.Lock()


def _plan_footprints(
    key: tuple, poses: np.ndarray, voxel_size: float, grid: Grid
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(sup_keys, frame_sups)`` of a plan: the supertiles any of its frames touches (sorted), and each frame's as
    indices into them. Computed once for the jobs of one run planned alike (threads of one process: the last
    plan's are kept, by ``key``; the arrays are shared and only read)."""
    with _FOOTPRINTS_LOCK:
        got = _FOOTPRINTS.get(key)
        if got is None:
            feet = [frame_footprint(pose_coefficients(p, voxel_size, grid), grid) for p in poses]
            sup_keys = np.unique(np.concatenate(feet)) if feet else np.zeros(0, np.int64)
            got = (sup_keys, [np.searchsorted(sup_keys, f).astype(np.int64) for f in feet])
            _FOOTPRINTS.clear()
            _FOOTPRINTS[key] = got
        return got


class _Plan:
    """The frames a state (and the states it will be merged with) will ever see, for early finalisation."""

    def __init__(self, poses: np.ndarray, voxel_size: float, mine: np.ndarray, grid: Grid = KITTI):
        poses = np.asarray(poses, np.float64)
        self.id = hashlib.sha256(np.ascontiguousarray(poses).tobytes() + repr(voxel_size).encode()).hexdigest()[:16]
        self.sup_keys, self.frame_sups = _plan_footprints((self.id, grid), poses, voxel_size, grid)
        self.mine = np.zeros(len(poses), bool)
        self.mine[mine] = True
        self.rem = np.zeros(self.sup_keys.size, np.int32)
        self.ext = np.zeros(self.sup_keys.size, np.int32)
        for f, s in enumerate(self.frame_sups):
            (self.rem if self.mine[f] else self.ext)[s] += 1
        self.seen_at = np.full(self.sup_keys.size, -1, np.int64)
        self.pending: dict[bytes, list[int]] = {}
        for f in np.flatnonzero(self.mine)[::-1]:
            self.pending.setdefault(poses[f].tobytes(), []).append(int(f))

    def take(self, pose: np.ndarray) -> int:
        """The planned frame of this pose that has not been added yet."""
        left = self.pending.get(np.asarray(pose, np.float64).tobytes())
        if not left:
            raise ValueError(
                "a frame was added whose pose is not among the frames this state expects "
                "(see WorldMapState.expect), or more frames than expected at this pose"
            )
        return left.pop()


# ---------------------------------------------------------------------------- the state
class _KeySet:
    """Keys of the tiles that have sealed records (open addressing, kept at most half full)."""

    def __init__(self, size: int = 1 << 12):
        self.slots = np.full(size, -1, np.int64)
        self.n = 0

    def add(self, keys: np.ndarray) -> None:
        if (self.n + keys.size) * 2 > self.slots.size:
            old = self.slots[self.slots >= 0]
            size = self.slots.size
            while (self.n + keys.size) * 2 > size:
                size *= 2
            self.slots = np.full(size, -1, np.int64)
            K.keyset_add(self.slots, old)
        self.n += K.keyset_add(self.slots, np.ascontiguousarray(keys, np.int64))


class WorldMapState:
    """Per world voxel counts of observations, reference categories and predicted labels (see the module doc).

    Args:
        protocol: metric protocol (classes, static classes, invalid policy, and the frames' grid,
            :class:`occbench.grid.Grid`).
        voxel_size: world voxel size in metres (default: the grid's voxel size).
        spill_dir: folder for records spilled to disk; default a temporary folder of the state's own (removed with
            it). A caller-given folder is the caller's to remove, and pickling the state then refers to the files
            instead of copying them; :meth:`settle` removes the files it has read for the last time, unless a
            pickled copy or another state (:meth:`merge`) refers to them.
        spill_bytes: records held in memory before they are written to disk.
        keep_frames: a live tile not touched for this many frames (and outside the last frame's view) is sealed.
        background: count each frame on a thread of the state's own while the caller goes on (reads and scores the
            next frame; the compiled passes release the GIL): :meth:`add` checks the frame, makes its tiles live and
            returns at once, and the arrays given must not change until the next call of any method of the state.
            The evaluated voxels that were not counted (see :meth:`add`) add up in ``uncounted``.
    """

    def __init__(
        self,
        protocol: EvalProtocol | str = "semantickitti-ssc",
        voxel_size: float | None = None,
        spill_dir: str | os.PathLike | None = None,
        spill_bytes: int = 128 << 20,
        keep_frames: int = 2,
        background: bool = False,
    ):
        self.protocol = get_protocol(protocol)
        self.grid: Grid = self.protocol.grid
        self.voxel_size = float(self.grid.voxel_size if voxel_size is None else voxel_size)
        if not self.voxel_size > 0:
            raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
        if not 1 <= self.grid.shape[2] <= 64:
            raise ValueError(f"the world map takes grids of 1 to 64 voxels in height, got grid {self.grid.shape}")
        self._tb = K.table_bits(self.grid.shape, self.grid.voxel_size, self.voxel_size)
        if self._tb > 8:
            raise ValueError(
                f"world voxels of {self.voxel_size} m are too small for frames of {self.grid.shape} voxels of "
                f"{self.grid.voxel_size} m: a frame's footprint would span more than 256 tiles"
            )
        p = self.protocol
        self.S = len(p.static_ids)
        self.C = p.num_classes
        self.width = self.S + self.C - 1
        if self.width > 126:  # a record's column field holds 7 bits (0 = n, 1 + w = histogram column w)
            raise ValueError(f"too many classes for the world map state: {self.S} static + {self.C} classes")
        cat = np.zeros(self.C, np.int64)
        cat[list(p.static_ids)] = np.arange(1, self.S + 1)
        self.cat = cat
        self.keep_frames = int(keep_frames)
        self._max_obs = self._max_obs_per_frame()
        # live counts in uint8 (half the bytes the counting pass touches) where a tile can take 31 frames or more
        # before it must be re-based or sealed (8 observations a frame at most: world voxels up to 1.15 times the
        # frame's), else uint16 (see _worldkernels._prepare)
        self._counts = np.uint8 if self._max_obs <= 8 else np.uint16
        self._max_frames = int(np.iinfo(self._counts).max) // self._max_obs
        kk = self.S + 1
        self.conf = np.zeros(kk * kk, np.int64)
        self.psame = np.zeros(kk, np.int64)
        self.pall = np.zeros(kk, np.int64)
        self.scal = np.zeros(4, np.int64)  # modal sum, observations, static voxels kept, all-agree voxels
        self.records = _Records(
            self.width, int(spill_bytes), None if spill_dir is None else _SpillDir(os.fspath(spill_dir))
        )
        self._recorded = _KeySet()
        self._pool: _Pool | None = None
        self._seal_buf = np.zeros(0, np.uint32)
        self._plan: _Plan | None = None
        self._plan_id: str | None = None
        self._mine: set[int] = set()
        self._unplanned = False
        self._frame_no = 0
        self.n_frames = 0
        self.finalised_early = 0
        self._luts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.background = bool(background)
        self.uncounted = 0
        self._thread: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def _wait(self) -> None:
        """Wait for the frame being counted in the background (its error, if any, is raised here)."""
        fut, self._pending = self._pending, None
        if fut is not None:
            self.uncounted += fut.result()

    _conflicts_listed = 4096  # tiles prepare lists at most before they are sealed (more: listed by the next call)

    def _max_obs_per_frame(self) -> int:
        """Upper bound of the frame voxels (a cubic lattice of 0.2 m) falling into one world voxel."""
        m = int(np.floor(self.voxel_size / self.grid.voxel_size * np.sqrt(3.0))) + 1
        return max(8, m**3)

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
        self._plan = _Plan(poses, self.voxel_size, idx, self.grid)
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
                r[: lut.size] = np.where(lut == 255, 255, self.cat[np.minimum(lut, C - 1)])
                lab[: lut.size] = np.where(lut < C, lut, 255)
            else:
                r = np.full(256, 254 if kind == "train" else 0, np.uint8)
                r[:C] = self.cat
                if kind != "pred-ref":
                    r[self.protocol.ignore_index] = 255
                lab = np.full(256, 255, np.uint8)
                lab[:C] = np.arange(C)
            self._luts[kind] = (r, lab)
        return self._luts[kind]

    def add(
        self,
        pred: np.ndarray,
        gt: np.ndarray | None,
        pose: np.ndarray,
        invalid: np.ndarray | None = None,
        *,
        raw: bool = False,
        lenient: bool = False,
    ) -> int:
        """Add one frame; returns the number of evaluated voxels with a malformed ground truth or an invalid
        prediction, which are not counted (callers check their inputs first: a non-zero return means the
        frame was partly counted). With ``background`` it returns 0 and that number is added to ``uncounted`` once
        the frame is counted (at the next call).

        ``pred``, ``gt``: the grid's shape ((256, 256, 32) on KITTI) or flat, uint8 train ids (``raw=False``) or
        uint16 raw ids (``raw=True``),
        ``gt`` 255 / an ignore-mapped raw id = not evaluated; ``gt=None``: every voxel is evaluated and the
        reference is the prediction's category. ``invalid``: as ``FrameArrays.invalid`` holds it (bit-packed
        bytes, or one flag per voxel); under the protocol's ``mask-empty-only`` policy it drops only voxels
        whose ground truth is empty. ``lenient``: train-id ground truth of C..254 counts as not static."""
        self._wait()
        coef = pose_coefficients(pose, self.voxel_size, self.grid)
        nv = self.grid.num_voxels
        plan = self._plan
        f = plan.take(pose) if plan is not None else -1
        if plan is None:
            self._unplanned = True
        p = readonly(np.ascontiguousarray(pred).reshape(-1))
        g = p if gt is None else readonly(np.ascontiguousarray(gt).reshape(-1))
        if p.size != nv or g.size != nv or p.dtype != g.dtype:
            raise FormatError(
                None,
                f"prediction and ground truth of {nv} voxels (grid {self.grid.shape}) and one dtype",
                f"{p.size} {p.dtype} and {g.size} {g.dtype}",
            )
        r_lut, l_lut = self.luts(
            "raw" if raw else ("pred-ref" if gt is None else "train-lenient" if lenient else "train")
        )
        mode, inv = self._invalid(invalid)
        if self._pool is None:
            self._pool = _Pool(self._tb, counts=self._counts)
        pool = self._pool
        fn = self._frame_no + 1
        sup_keys = plan.sup_keys if plan is not None else np.zeros(0, np.int64)
        conflicts = np.empty(self._conflicts_listed, np.int64)
        while True:
            status, nconf = K.prepare(
                coef,
                *self.grid.shape,
                self._tb,
                fn,
                self._max_frames,
                self._max_obs,
                pool.tab_key,
                pool.tab_tile,
                pool.t_key,
                pool.t_last,
                pool.t_frames,
                pool.t_n,
                pool.t_sup,
                pool.t_hasrec,
                pool.free_t,
                pool.ttop,
                sup_keys,
                self._recorded.slots,
                conflicts,
            )
            # listed tiles are marked as listed (prepare does not list them again): seal them whatever the status
            # (the pool ran out, or the pose left the range, after some were listed), or a later call would find
            # their slots taken and list nothing
            if nconf:
                self._seal(conflicts[:nconf].copy())
            if status == K.NEED_TILES:
                pool.grow_tiles()
            elif status == K.CONFLICT:
                if not nconf:  # pragma: no cover - would be a bug: nothing to seal, the next call would be the same
                    raise RuntimeError("world map: tile table conflict with no tile listed")
            elif status == K.OUT_OF_RANGE:
                raise _range_error()
            elif status == K.TOO_WIDE:  # pragma: no cover - table_bits makes the table wider than any footprint
                raise RuntimeError("world map: a frame's footprint is wider than the tile table")
            else:
                break
        empty_only = self.protocol.invalid_policy == "mask-empty-only" and gt is not None
        self._frame_no = fn
        self.n_frames += 1
        if plan is not None:
            s = plan.frame_sups[f]
            plan.rem[s] -= 1
            plan.seen_at[s] = fn
        args = (p, g, inv, mode, empty_only, r_lut, l_lut, coef)
        if not self.background:
            bad = self._count(*args)
            self.uncounted += bad
            return bad
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="occbench-worldmap")
            weakref.finalize(self, self._thread.shutdown, False)
        self._pending = self._thread.submit(self._count, *args)
        return 0

    def _count(
        self,
        p: np.ndarray,
        g: np.ndarray,
        inv: np.ndarray,
        mode: int,
        empty_only: bool,
        r_lut: np.ndarray,
        l_lut: np.ndarray,
        coef: np.ndarray,
    ) -> int:
        """Count a frame whose tiles are live (the second half of :meth:`add`), then finalise or seal tiles."""
        pool = self._pool
        assert pool is not None
        inv_words = words(inv)
        col, bad = 0, 0
        while col >= 0:
            col, b, status = K.accumulate(
                p,
                g,
                inv,
                inv_words,
                mode,
                empty_only,
                r_lut,
                l_lut,
                coef,
                *self.grid.shape,
                self._tb,
                pool.tab_key,
                pool.tab_tile,
                pool.t_n.reshape(-1),  # flat views (the kernels make none: see _worldkernels._accumulate_cols)
                pool.t_head,
                pool.t_tail,
                pool.t_fill,
                pool.log.reshape(-1),
                pool.l_next,
                pool.free_c,
                pool.ctop,
                col,
            )
            bad += b
            if status == K.NEED_CHUNKS:
                pool.grow_chunks()
            elif status != K.OK:  # pragma: no cover - a footprint that misses a voxel would be a bug
                raise RuntimeError(f"world map: voxel outside the prepared footprint (status {status})")
        self._evict(force=False)
        return bad

    def _invalid(self, invalid: np.ndarray | None) -> tuple[int, np.ndarray]:
        if invalid is None:
            return INV_NONE, _NO_INV
        inv = np.asarray(invalid)
        nv = self.grid.num_voxels
        if inv.dtype == np.uint8 and nv % 8 == 0 and inv.size == nv // 8:
            return INV_PACKED, readonly(np.ascontiguousarray(inv).reshape(-1))
        if inv.size != nv:
            raise FormatError(
                None,
                f"an invalid mask of {nv} voxels (or {nv // 8} bit-packed bytes)",
                f"{inv.size} values",
            )
        if inv.dtype != np.bool_:
            inv = inv != 0
        return INV_BYTES, readonly(np.ascontiguousarray(inv).reshape(-1).view(np.uint8))

    # -------------------------------------------------------------------- sealing
    def _evict(self, force: bool) -> None:
        pool = self._pool
        if pool is None:
            return
        plan = self._plan
        if plan is None:
            rem = ext = np.zeros(0, np.int32)
            seen = np.zeros(0, np.int64)
        else:
            rem, ext, seen = plan.rem, plan.ext, plan.seen_at
        before = pool.live_tiles
        out = np.empty(pool.t_key.size, np.int64)
        ns = K.evict(
            self._frame_no,
            self.keep_frames,
            force,
            plan is not None,
            pool.t_key,
            pool.t_last,
            pool.t_sup,
            pool.t_hasrec,
            rem,
            ext,
            seen,
            out,
            pool.t_n,
            pool.t_head,
            pool.t_tail,
            pool.t_fill,
            pool.log,
            pool.l_next,
            pool.free_c,
            pool.ctop,
            pool.tab_key,
            pool.free_t,
            pool.ttop,
            self._tb,
            self.S,
            self.C,
            self.cat,
            self.conf,
            self.psame,
            self.pall,
            self.scal,
        )
        self.finalised_early += before - pool.live_tiles  # the tiles listed to seal are still live here
        if ns:
            self._seal(out[:ns])

    def _seal(self, tiles: np.ndarray) -> None:
        """Write live tiles as records and release them."""
        pool = self._pool
        assert pool is not None
        # in partition order (stable), as the records are kept: they go from the buffer to their partitions
        tiles = tiles[np.argsort(_partition(pool.t_key[tiles]), kind="stable")]
        ne = K.seal_sizes(tiles, pool.t_n, pool.t_head, pool.t_tail, pool.t_fill, pool.l_next)
        n = tiles.size
        b = _Batch(np.empty(n, np.int64), np.empty(n, np.int32), self._seal_buffer(ne))
        e = K.seal_fill(
            tiles,
            pool.t_key,
            pool.t_n,
            pool.t_head,
            pool.t_tail,
            pool.t_fill,
            pool.log,
            pool.l_next,
            self.S,
            self.width,
            b.keys,
            b.ne,
            b.ent,
            pool.tab_key,
            pool.free_c,
            pool.ctop,
            pool.free_t,
            pool.ttop,
            self._tb,
        )
        b.ent = b.ent[:e]  # seal_sizes is an upper bound
        self._recorded.add(b.keys)
        self.records.add(b, borrowed=True)

    _SEAL_BUFFER_MAX = 8 << 20  # entries (32 MB) of the buffer kept between seals; larger seals allocate their own

    def _seal_buffer(self, ne: int) -> np.ndarray:
        """A buffer of at least ``ne`` entries for :meth:`_seal` to write records into. Kept between seals (up
        to :attr:`_SEAL_BUFFER_MAX` entries), so its pages are not faulted in and zeroed again each time."""
        if ne > self._SEAL_BUFFER_MAX:
            return np.empty(ne, np.uint32)
        if self._seal_buf.size < ne:
            self._seal_buf = np.empty(min(self._SEAL_BUFFER_MAX, max(ne, 2 * self._seal_buf.size)), np.uint32)
        return self._seal_buf[:ne]

    def flush(self) -> WorldMapState:
        """Finalise or seal every live tile (done before reducing, merging and pickling)."""
        self._wait()
        self._evict(force=True)
        if self._pool is not None and self._pool.live_tiles == 0:
            self._pool = None  # frees the pool's memory; a later frame allocates a new one
            self._seal_buf = np.zeros(0, np.uint32)
        return self

    # -------------------------------------------------------------------- merging
    def merge(self, other: WorldMapState) -> WorldMapState:
        """Add ``other``'s counts to this state. Both must be planned for the same frames with disjoint shares
        (:meth:`expect`), or neither may have finalised anything early."""
        self._wait()
        if other.protocol != self.protocol or other.voxel_size != self.voxel_size:
            raise ValueError("cannot merge world map states of different protocols or voxel sizes")
        for a, b in ((self, other), (other, self)):
            if a._plan_id is not None and (b._unplanned or (b._plan_id not in (None, a._plan_id))):
                raise ValueError(
                    "cannot merge world map states planned for different frames (see WorldMapState.expect)"
                )
        if self._mine & other._mine:
            raise ValueError("cannot merge world map states that both added the same planned frames")
        other.flush()
        self._plan_id = self._plan_id or other._plan_id
        self._mine |= other._mine
        self._unplanned = self._unplanned or other._unplanned
        for mine, theirs in (
            (self.conf, other.conf),
            (self.psame, other.psame),
            (self.pall, other.pall),
            (self.scal, other.scal),
        ):
            mine += theirs
        self.n_frames += other.n_frames
        self.finalised_early += other.finalised_early
        if self._plan is not None:  # tiles with records from elsewhere must not be finalised live
            self._recorded.add(other.records.keys())
        self.records.extend(other.records)
        if self._plan is not None:
            if self._pool is not None:
                K.mark_recorded(self._recorded.slots, self._pool.t_key, self._pool.t_hasrec)
        return self

    def __getstate__(self) -> dict[str, Any]:
        self.flush()
        d = dict(self.__dict__)
        d["_pool"] = None
        d["_seal_buf"] = np.zeros(0, np.uint32)
        d["_luts"] = {}
        d["_thread"] = d["_pending"] = None
        d["records"] = self.records.portable()
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        # a state that travelled through Ray's object store comes back with read-only arrays (zero-copy): the sums
        # and the key set are written to when states merge, so they are made this state's own
        for k in ("conf", "psame", "pall", "scal"):
            if not d[k].flags.writeable:
                d[k] = d[k].copy()
        ks = d.get("_recorded")
        if ks is not None and not ks.slots.flags.writeable:
            ks.slots = ks.slots.copy()
        self.__dict__.update(d)

    # -------------------------------------------------------------------- results
    @property
    def nbytes(self) -> int:
        """Memory held: live tiles and their logs (with the table), records in memory, the key set and the sums."""
        self._wait()
        pool = self._pool.nbytes if self._pool is not None else 0
        return pool + self.records.mem_bytes + self._recorded.slots.nbytes + self.conf.nbytes + 64

    @property
    def spilled_bytes(self) -> int:
        return self.records.spilled_bytes

    @property
    def record_bytes(self) -> int:
        return self.records.nbytes

    def _sums(self) -> dict[str, np.ndarray]:
        return {
            "conf": self.conf.copy(),
            "psame": self.psame.copy(),
            "pall": self.pall.copy(),
            "scal": self.scal.copy(),
        }

    def _reduce_partition(
        self, batch: _Batch, sums: dict[str, np.ndarray], keep: np.ndarray | None = None, want_maps: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(batch.keys, kind="stable")
        keep = np.zeros(batch.keys.size, np.bool_) if keep is None else keep
        nv = int(np.count_nonzero((batch.ent & np.uint32(0x7F0000)) == 0)) if want_maps else 0
        mk, mc = np.empty(nv, np.int64), np.empty(nv, np.int64)
        m = K.reduce_records(
            batch.keys,
            batch.offsets(),
            batch.ne,
            batch.ent,
            self.width,
            order,
            keep,
            self.S,
            self.C,
            self.cat,
            sums["conf"],
            sums["psame"],
            sums["pall"],
            sums["scal"],
            want_maps,
            mk,
            mc,
        )
        return mk[:m], mc[:m]

    def reduce(self, want_maps: bool = False) -> dict[str, Any]:
        """The sums over every world voxel: ``conf`` ((S+1)^2, index ``p * (S+1) + g``: predicted and ground-truth
        map categories), ``psame`` / ``pall`` (per reference category: same-label and all pairs of observations
        of static voxels with n >= 2), ``scal`` (modal sum, observations, such voxels, all-agree voxels). With
        ``want_maps``: ``keys`` (packed world voxel keys, sorted) and their ``g`` and ``p``; only for states that
        never finalised a tile early. The state itself is unchanged (live tiles are sealed first)."""
        self.flush()
        if want_maps and self.finalised_early:
            raise ValueError(
                "the per-voxel maps of a planned state are gone (tiles finalised early); "
                "build the maps without expect()"
            )
        sums = self._sums()
        found = _each_partition(
            lambda p, into: self._reduce_partition(self.records.partition(p), into, want_maps=want_maps), sums
        )
        out: dict[str, Any] = sums
        if want_maps:
            keys, cat = np.concatenate([mk for mk, _ in found]), np.concatenate([mc for _, mc in found])
            o = np.argsort(keys, kind="stable")
            kk = self.S + 1
            out.update(keys=keys[o].astype(np.uint64), g=cat[o] // kk, p=cat[o] % kk)
        return out

    def settle(self) -> WorldMapState:
        """Reduce into the sums every record that no other state can add to (planned states: tiles whose supertile
        no frame of another state touches), keeping only the records to hand over. A job calls this once its
        frames are added, so it returns the few records its neighbours share, not every tile it had to park."""
        self.flush()
        plan = self._plan
        if plan is None or not self.records.nbytes:
            return self
        sums = {"conf": self.conf, "psame": self.psame, "pall": self.pall, "scal": self.scal}

        def settle_partition(p: int, into: dict[str, np.ndarray]) -> _Batch | None:
            batch = self.records.partition(p)
            self.records.drop_file(p)  # read for the last time: these records are replaced below
            if not batch.keys.size:
                return None
            sup = _supertile_of(batch.keys)
            shared = np.ones(sup.size, bool)
            if plan.sup_keys.size:
                i = np.minimum(np.searchsorted(plan.sup_keys, sup), plan.sup_keys.size - 1)
                shared = (plan.sup_keys[i] != sup) | (plan.ext[i] > 0) | (plan.rem[i] > 0)
            self._reduce_partition(batch, into, keep=shared)
            return batch.take(np.flatnonzero(shared)) if shared.any() else None

        kept = _Records(self.width, self.records.spill_bytes, self.records.spill_dir)
        for batch in _each_partition(settle_partition, sums):
            if batch is not None:
                kept.add(batch)
        self.records = kept
        return self

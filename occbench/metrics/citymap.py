"""Sequence-level metrics in a global (world) voxel map: the city-level static map metric (OccFiner paper,
Appendix B, Table 7) and the multi-view temporal consistency metric.

Both share one sparse accumulator: every observation of a world voxel is a ``uint64``
``(world voxel key << 8) | category`` appended to a buffer; buffers are sorted and run-length reduced into
runs that are merged like an LSM tree, so memory holds one ``uint64`` key + one ``uint32`` count per distinct
(world voxel, category) pair and nothing per frame. A run is stored as a list of chunks (4 Mi entries each), and
two runs are merged in one linear pass (compiled with numba) that frees each input chunk as soon as it is
consumed: a merge needs little more than the two runs themselves, never two copies of the map. Scores are
reduced chunk by chunk, without per-voxel arrays of the whole map. Measured over the 4,541 real poses of
sequence 00: ``benchmarks/citymap_memory.py`` and ``docs/performance.md``.

World voxel of a frame voxel (``forward mapping``): its centre ``c`` in the frame's LiDAR coordinates is moved
with the frame's LiDAR pose ``T`` (4x4, LiDAR -> world, ``occbench.io.kitti.read_poses``) and floored:
``key = floor((T @ c) / voxel_size)``. Each frame voxel is one observation; with rotated frames a world voxel
can receive two observations from one frame or none (nearest-neighbour resampling).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from occbench.errors import FormatError
from occbench.geometry import GRID_SHAPE, ORIGIN, VOXEL_SIZE
from occbench.metrics.protocol import Protocol, get_protocol

try:  # numba is a declared dependency; without it merges fall back to numpy (more temporary memory)
    from numba import njit
except ImportError:  # pragma: no cover
    njit = None

_AXIS_BITS = (21, 21, 14)  # x, y, z of the world voxel index
_OFFSETS = tuple(1 << (b - 1) for b in _AXIS_BITS)
_CAT_BITS = 8


def world_keys(flat_idx: np.ndarray, pose: np.ndarray, voxel_size: float) -> np.ndarray:
    """Packed world voxel keys (uint64, already shifted left by 8 bits) of frame voxels given by flat index."""
    pose = np.asarray(pose, np.float64)
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise FormatError(None, "a finite 4x4 LiDAR pose", f"shape {pose.shape}")
    idx = np.asarray(flat_idx, np.int64)
    R, t = pose[:3, :3], pose[:3, 3]
    # world = R @ (ORIGIN + 0.2 (ijk + 0.5)) + t, per axis on the integer indices (no (N, 3) temporaries)
    fi = (idx >> 13).astype(np.float64)
    fj = ((idx >> 5) & 255).astype(np.float64)
    fk = (idx & 31).astype(np.float64)
    base = R @ (ORIGIN + 0.5 * VOXEL_SIZE) + t
    A = VOXEL_SIZE * R / voxel_size
    key = np.zeros(idx.size, np.uint64)
    shift = _CAT_BITS
    for d in (2, 1, 0):
        wd = np.floor(base[d] / voxel_size + A[d, 0] * fi + A[d, 1] * fj + A[d, 2] * fk).astype(np.int64)
        v = wd + _OFFSETS[d]
        if v.size and (v.min() < 0 or v.max() >= (1 << _AXIS_BITS[d])):
            raise FormatError(None, f"world voxel indices within +-{_OFFSETS[d]} on axis {'xyz'[d]}", "a pose too far from the origin")
        key |= v.astype(np.uint64) << np.uint64(shift)
        shift += _AXIS_BITS[d]
    return key


_EMPTY_K = np.zeros(0, np.uint64)
_EMPTY_C = np.zeros(0, np.uint32)
_Run = list  # a run: list of (sorted unique uint64 keys, uint32 counts) chunks, keys increasing across chunks


class SparseCounter:
    """Counts of uint64 items, streaming: ``add`` appends, runs are sorted/reduced and merged (LSM style).

    Memory: 12 bytes per distinct item (uint64 key + uint32 count) in runs of chunks of ``chunk_items``
    entries, plus the add buffer (``buffer_items`` uint64) and, while two runs merge, about one chunk.
    """

    def __init__(self, buffer_items: int = 1 << 23, chunk_items: int = 1 << 22):
        self.buffer_items = int(buffer_items)
        self.chunk_items = int(chunk_items)
        if self.chunk_items < 1:
            raise ValueError(f"chunk_items must be >= 1, got {chunk_items}")
        self._buf: list[np.ndarray] = []
        self._buf_n = 0
        self._runs: list[_Run] = []

    def add(self, items: np.ndarray) -> None:
        if items.size:
            self._buf.append(np.asarray(items, np.uint64))
            self._buf_n += items.size
            if self._buf_n >= self.buffer_items:
                self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        a = np.concatenate(self._buf)
        self._buf, self._buf_n = [], 0
        a.sort()
        k, c = _count_sorted(a)
        del a
        C = self.chunk_items
        self._runs.append([(k[s:s + C].copy(), c[s:s + C].copy()) for s in range(0, k.size, C)])
        del k, c
        while len(self._runs) >= 2 and _run_size(self._runs[-1]) * 2 >= _run_size(self._runs[-2]):
            self._runs.append(_merge_runs(self._runs.pop(), self._runs.pop(), C))

    def _single_run(self) -> _Run:
        self._flush()
        while len(self._runs) >= 2:
            self._runs.append(_merge_runs(self._runs.pop(), self._runs.pop(), self.chunk_items))
        if not self._runs:
            self._runs.append([])
        return self._runs[0]

    def chunks(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """All (sorted unique items, counts) as chunks in increasing order, after merging every run into one.
        Leaves the counter holding exactly that run; the arrays are the counter's own (do not modify)."""
        return list(self._single_run())

    def finalize(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted unique items, counts) as two arrays (a concatenation of :meth:`chunks`: for big maps
        prefer :meth:`chunks`, which copies nothing). Leaves the counter holding exactly one run."""
        run = self._single_run()
        if not run:
            return _EMPTY_K.copy(), _EMPTY_C.copy()
        if len(run) == 1:
            return run[0]
        return np.concatenate([k for k, _ in run]), np.concatenate([c for _, c in run])

    def merge(self, other: "SparseCounter") -> None:
        run = [(k.copy(), c.copy()) for k, c in other.chunks()]
        self._flush()
        self._runs.append(run)
        self._single_run()

    @property
    def n_entries(self) -> int:
        return sum(_run_size(r) for r in self._runs)

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + c.nbytes for r in self._runs for k, c in r) + sum(b.nbytes for b in self._buf)


def _run_size(run: _Run) -> int:
    return sum(k.size for k, _ in run)


def _reduce_sorted(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if keys.size == 0:
        return keys, counts.astype(np.uint32)
    start = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return keys[start], np.add.reduceat(counts.astype(np.uint64), start).astype(np.uint32)


def _count_sorted(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique items, uint32 multiplicities) of a sorted uint64 array."""
    if a.size == 0:
        return a, np.zeros(0, np.uint32)
    start = np.flatnonzero(np.concatenate(([True], a[1:] != a[:-1])))
    counts = np.diff(np.append(start, a.size)).astype(np.uint32)
    return a[start], counts


def _merge_step_py(ka, ca, i, a_last, kb, cb, j, b_last, ok, oc, n):  # pragma: no cover - compiled below
    """Merge chunk ``ka[i:]`` with chunk ``kb[j:]`` into ``ok[n:]``/``oc[n:]`` (counts of equal keys added)
    until the output chunk is full or an input chunk runs out while its run has more chunks (``*_last``
    False). Returns the new ``(i, j, n)``."""
    na, nb, no = ka.size, kb.size, ok.size
    while n < no:
        if i < na and j < nb:
            x = ka[i]
            y = kb[j]
            if x < y:
                ok[n] = x
                oc[n] = ca[i]
                i += 1
            elif y < x:
                ok[n] = y
                oc[n] = cb[j]
                j += 1
            else:
                ok[n] = x
                oc[n] = ca[i] + cb[j]
                i += 1
                j += 1
        elif i < na:
            if not b_last:
                break
            ok[n] = ka[i]
            oc[n] = ca[i]
            i += 1
        elif j < nb:
            if not a_last:
                break
            ok[n] = kb[j]
            oc[n] = cb[j]
            j += 1
        else:
            break
        n += 1
    return i, j, n


if njit is not None:
    _merge_step = njit(cache=True, nogil=True, boundscheck=False)(_merge_step_py)
else:  # pragma: no cover - without numba (slow, same result)
    _merge_step = _merge_step_py


def _merge_runs(ra: _Run, rb: _Run, chunk: int) -> _Run:
    """Merge two runs into a new one (chunks of ``chunk`` entries), adding the counts of equal keys.

    ``ra`` and ``rb`` are consumed: their chunks are dropped as soon as they are merged, so the memory
    needed is the two runs plus about one output chunk."""
    out: _Run = []
    ra, rb = list(ra), list(rb)
    ka, ca = ra.pop(0) if ra else (_EMPTY_K, _EMPTY_C)
    kb, cb = rb.pop(0) if rb else (_EMPTY_K, _EMPTY_C)
    i = j = n = 0
    ok, oc = np.empty(chunk, np.uint64), np.empty(chunk, np.uint32)
    while True:
        i, j, n = _merge_step(ka, ca, i, not ra, kb, cb, j, not rb, ok, oc, n)
        if n == chunk:
            out.append((ok, oc))
            ok, oc, n = np.empty(chunk, np.uint64), np.empty(chunk, np.uint32), 0
            continue
        moved = False
        if i == ka.size and ra:
            ka, ca = ra.pop(0)
            i, moved = 0, True
        if j == kb.size and rb:
            kb, cb = rb.pop(0)
            j, moved = 0, True
        if not moved:
            break
    if n:
        out.append((ok[:n].copy(), oc[:n].copy()))
    return out


def _merge(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Merge two single-array runs (sorted unique keys, uint32 counts) into one (tests and small states)."""
    run = _merge_runs([a], [b], max(1, a[0].size + b[0].size))
    return run[0] if run else (_EMPTY_K.copy(), _EMPTY_C.copy())


def _chunk_voxel_groups(chunks: list[tuple[np.ndarray, np.ndarray]]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """:func:`_voxel_groups` over a run stored in chunks: the entries of one world voxel (at most 256
    categories) may straddle two chunks; they are carried over so that no group splits a voxel."""
    sh = np.uint64(_CAT_BITS)
    carry: tuple[np.ndarray, np.ndarray] | None = None
    for k, c in chunks:
        if k.size == 0:
            continue
        s = 0
        if carry is not None:
            e = int(np.searchsorted(k, ((carry[0][0] >> sh) + np.uint64(1)) << sh, side="left"))
            if e == k.size:  # the whole chunk is still the carried voxel
                carry = (np.concatenate((carry[0], k)), np.concatenate((carry[1], c)))
                continue
            yield from _voxel_groups(np.concatenate((carry[0], k[:e])), np.concatenate((carry[1], c[:e])))
            carry, s = None, e
        cut = max(s, int(np.searchsorted(k, (k[-1] >> sh) << sh, side="left")))  # the last voxel may go on
        if cut > s:
            yield from _voxel_groups(k[s:cut], c[s:cut])
        carry = (k[cut:], c[cut:])
    if carry is not None:
        yield from _voxel_groups(*carry)


def _voxel_groups(keys: np.ndarray, counts: np.ndarray, chunk: int = 1 << 20) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """Yield (voxel ordinal within chunk per entry, category per entry, counts, n_voxels) in chunks that
    never split a world voxel."""
    n = keys.size
    s = 0
    while s < n:
        e = min(s + chunk, n)
        if e < n:  # extend to the end of the voxel at e - 1
            vox_end = keys[e - 1] >> np.uint64(_CAT_BITS)
            e = int(np.searchsorted(keys, (vox_end + np.uint64(1)) << np.uint64(_CAT_BITS), side="left"))
        k = keys[s:e]
        vox = k >> np.uint64(_CAT_BITS)
        new = np.concatenate(([True], vox[1:] != vox[:-1]))
        ordinal = np.cumsum(new) - 1
        yield ordinal, (k & np.uint64(0xFF)).astype(np.int64), counts[s:e].astype(np.int64), int(ordinal[-1]) + 1
        s = e


def _valid_mask(gt: np.ndarray, invalid: np.ndarray | None, protocol: Protocol) -> np.ndarray:
    valid = gt != protocol.ignore_index
    if invalid is not None:
        inv = np.asarray(invalid) != 0
        if inv.shape != GRID_SHAPE:
            raise FormatError(None, f"invalid mask of shape {GRID_SHAPE}", f"shape {inv.shape}")
        if protocol.invalid_policy == "mask-empty-only":
            inv &= gt == 0
        valid &= ~inv
    return valid


def _check_grid(a: np.ndarray, what: str, C: int, allow_ignore: bool) -> np.ndarray:
    a = np.asarray(a)
    if a.shape != GRID_SHAPE:
        raise FormatError(None, f"{what} of shape {GRID_SHAPE}", f"shape {a.shape}")
    if a.dtype.kind not in "ui":
        raise FormatError(None, f"integer train ids for the {what}", f"dtype {a.dtype}")
    return a


class CityMapMetric:
    """City-level static-class map metric (OccFiner Appendix B, Table 7).

    Labelling rule of each world voxel (ground-truth map and predicted map alike): every frame votes with
    each of its *evaluated* voxels (ground truth not ignore, not invalid: the SSC mask of that frame) for one
    category: 0 = "not static" (empty or a dynamic class) or one of the static classes. The map label is the
    category with the most votes; ties go to the lower category (so "not static" wins a tie, then the lower
    train id). The prediction votes only where that frame's ground truth is evaluated, so both maps cover
    the same world voxels. Maps are compared over every world voxel with at least one vote:
    IoU = static-occupied vs not (tp / (tp + fp + fn)); per-class IoU over the static classes with the
    protocol's epsilon; mIoU = mean over the static classes.

    Args:
        protocol: :class:`Protocol` or id.
        voxel_size: world voxel size in metres (default 0.2, the SSC voxel).
        buffer_items: observations buffered before a sort/reduce (memory/speed trade-off).
    """

    def __init__(self, protocol: Protocol | str = "semantickitti-ssc", voxel_size: float = VOXEL_SIZE, buffer_items: int = 1 << 23):
        self.protocol = get_protocol(protocol)
        self.voxel_size = float(voxel_size)
        if not self.voxel_size > 0:
            raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
        C = self.protocol.num_classes
        self.static_ids = self.protocol.static_ids
        S = len(self.static_ids)
        self.n_cat = S + 1
        if self.n_cat * self.n_cat > 256:
            raise ValueError("too many static classes for the 8-bit category field")
        cat = np.zeros(256, np.int64)
        cat[list(self.static_ids)] = np.arange(1, S + 1)
        self._cat = cat  # train id -> 0 (not static) / 1..S
        self._C = C
        self.counter = SparseCounter(buffer_items)
        self.n_frames = 0

    def add_frame(self, pred: np.ndarray, gt: np.ndarray, pose: np.ndarray, invalid: np.ndarray | None = None) -> None:
        """Add one frame: ``pred`` / ``gt`` train-id grids (gt 255 = ignore), ``pose`` 4x4 LiDAR -> world."""
        C = self._C
        pred = _check_grid(pred, "prediction", C, False)
        gt = _check_grid(gt, "ground truth", C, True)
        valid = _valid_mask(gt, invalid, self.protocol)
        idx = np.flatnonzero(valid)
        p = pred.reshape(-1)[idx]
        g = gt.reshape(-1)[idx]
        if p.size and (p.min() < 0 or p.max() >= C):
            bad = np.unique(p[(p < 0) | (p >= C)])[:10].tolist()
            raise FormatError(None, f"prediction train ids 0..{C - 1} at evaluated voxels", f"values {bad}")
        if g.size and g.max() >= C:
            raise FormatError(None, f"ground-truth train ids 0..{C - 1} or {self.protocol.ignore_index}", f"values {np.unique(g[g >= C])[:10].tolist()}")
        cat = (self._cat[g] * self.n_cat + self._cat[p]).astype(np.uint64)
        self.counter.add(world_keys(idx, pose, self.voxel_size) | cat)
        self.n_frames += 1

    def merge(self, other: "CityMapMetric") -> "CityMapMetric":
        if other.protocol != self.protocol or other.voxel_size != self.voxel_size:
            raise ValueError("cannot merge city maps of different protocols or voxel sizes")
        self.counter.merge(other.counter)
        self.n_frames += other.n_frames
        return self

    def maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(world voxel keys (uint64, >> 8 already applied), gt map category, pred map category) per voxel."""
        out_v, out_g, out_p = [], [], []
        last = None
        for k, _ in self.counter.chunks():
            vk = k >> np.uint64(_CAT_BITS)
            if vk.size:
                first = np.concatenate(([True], vk[1:] != vk[:-1]))
                if last is not None and vk[0] == last:  # a voxel straddling two chunks is listed once
                    first[0] = False
                out_v.append(vk[first])
                last = vk[-1]
        for g, p in self._map_labels():
            out_g.append(g)
            out_p.append(p)
        vox = np.concatenate(out_v) if out_v else np.zeros(0, np.uint64)
        if not out_g:
            return vox, np.zeros(0, np.int64), np.zeros(0, np.int64)
        return vox, np.concatenate(out_g), np.concatenate(out_p)

    def confusion(self) -> np.ndarray:
        """(S+1, S+1) int64 confusion of the two maps: rows = predicted map, cols = ground-truth map;
        index 0 = not static, 1..S = static classes in protocol order. Computed chunk by chunk (equal to
        the bincount of ``maps()``, without its per-voxel arrays)."""
        K = self.n_cat
        conf = np.zeros(K * K, np.int64)
        for g, p in self._map_labels():
            conf += np.bincount(p * K + g, minlength=K * K)
        return conf.reshape(K, K)

    def _map_labels(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Per group of world voxels (in key order): the ground-truth map's and the predicted map's category of
        each voxel, i.e. the majority of its votes (argmax: ties go to the lower category)."""
        K = self.n_cat
        for ordinal, cat, cnt, nv in _chunk_voxel_groups(self.counter.chunks()):
            gv = np.bincount(ordinal * K + cat // K, weights=cnt, minlength=nv * K).reshape(nv, K)
            pv = np.bincount(ordinal * K + cat % K, weights=cnt, minlength=nv * K).reshape(nv, K)
            yield gv.argmax(axis=1), pv.argmax(axis=1)

    def compute(self) -> dict[str, Any]:
        return city_scores(self.confusion(), self.protocol, self.n_frames, self.voxel_size)


def city_scores(conf: np.ndarray, protocol: Protocol, n_frames: int, voxel_size: float = VOXEL_SIZE) -> dict[str, Any]:
    """Scores of a city-map confusion (``CityMapMetric.confusion``); confusions of several sequences add up."""
    tp_c = np.diag(conf)
    fp_c = conf.sum(axis=1) - tp_c
    fn_c = conf.sum(axis=0) - tp_c
    iou_c = tp_c / (tp_c + fp_c + fn_c + protocol.iou_epsilon)
    tp, fp, fn = int(conf[1:, 1:].sum()), int(conf[1:, 0].sum()), int(conf[0, 1:].sum())
    names = protocol.static_classes
    return {
        "iou": tp / (tp + fp + fn) if tp + fp + fn else float("nan"),
        "miou": float(iou_c[1:].mean()),
        "per_class_iou": {n: float(v) for n, v in zip(names, iou_c[1:])},
        "n_map_voxels": int(conf.sum()),
        "n_static_gt": int(conf[:, 1:].sum()),
        "n_static_pred": int(conf[1:, :].sum()),
        "n_frames": int(n_frames),
        "voxel_size_m": voxel_size,
        "classes_averaged": list(names),
        "labelling_rule": "majority vote of per-frame categories (not-static or a static class) over the evaluated voxels of all frames; ties to the lower category",
    }


class TemporalConsistency:
    """Multi-view temporal consistency: how often a static world voxel seen by several frames gets the same
    label from each of them.

    Every frame voxel that is evaluated (ground truth not ignore / not invalid; all voxels when ``gt`` is
    None) is one observation of its world voxel, labelled with the frame's *predicted* train id (all C
    classes, empty included). A world voxel is *static* when its reference label is a static class: the
    majority ground-truth category of its observations (as :class:`CityMapMetric`), or, without ground truth,
    the majority predicted category. Over static world voxels with ``n_v >= 2`` observations:

    - ``pair_agreement`` = sum_v sum_l n_vl (n_vl - 1) / sum_v n_v (n_v - 1): the probability that two
      observations of the same static voxel (distinct frame voxels) carry the same predicted label;
    - ``modal_agreement`` = sum_v max_l n_vl / sum_v n_v;
    - ``all_agree`` = share of those voxels whose observations all agree;
    and ``pair_agreement`` per reference static class.
    """

    def __init__(self, protocol: Protocol | str = "semantickitti-ssc", voxel_size: float = VOXEL_SIZE, buffer_items: int = 1 << 23):
        self.protocol = get_protocol(protocol)
        self.voxel_size = float(voxel_size)
        C = self.protocol.num_classes
        S = len(self.protocol.static_ids)
        self.n_ref = S + 1
        if self.n_ref * C > 256:
            raise ValueError("too many classes for the 8-bit category field")
        cat = np.zeros(256, np.int64)
        cat[list(self.protocol.static_ids)] = np.arange(1, S + 1)
        self._cat = cat
        self._C = C
        self.counter = SparseCounter(buffer_items)
        self.n_frames = 0
        self._has_gt: bool | None = None

    def add_frame(self, pred: np.ndarray, gt: np.ndarray | None, pose: np.ndarray, invalid: np.ndarray | None = None) -> None:
        C = self._C
        pred = _check_grid(pred, "prediction", C, False)
        has_gt = gt is not None
        if self._has_gt is not None and has_gt != self._has_gt:
            raise ValueError("either every frame or no frame must come with ground truth")
        self._has_gt = has_gt
        if has_gt:
            gt = _check_grid(gt, "ground truth", C, True)
            idx = np.flatnonzero(_valid_mask(gt, invalid, self.protocol))
        else:
            idx = np.arange(pred.size)
        p = pred.reshape(-1)[idx]
        if p.size and (p.min() < 0 or p.max() >= C):
            raise FormatError(None, f"prediction train ids 0..{C - 1} at evaluated voxels", f"values {np.unique(p[(p < 0) | (p >= C)])[:10].tolist()}")
        ref = self._cat[gt.reshape(-1)[idx]] if has_gt else self._cat[p]
        cat = (ref * C + p).astype(np.uint64)
        self.counter.add(world_keys(idx, pose, self.voxel_size) | cat)
        self.n_frames += 1

    def merge(self, other: "TemporalConsistency") -> "TemporalConsistency":
        if other.protocol != self.protocol or other.voxel_size != self.voxel_size or (other._has_gt is not None and self._has_gt is not None and other._has_gt != self._has_gt):
            raise ValueError("cannot merge temporal-consistency states of different settings")
        self.counter.merge(other.counter)
        self.n_frames += other.n_frames
        self._has_gt = self._has_gt if self._has_gt is not None else other._has_gt
        return self

    def compute(self) -> dict[str, Any]:
        C, R = self._C, self.n_ref
        pairs_same = np.zeros(R)
        pairs_all = np.zeros(R)
        modal = obs = 0.0
        n_vox = all_agree = 0
        for ordinal, cat, cnt, nv in _chunk_voxel_groups(self.counter.chunks()):
            ref_votes = np.bincount(ordinal * R + cat // C, weights=cnt, minlength=nv * R).reshape(nv, R)
            ref = ref_votes.argmax(axis=1)
            keep = (ref > 0) & (ref_votes.sum(axis=1) >= 2)
            new_id = np.cumsum(keep) - 1
            nk = int(keep.sum())
            sel = keep[ordinal]
            lab = np.bincount(new_id[ordinal[sel]] * C + cat[sel] % C, weights=cnt[sel], minlength=nk * C).reshape(nk, C)
            n, ref = lab.sum(axis=1), ref[keep]
            same = (lab * (lab - 1)).sum(axis=1)
            tot = n * (n - 1)
            pairs_same += np.bincount(ref, weights=same, minlength=R)
            pairs_all += np.bincount(ref, weights=tot, minlength=R)
            mx = lab.max(axis=1)
            modal += float(mx.sum())
            obs += float(n.sum())
            n_vox += int(keep.sum())
            all_agree += int((mx == n).sum())
        names = self.protocol.static_classes
        total_same, total_all = pairs_same.sum(), pairs_all.sum()
        return {
            "pair_agreement": float(total_same / total_all) if total_all else float("nan"),
            "modal_agreement": float(modal / obs) if obs else float("nan"),
            "all_agree": float(all_agree / n_vox) if n_vox else float("nan"),
            "per_class_pair_agreement": {
                n: (float(pairs_same[i + 1] / pairs_all[i + 1]) if pairs_all[i + 1] else float("nan")) for i, n in enumerate(names)
            },
            "n_static_voxels": n_vox,
            "n_observations": int(obs),
            "n_frames": int(self.n_frames),
            "reference": "ground truth" if self._has_gt else "prediction majority",
            "voxel_size_m": self.voxel_size,
        }

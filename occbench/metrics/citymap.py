"""Sequence-level metrics in a global (world) voxel map: the city-level static map metric (OccFiner paper,
Appendix B, Table 7) and the multi-view temporal consistency metric.

Both share one sparse accumulator: every observation of a world voxel is a ``uint64``
``(world voxel key << 8) | category`` appended to a buffer; buffers are sorted and run-length reduced into
runs that are merged like an LSM tree, so memory holds one ``uint64`` key + one ``uint32`` count per distinct
(world voxel, category) pair and nothing per frame.

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


class SparseCounter:
    """Counts of uint64 items, streaming: ``add`` appends, runs are sorted/reduced and merged (LSM style)."""

    def __init__(self, buffer_items: int = 1 << 23):
        self.buffer_items = int(buffer_items)
        self._buf: list[np.ndarray] = []
        self._buf_n = 0
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted unique keys, uint32 counts)

    def add(self, items: np.ndarray) -> None:
        if items.size:
            self._buf.append(np.asarray(items, np.uint64))
            self._buf_n += items.size
            if self._buf_n >= self.buffer_items:
                self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        a = np.sort(np.concatenate(self._buf))
        self._buf, self._buf_n = [], 0
        self._runs.append(_reduce_sorted(a, np.ones(a.size, np.uint32)))
        while len(self._runs) >= 2 and self._runs[-1][0].size * 2 >= self._runs[-2][0].size:
            self._runs.append(_merge(self._runs.pop(), self._runs.pop()))

    def finalize(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted unique items, counts). Leaves the counter holding exactly that one run."""
        self._flush()
        while len(self._runs) >= 2:
            self._runs.append(_merge(self._runs.pop(), self._runs.pop()))
        if not self._runs:
            return np.zeros(0, np.uint64), np.zeros(0, np.uint32)
        return self._runs[0]

    def merge(self, other: "SparseCounter") -> None:
        k, c = other.finalize()
        self._flush()
        self._runs.append((k.copy(), c.copy()))
        self.finalize()

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + c.nbytes for k, c in self._runs) + sum(b.nbytes for b in self._buf)


def _reduce_sorted(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if keys.size == 0:
        return keys, counts.astype(np.uint32)
    start = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return keys[start], np.add.reduceat(counts.astype(np.uint64), start).astype(np.uint32)


def _merge(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    keys = np.concatenate((a[0], b[0]))
    counts = np.concatenate((a[1], b[1]))
    order = np.argsort(keys, kind="stable")  # two sorted runs: timsort merges them in linear time
    return _reduce_sorted(keys[order], counts[order])


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
        keys, counts = self.counter.finalize()
        K = self.n_cat
        out_g, out_p = [], []
        for ordinal, cat, cnt, nv in _voxel_groups(keys, counts):
            gv = np.bincount(ordinal * K + cat // K, weights=cnt, minlength=nv * K).reshape(nv, K)
            pv = np.bincount(ordinal * K + cat % K, weights=cnt, minlength=nv * K).reshape(nv, K)
            out_g.append(gv.argmax(axis=1))
            out_p.append(pv.argmax(axis=1))
        vk = keys >> np.uint64(_CAT_BITS)
        vox = vk[np.concatenate(([True], vk[1:] != vk[:-1]))] if vk.size else vk
        if not out_g:
            return vox, np.zeros(0, np.int64), np.zeros(0, np.int64)
        return vox, np.concatenate(out_g), np.concatenate(out_p)

    def confusion(self) -> np.ndarray:
        """(S+1, S+1) int64 confusion of the two maps: rows = predicted map, cols = ground-truth map;
        index 0 = not static, 1..S = static classes in protocol order."""
        _, g, p = self.maps()
        K = self.n_cat
        return np.bincount(p * K + g, minlength=K * K).reshape(K, K).astype(np.int64)

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
        keys, counts = self.counter.finalize()
        C, R = self._C, self.n_ref
        pairs_same = np.zeros(R)
        pairs_all = np.zeros(R)
        modal = obs = 0.0
        n_vox = all_agree = 0
        for ordinal, cat, cnt, nv in _voxel_groups(keys, counts):
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

"""Sequence-level metrics in a global (world) voxel map: the city-level static map metric (OccFiner paper,
Appendix B, Table 7) and the multi-view temporal consistency metric.

Both read one state, :class:`occbench.metrics.worldmap.WorldMapState`: per world voxel the number of evaluated
frame voxels that observed it, the histogram of their reference categories and the histogram of their predicted
labels, held in tiles while frames are added, sealed into sorted records (spilled to disk beyond a memory bound)
and reduced by a batched k-way merge; with the frames declared up front (:meth:`CityMapMetric.expect`) tiles are
reduced as soon as no pending frame can touch them. Memory and speed over a whole real sequence:
``benchmarks/citymap_memory.py`` and ``docs/performance.md``.

World voxel of a frame voxel (``forward mapping``): its centre ``c`` in the frame's LiDAR coordinates is moved
with the frame's LiDAR pose ``T`` (4x4, LiDAR -> world, ``occbench.io.kitti.read_poses``) and floored:
``key = floor((T @ c) / voxel_size)``. Each frame voxel is one observation; with rotated frames a world voxel
can receive two observations from one frame or none (nearest-neighbour resampling).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from occbench.errors import FormatError
from occbench.geometry import GRID_SHAPE, ORIGIN, VOXEL_SIZE
from occbench.metrics.protocol import Protocol, get_protocol
from occbench.metrics.worldmap import WorldMapState

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


def decode_world_keys(keys: np.ndarray) -> np.ndarray:
    """(N, 3) int64 world voxel indices of the keys returned by ``CityMapMetric.maps()``."""
    k = np.asarray(keys, np.uint64)
    bz, by, _ = _AXIS_BITS[2], _AXIS_BITS[1], _AXIS_BITS[0]
    z = (k & np.uint64((1 << bz) - 1)).astype(np.int64) - _OFFSETS[2]
    y = ((k >> np.uint64(bz)) & np.uint64((1 << by) - 1)).astype(np.int64) - _OFFSETS[1]
    x = (k >> np.uint64(bz + by)).astype(np.int64) - _OFFSETS[0]
    return np.stack([x, y, z], axis=1)


def _valid_mask(gt: np.ndarray, invalid: np.ndarray | None, protocol: Protocol) -> np.ndarray:
    valid = gt != protocol.ignore_index
    if invalid is not None:
        inv = np.asarray(invalid)
        if inv.dtype == np.uint8 and inv.shape == (gt.size // 8,):  # bit-packed, as stored
            inv = np.unpackbits(inv).reshape(GRID_SHAPE)
        inv = inv != 0
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


class _WorldMapMetric:
    """Common part of the two metrics: a :class:`WorldMapState` and the checks of a frame's arrays."""

    def __init__(self, protocol: Protocol | str, voxel_size: float, **state_options: Any):
        self.protocol = get_protocol(protocol)
        self.voxel_size = float(voxel_size)
        if not self.voxel_size > 0:
            raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
        self._C = self.protocol.num_classes
        self.state = WorldMapState(self.protocol, self.voxel_size, **state_options)

    @property
    def n_frames(self) -> int:
        return self.state.n_frames

    def expect(self, poses: np.ndarray, mine: np.ndarray | list[int] | None = None):
        """Declare the poses of every frame that will be added (see :meth:`WorldMapState.expect`): the map is then
        reduced tile by tile while frames are added, in memory bounded by the view, not by the drive."""
        self.state.expect(poses, mine)
        return self

    def _checked(self, pred: np.ndarray, gt: np.ndarray | None, invalid: np.ndarray | None,
                 check_gt: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 prediction and ground truth with the errors of the evaluated voxels raised (the state is not
        touched on error). Fast path: uint8 arrays whose values are all acceptable."""
        C = self._C
        pred = _check_grid(pred, "prediction", C, False)
        if gt is not None:
            gt = _check_grid(gt, "ground truth", C, True)
        fast = pred.dtype == np.uint8 and int(pred.max()) < C
        if gt is not None:
            fast = fast and gt.dtype == np.uint8 and (not check_gt or _ok_ground_truth(gt, C, self.protocol.ignore_index))
        if fast:
            return pred, gt
        valid = _valid_mask(gt, invalid, self.protocol) if gt is not None else np.ones(GRID_SHAPE, bool)
        p = pred[valid]
        if p.size and (p.min() < 0 or p.max() >= C):
            bad = np.unique(p[(p < 0) | (p >= C)])[:10].tolist()
            raise FormatError(None, f"prediction train ids 0..{C - 1} at evaluated voxels", f"values {bad}")
        pred = np.where(valid, pred, 0).astype(np.uint8)
        if gt is not None:
            g = gt[valid]
            if check_gt and g.size and g.max() >= C:
                raise FormatError(None, f"ground-truth train ids 0..{C - 1} or {self.protocol.ignore_index}", f"values {np.unique(g[g >= C])[:10].tolist()}")
            gt = np.where(valid, np.clip(gt, 0, 254), self.protocol.ignore_index).astype(np.uint8)
        return pred, gt


def _ok_ground_truth(gt: np.ndarray, C: int, ignore: int) -> bool:
    """No uint8 ground-truth value is outside ``0..C-1`` and ``ignore`` (cheap: a histogram of the values)."""
    counts = np.bincount(gt.reshape(-1), minlength=256)
    counts[ignore] = 0
    return not counts[C:].any()


class CityMapMetric(_WorldMapMetric):
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
        **state_options: passed to :class:`WorldMapState` (``spill_dir``, ``spill_bytes``, ``keep_frames``).
    """

    def __init__(self, protocol: Protocol | str = "semantickitti-ssc", voxel_size: float = VOXEL_SIZE, **state_options: Any):
        super().__init__(protocol, voxel_size, **state_options)
        self.static_ids = self.protocol.static_ids
        self.n_cat = len(self.static_ids) + 1
        if self.n_cat * self.n_cat > 256:
            raise ValueError("too many static classes")

    def add_frame(self, pred: np.ndarray, gt: np.ndarray, pose: np.ndarray, invalid: np.ndarray | None = None) -> None:
        """Add one frame: ``pred`` / ``gt`` train-id grids (gt 255 = ignore), ``pose`` 4x4 LiDAR -> world."""
        pred, gt = self._checked(pred, gt, invalid, check_gt=True)
        self.state.add(pred, gt, pose, invalid)

    def merge(self, other: "CityMapMetric") -> "CityMapMetric":
        if other.protocol != self.protocol or other.voxel_size != self.voxel_size:
            raise ValueError("cannot merge city maps of different protocols or voxel sizes")
        self.state.merge(other.state)
        return self

    def maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(world voxel keys (uint64, ``x << 35 | y << 14 | z`` with the axis offsets), gt map category, pred map
        category) per voxel, sorted by key. Needs every voxel: not available after :meth:`expect`."""
        r = self.state.reduce(want_maps=True)
        return r["keys"], r["g"], r["p"]

    def confusion(self) -> np.ndarray:
        """(S+1, S+1) int64 confusion of the two maps: rows = predicted map, cols = ground-truth map;
        index 0 = not static, 1..S = static classes in protocol order."""
        return self.state.reduce()["conf"].reshape(self.n_cat, self.n_cat)

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


class TemporalConsistency(_WorldMapMetric):
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

    def __init__(self, protocol: Protocol | str = "semantickitti-ssc", voxel_size: float = VOXEL_SIZE, **state_options: Any):
        super().__init__(protocol, voxel_size, **state_options)
        self.n_ref = len(self.protocol.static_ids) + 1
        self._has_gt: bool | None = None

    def add_frame(self, pred: np.ndarray, gt: np.ndarray | None, pose: np.ndarray, invalid: np.ndarray | None = None) -> None:
        has_gt = gt is not None
        if self._has_gt is not None and has_gt != self._has_gt:
            raise ValueError("either every frame or no frame must come with ground truth")
        pred, gt = self._checked(pred, gt, invalid if has_gt else None, check_gt=False)
        self._has_gt = has_gt
        self.state.add(pred, gt, pose, invalid if has_gt else None, lenient=True)

    def merge(self, other: "TemporalConsistency") -> "TemporalConsistency":
        if other.protocol != self.protocol or other.voxel_size != self.voxel_size or (other._has_gt is not None and self._has_gt is not None and other._has_gt != self._has_gt):
            raise ValueError("cannot merge temporal-consistency states of different settings")
        self.state.merge(other.state)
        self._has_gt = self._has_gt if self._has_gt is not None else other._has_gt
        return self

    def compute(self) -> dict[str, Any]:
        r = self.state.reduce()
        return consistency_scores(r["psame"], r["pall"], r["scal"], self.protocol, self.n_frames, bool(self._has_gt), self.voxel_size)


def consistency_scores(psame: np.ndarray, pall: np.ndarray, scal: np.ndarray, protocol: Protocol, n_frames: int,
                       has_gt: bool, voxel_size: float = VOXEL_SIZE) -> dict[str, Any]:
    """Scores of the consistency sums of :meth:`WorldMapState.reduce` (integers; sums of several sequences add up)."""
    same, tot = [int(x) for x in psame], [int(x) for x in pall]
    modal, obs, n_vox, all_agree = (int(x) for x in scal)
    total_same, total_all = sum(same), sum(tot)
    names = protocol.static_classes
    return {
        "pair_agreement": float(total_same / total_all) if total_all else float("nan"),
        "modal_agreement": float(modal / obs) if obs else float("nan"),
        "all_agree": float(all_agree / n_vox) if n_vox else float("nan"),
        "per_class_pair_agreement": {n: (float(same[i + 1] / tot[i + 1]) if tot[i + 1] else float("nan")) for i, n in enumerate(names)},
        "n_static_voxels": n_vox,
        "n_observations": obs,
        "n_frames": int(n_frames),
        "reference": "ground truth" if has_gt else "prediction majority",
        "voxel_size_m": voxel_size,
    }

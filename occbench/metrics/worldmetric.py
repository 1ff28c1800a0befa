"""The common part of the world-map metrics (:mod:`occbench.metrics.citymap`, :mod:`occbench.metrics.consistency`):
world voxel keys of frame voxels and :class:`WorldMapMetric`, a :class:`~occbench.metrics.worldmap.WorldMapState`
with the checks of a frame's arrays.

World voxel of a frame voxel (``forward mapping``): its centre ``c`` in the frame's LiDAR coordinates is moved
with the frame's LiDAR pose ``T`` (4x4, LiDAR -> world, ``occbench.io.kitti.read_poses``) and floored:
``key = floor((T @ c) / voxel_size)``. Each frame voxel is one observation; with rotated frames a world voxel
can receive two observations from one frame or none (nearest-neighbour resampling).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

from occbench.errors import FormatError
from occbench.grid import KITTI, Grid
from occbench.metrics.base import Metric
from occbench.metrics.frame import FrameArrays, as_frame_arrays
from occbench.metrics.protocol import EvalProtocol
from occbench.metrics.worldmap import WorldMapState

_AXIS_BITS = (21, 21, 14)  # x, y, z of the world voxel index
_OFFSETS = tuple(1 << (b - 1) for b in _AXIS_BITS)
_CAT_BITS = 8


def world_keys(flat_idx: np.ndarray, pose: np.ndarray, voxel_size: float, grid: Grid = KITTI) -> np.ndarray:
    """Packed world voxel keys (uint64, already shifted left by 8 bits) of frame voxels of ``grid`` given by flat
    index."""
    pose = np.asarray(pose, np.float64)
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise FormatError(None, "a finite 4x4 LiDAR pose", f"shape {pose.shape}")
    idx = np.asarray(flat_idx, np.int64)
    R, t = pose[:3, :3], pose[:3, 3]
    # world = R @ (origin + size (ijk + 0.5)) + t, per axis on the integer indices (no (N, 3) temporaries)
    _, ny, nz = grid.shape
    fi = (idx // (ny * nz)).astype(np.float64)
    fj = ((idx // nz) % ny).astype(np.float64)
    fk = (idx % nz).astype(np.float64)
    base = R @ (np.asarray(grid.origin, np.float64) + 0.5 * grid.voxel_size) + t
    A = grid.voxel_size * R / voxel_size
    key = np.zeros(idx.size, np.uint64)
    shift = _CAT_BITS
    for d in (2, 1, 0):
        wd = np.floor(base[d] / voxel_size + A[d, 0] * fi + A[d, 1] * fj + A[d, 2] * fk).astype(np.int64)
        v = wd + _OFFSETS[d]
        if v.size and (v.min() < 0 or v.max() >= (1 << _AXIS_BITS[d])):
            raise FormatError(
                None, f"world voxel indices within +-{_OFFSETS[d]} on axis {'xyz'[d]}", "a pose too far from the origin"
            )
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


def _valid_mask(gt: np.ndarray, invalid: np.ndarray | None, protocol: EvalProtocol) -> np.ndarray:
    shape = protocol.grid.shape
    valid = gt != protocol.ignore_index
    if invalid is not None:
        inv = np.asarray(invalid)
        if inv.dtype == np.uint8 and inv.shape == (gt.size // 8,):  # bit-packed, as stored
            inv = np.unpackbits(inv).reshape(shape)
        inv = inv != 0
        if inv.shape != shape:
            raise FormatError(None, f"invalid mask of shape {shape}", f"shape {inv.shape}")
        if protocol.invalid_policy == "mask-empty-only":
            inv &= gt == 0
        valid &= ~inv
    return valid


def _check_grid(a: np.ndarray, what: str, shape: tuple[int, int, int]) -> np.ndarray:
    a = np.asarray(a)
    if a.shape != shape:
        raise FormatError(None, f"{what} of shape {shape}", f"shape {a.shape}")
    if a.dtype.kind not in "ui":
        raise FormatError(None, f"integer train ids for the {what}", f"dtype {a.dtype}")
    return a


class WorldMapMetric(Metric):
    """Common part of the two metrics: a :class:`WorldMapState` and the checks of a frame's arrays.

    The state is the world map (:class:`WorldMapState`: integer sums and per-voxel records, in tiles, merged by
    its own exact reduction), not declared states: merging adds the maps, states travel by pickle, and there is
    no ``state_dict``."""

    _add_frame: Callable[..., None]  # each metric's own: (pred, gt, pose, invalid=None)

    def __init__(self, protocol: EvalProtocol | str, voxel_size: float, **state_options: Any):
        super().__init__(protocol)
        self.voxel_size = float(voxel_size)
        if not self.voxel_size > 0:
            raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
        self._C = self.protocol.num_classes
        self._state_options = dict(state_options)
        self.state = WorldMapState(self.protocol, self.voxel_size, **state_options)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "voxel_size": self.voxel_size}

    def merge(self, other: Any) -> Any:
        """Add ``other``'s world map (of the same protocol and voxel size) into this one; returns self."""
        super().merge(other)
        self.state.merge(other.state)
        return self

    def reset(self) -> None:
        super().reset()
        self.state = WorldMapState(self.protocol, self.voxel_size, **self._state_options)

    def _empty_like(self) -> Any:
        return type(self)(self.protocol, self.voxel_size, **self._state_options)

    def copy(self) -> Any:
        return pickle.loads(pickle.dumps(self))  # the map's records come back in memory: nothing is shared

    def state_dict(self) -> dict[str, Any]:
        raise TypeError(f"{type(self).__name__}: the world map state has no state_dict (it travels by pickle)")

    @classmethod
    def scores_of_maps(
        cls, sums: dict[str, dict[str, Any]], frames: dict[str, int], protocol: EvalProtocol
    ) -> dict[str, Any]:
        """The results entries of the world maps of a split's sequences, given as their sums
        (:meth:`WorldMapState.reduce`) and frame counts by sequence name: how ``occbench evaluate``, which keeps
        one world map state for every world-map metric, scores this one."""
        raise NotImplementedError(f"{cls.__name__} does not score world map sums")

    def load_state_dict(self, d: dict[str, Any]) -> Any:
        raise TypeError(f"{type(self).__name__}: the world map state has no state_dict (it travels by pickle)")

    @property
    def n_frames(self) -> int:
        return self.state.n_frames

    def update_frame(self, pred: np.ndarray, frame: FrameArrays) -> None:
        """Add one frame: ``pred`` (train ids) against ``frame`` (:class:`~occbench.metrics.FrameArrays`: its
        train-id ground truth, optional invalid mask, and its pose, which places it in the world map)."""
        frame = as_frame_arrays(frame)
        if frame.labels != "train":
            raise ValueError(f"{type(self).__name__} takes train ids: frame {frame.name or '(unnamed)'} holds raw ids")
        self._add_frame(pred, frame.ground_truth, frame.require_pose(type(self).__name__), frame.invalid)

    def expect(self, poses: np.ndarray, mine: np.ndarray | list[int] | None = None):
        """Declare the poses of every frame that will be added (see :meth:`WorldMapState.expect`): the map is then
        reduced tile by tile while frames are added, in memory bounded by the view, not by the drive."""
        self.state.expect(poses, mine)
        return self

    def _checked(
        self, pred: np.ndarray, gt: np.ndarray | None, invalid: np.ndarray | None, check_gt: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 prediction and ground truth with the errors of the evaluated voxels raised (the state is not
        touched on error). Fast path: uint8 arrays whose values are all acceptable."""
        C = self._C
        shape = self.protocol.grid.shape
        pred = _check_grid(pred, "prediction", shape)
        if gt is not None:
            gt = _check_grid(gt, "ground truth", shape)
        fast = pred.dtype == np.uint8 and int(pred.max()) < C
        if gt is not None:
            fast = (
                fast and gt.dtype == np.uint8 and (not check_gt or _ok_ground_truth(gt, C, self.protocol.ignore_index))
            )
        if fast:
            return pred, gt
        valid = _valid_mask(gt, invalid, self.protocol) if gt is not None else np.ones(shape, bool)
        p = pred[valid]
        if p.size and (p.min() < 0 or p.max() >= C):
            bad = np.unique(p[(p < 0) | (p >= C)])[:10].tolist()
            raise FormatError(None, f"prediction train ids 0..{C - 1} at evaluated voxels", f"values {bad}")
        pred = np.where(valid, pred, 0).astype(np.uint8)
        if gt is not None:
            g = gt[valid]
            if check_gt and g.size and g.max() >= C:
                raise FormatError(
                    None,
                    f"ground-truth train ids 0..{C - 1} or {self.protocol.ignore_index}",
                    f"values {np.unique(g[g >= C])[:10].tolist()}",
                )
            gt = np.where(valid, np.clip(gt, 0, 254), self.protocol.ignore_index).astype(np.uint8)
        return pred, gt


def _ok_ground_truth(gt: np.ndarray, C: int, ignore: int) -> bool:
    """No uint8 ground-truth value is outside ``0..C-1`` and ``ignore`` (cheap: a histogram of the values)."""
    counts = np.bincount(gt.reshape(-1), minlength=256)
    counts[ignore] = 0
    return not counts[C:].any()

"""Sensor-aware voting weights (OccFiner eqs. 10-12) and the vote decision rule.

Weights depend only on a voxel's position in its own scan's LiDAR frame, so one weight grid serves
every source scan of a sequence (one calibration per sequence).
"""

from __future__ import annotations

import numpy as np

from occbench.geometry import ORIGIN, grid_centres
from occbench.io.kitti import Calibration

from .config import SensorWeights, VotingConfig, VotingConfigError


def frustum_mask(points: np.ndarray, calib: Calibration, image_size: tuple[int, int]) -> np.ndarray:
    """Eq. 10: True where a LiDAR-frame point (N, 3) has depth > 0 and projects into the image.

    Projection as MonoScene ``vox2pix``: camera-2 frame ``T_cam2_velo @ p``, pixel ``K2 @ p_cam / z``,
    inside iff ``0 <= u < W`` and ``0 <= v < H`` (``image_size = (W, H)``).
    """
    p = np.asarray(points, np.float64).reshape(-1, 3)
    T = calib.T_cam2_velo
    cam = p @ T[:3, :3].T + T[:3, 3]
    z = cam[:, 2]
    K = calib.K2
    with np.errstate(divide="ignore", invalid="ignore"):
        uvw = cam @ K.T
        u = uvw[:, 0] / z
        v = uvw[:, 1] / z
    W, H = image_size
    return (z > 0) & (u >= 0) & (u < W) & (v >= 0) & (v < H)


def box_mask(points: np.ndarray, box: tuple[float, float, float]) -> np.ndarray:
    """Box B of eq. 11 in the LiDAR frame: ``x in [0, bx)``, ``y in [-by/2, by/2)``, ``z in [z0, z0+bz)``."""
    p = np.asarray(points, np.float64).reshape(-1, 3)
    bx, by, bz = box
    z0 = float(ORIGIN[2])
    return (
        (p[:, 0] >= 0)
        & (p[:, 0] < bx)
        & (p[:, 1] >= -by / 2)
        & (p[:, 1] < by / 2)
        & (p[:, 2] >= z0)
        & (p[:, 2] < z0 + bz)
    )


def camera_weights(points: np.ndarray, calib: Calibration, sw: SensorWeights) -> np.ndarray:
    """Eq. 11: ``w_high`` in frustum and box, ``w_med`` in frustum outside the box, ``w_low`` otherwise."""
    f = frustum_mask(points, calib, sw.image_size)
    b = box_mask(points, sw.box)
    return np.where(f & b, sw.w_high, np.where(f, sw.w_med, sw.w_low)).astype(np.float64)


def lidar_weights(points: np.ndarray, sw: SensorWeights) -> np.ndarray:
    """Eq. 12: ``w_max - (w_max - w_min) * r / R`` with ``r / R`` clipped to [0, 1]."""
    r = np.linalg.norm(np.asarray(points, np.float64).reshape(-1, 3), axis=1)
    return sw.w_max - (sw.w_max - sw.w_min) * np.minimum(r / sw.max_range, 1.0)


def sensor_weights(points: np.ndarray, calib: Calibration | None, sw: SensorWeights) -> np.ndarray:
    """Float weights of LiDAR-frame points for ``sw.kind``."""
    p = np.asarray(points, np.float64).reshape(-1, 3)
    if sw.kind == "none":
        return np.ones(len(p))
    if sw.kind == "camera":
        if calib is None:
            raise VotingConfigError("camera weights need the sequence calibration (P2, Tr)")
        return camera_weights(p, calib, sw)
    return lidar_weights(p, sw)


def quantize(w: np.ndarray, quantum: float) -> np.ndarray:
    """Weights as int64 multiples of ``quantum`` (exact, order-independent sums)."""
    q = np.rint(np.asarray(w, np.float64) / quantum).astype(np.int64)
    lost = (np.asarray(w) > 0) & (q == 0)
    if lost.any():
        raise VotingConfigError(
            f"a weight of {float(np.asarray(w)[lost].min()):g} rounds to 0 with weight_quantum={quantum:g}; "
            "lower the quantum"
        )
    return q


def weight_grids(cfg: VotingConfig, calib: Calibration | None) -> tuple[np.ndarray, np.ndarray]:
    """Integer vote weights of every source voxel: ``(occupied (X,Y,Z) int64, empty (X,Y,Z) int64)``.

    The empty grid is ``round(w * empty_weight / quantum)``, all zero when empty does not vote.
    """
    c = grid_centres(cfg.grid_shape).reshape(-1, 3)
    w = sensor_weights(c, calib, cfg.weights)
    occ = quantize(w, cfg.weight_quantum).reshape(cfg.grid_shape)
    if cfg.empty_votes:
        emp = quantize(w * cfg.empty_weight, cfg.weight_quantum).reshape(cfg.grid_shape)
    else:
        emp = np.zeros(cfg.grid_shape, np.int64)
    return occ, emp


def vote_weights(cfg: VotingConfig, calib: Calibration | None) -> tuple[np.ndarray, np.ndarray, type]:
    """:func:`weight_grids` flattened to ``(X*Y*Z,)`` in the vote dtype of an engine, and that dtype: int32 when the
    largest possible vote sum of a cell fits (window scans x at most 27 voxel centres of one scan per cell x the
    largest weight), else int64."""
    w_occ, w_emp = weight_grids(cfg, calib)
    bound = (2 * cfg.n + 1) * 27 * int(max(w_occ.max(initial=0), w_emp.max(initial=0)))
    dtype = np.int32 if bound < 2**31 - 1 else np.int64
    return w_occ.reshape(-1).astype(dtype), w_emp.reshape(-1).astype(dtype), dtype


def decide_labels(votes: np.ndarray, empty_policy: str) -> np.ndarray:
    """Labels (M,) uint8 from integer votes (M, C) (column 0 = empty votes); ties -> lowest id."""
    votes = np.asarray(votes)
    if empty_policy == "vote":
        return np.argmax(votes, axis=1).astype(np.uint8)
    occ_votes = votes[:, 1:]
    label = np.argmax(occ_votes, axis=1).astype(np.uint8) + 1
    total = occ_votes.sum(axis=1)
    occupied = total > votes[:, 0] if empty_policy == "occupancy" else total > 0
    return np.where(occupied, label, 0).astype(np.uint8)

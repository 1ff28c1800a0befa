"""The SSC voxel grid and the pose algebra used everywhere.

Grid (:data:`occbench.grid.KITTI`; SemanticKITTI v1.1 / VoxFormer / MonoScene): 256 x 256 x 32 voxels of 0.2 m in
the LiDAR frame of the scan; origin ``(0, -25.6, -2.0)``; voxel ``(i, j, k)`` covers
``x in [0.2 i, 0.2 i + 0.2)``, ``y in [-25.6 + 0.2 j, ...)``, ``z in [-2 + 0.2 k, ...)``.
x forward, y left, z up. Centres are ``origin + 0.2 (idx + 0.5)``.
"""

from __future__ import annotations

import numpy as np

from occbench.grid import KITTI

VOXEL_SIZE: float = KITTI.voxel_size
ORIGIN: np.ndarray = np.array(KITTI.origin)
ORIGIN.flags.writeable = False

# Range crops of the VoxFormer/OccFiner protocol, as index slices [x, y] (all z).
RANGE_SLICES: dict[float, tuple[slice, slice]] = {r: KITTI.range_slices(r) for r in KITTI.ranges}


def voxel_centres(idx: np.ndarray, origin: np.ndarray = ORIGIN, size: float = VOXEL_SIZE) -> np.ndarray:
    """Centres (N, 3) float64 of voxel indices (N, 3)."""
    return origin + size * (np.asarray(idx, np.float64) + 0.5)


def grid_centres(shape: tuple[int, int, int] = KITTI.shape) -> np.ndarray:
    """Centres of every voxel as (X, Y, Z, 3) float64 array."""
    axes = [ORIGIN[d] + VOXEL_SIZE * (np.arange(shape[d]) + 0.5) for d in range(3)]
    gx, gy, gz = np.meshgrid(*axes, indexing="ij")
    return np.stack([gx, gy, gz], axis=-1)


def voxelize(points: np.ndarray, shape: tuple[int, int, int] = KITTI.shape) -> tuple[np.ndarray, np.ndarray]:
    """Voxel indices of points (voxelizer rule ``floor((p - origin) / 0.2)``).

    Returns ``(idx (N, 3) int64, inside (N,) bool)``; indices of points outside the grid are
    meaningless and must be dropped with ``inside``.
    """
    idx = np.floor((np.asarray(points) - ORIGIN) / VOXEL_SIZE).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.asarray(shape)), axis=1)
    return idx, inside


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 rigid transform to (N, 3) points."""
    T = np.asarray(T)
    return points @ T[:3, :3].T + T[:3, 3]


def relative_transform(poses: np.ndarray, src: int, dst: int) -> np.ndarray:
    """4x4 transform taking points of frame ``src`` into frame ``dst``: ``inv(T_dst) @ T_src``."""
    return np.linalg.inv(poses[dst]) @ poses[src]

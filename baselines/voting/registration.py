"""The arithmetic of registration (OccFiner eqs. 7-8 and the voxelisation of eq. 9), fixed to the last bit.

A source voxel ``(i, j, k)`` of scan ``s`` is devoxelised to its centre ``ORIGIN + 0.2 (idx + 0.5)`` (eq. 7 with
centres, see ``docs/baselines/voting.md``), moved into the frame of scan ``t`` with ``T = inv(T_t) @ T_s``
(eq. 8) and voxelised with ``floor((p - ORIGIN) / 0.2)``. In voxel units of the destination grid that is the
affine map ``q = R (idx + 0.5) + (R ORIGIN + t - ORIGIN) / 0.2``. Every implementation (the reference, the exact
engine's numba kernels and its torch twin, on CPU or CUDA) evaluates it the same way, so that floors, and hence
labels, agree bit for bit:

* ``P, c = affine(T, shape)`` are computed once per (source, destination) pair, in float64, by this module
  (numpy elementwise operations, no BLAS reduction): ``P[d, i, j] = (i R[d,0] + b[d]) + j R[d,1]`` and
  ``c[d, k] = k R[d,2]`` with ``b = R @ (ORIGIN / 0.2 + 0.5) + (t - ORIGIN) / 0.2``;
* per voxel a single float64 addition and a floor: ``cell[d] = floor(P[d, i, j] + c[d, k])``. One IEEE
  addition is correctly rounded on every platform (no fused multiply-add can change it), so the cell does not
  depend on the implementation.

``floor(P[d, i, j] + c[d, k])`` is monotonic in ``k`` (``c[d, k]`` is a rounded product with a constant, and
rounded addition and floor are monotonic), which the exact engine uses to treat whole source columns at once.
"""
from __future__ import annotations

import numpy as np

from occbench.geometry import ORIGIN, VOXEL_SIZE


def pair_transform(poses: np.ndarray, src: int, dst: int) -> np.ndarray:
    """4x4 float64 transform of scan ``src``'s LiDAR frame into scan ``dst``'s: ``inv(T_dst) @ T_src``."""
    return np.linalg.inv(poses[dst]) @ poses[src]


def affine(T: np.ndarray, shape: tuple[int, int, int], out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(P (3, X, Y), c (3, Z))`` float64: voxel ``(i, j, k)`` lands in cell ``floor(P[:, i, j] + c[:, k])``.

    ``out``: a (3, X, Y) float64 array to write ``P`` into (the same values)."""
    T = np.asarray(T, np.float64)
    R, t = T[:3, :3], T[:3, 3]
    org = np.asarray(ORIGIN, np.float64)
    b = R @ (org / VOXEL_SIZE + 0.5) + (t - org) / VOXEL_SIZE
    X, Y, Z = shape
    i = np.arange(X, dtype=np.float64)
    j = np.arange(Y, dtype=np.float64)
    k = np.arange(Z, dtype=np.float64)
    P = np.add(i[None, :, None] * R[:, 0, None, None] + b[:, None, None], j[None, None, :] * R[:, 1, None, None], out=out)
    c = k[None, :] * R[:, 2, None]
    return np.ascontiguousarray(P), np.ascontiguousarray(c)


def cells(P: np.ndarray, c: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(N, 3) int64 destination cells of source voxel indices ``idx`` (N, 3) (not clipped to the grid)."""
    idx = np.asarray(idx, np.int64)
    i, j, k = idx[:, 0], idx[:, 1], idx[:, 2]
    return np.stack([np.floor(P[d, i, j] + c[d, k]) for d in range(3)], axis=1).astype(np.int64)


def inside(cell: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(N,) bool: which cells (N, 3) lie in the grid."""
    return np.all((cell >= 0) & (cell < np.asarray(shape)), axis=1)

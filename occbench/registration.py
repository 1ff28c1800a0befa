"""Registration: the arithmetic that moves voxels of one scan's grid into another's, fixed to the last bit.

Every part of occbench that brings one scan's voxels into another scan's frame does it with this module: the
voting engines (OccFiner eqs. 7-9, Average Fusion) and :mod:`occbench.windows`. A voxel ``(i, j, k)`` of the
grid of scan ``a`` is taken to its centre ``origin + size (idx + 0.5)``, moved into the frame of scan ``b`` with
the 4x4 transform ``T = inv(T_b) @ T_a`` (:func:`pair_transform`) and voxelised in ``b``'s grid with
``floor((p - origin) / size)``. In voxel units of the destination grid that is the affine map
``q = R (idx + 0.5) + (R origin + t - origin) / size``, evaluated as follows by every implementation (numpy,
the numba kernels, the voting engines' torch code on CPU or CUDA), so that floors, and hence labels, agree bit
for bit:

* ``P, c = affine(T, shape)`` are computed once per (source, destination) pair, in float64, by numpy
  elementwise operations (no BLAS reduction): ``P[d, i, j] = (i R[d,0] + b[d]) + j R[d,1]`` and
  ``c[d, k] = k R[d,2]`` with ``b = R @ (origin / size + 0.5) + (t - origin) / size``;
* per voxel a single float64 addition and a floor: ``cell[d] = floor(P[d, i, j] + c[d, k])``. One IEEE
  addition is correctly rounded on every platform (no fused multiply-add can change it), so the cell does not
  depend on the implementation.

``floor(P[d, i, j] + c[d, k])`` is monotonic in ``k`` (``c[d, k]`` is a rounded product with a constant, and
rounded addition and floor are monotonic), which the voting engine uses to treat whole source columns at once.

With centres, the identity maps every voxel onto itself; with the corners that OccFiner's eq. 7 writes, rounding
moves about a fifth of the grid into a neighbouring cell (``docs/baselines/voting.md``).

The grid (origin, voxel size) is :data:`occbench.grid.KITTI` unless a :class:`~occbench.grid.Grid` is given;
the compiled kernels (numba, ``cell_key``, ``warp_backward``, ``warp_forward``) are re-exported here, ``None``
where numba is not installed (``KERNELS``: whether it is).
"""

from __future__ import annotations

import numpy as np

from occbench import _registration_kernels as _k
from occbench.grid import KITTI, Grid

cell_key = _k.cell_key
warp_backward = _k.warp_backward
warp_forward = _k.warp_forward
KERNELS: bool = _k.AVAILABLE


def pair_transform(poses: np.ndarray, src: int, dst: int) -> np.ndarray:
    """4x4 float64 transform of scan ``src``'s LiDAR frame into scan ``dst``'s: ``inv(T_dst) @ T_src``."""
    return np.linalg.inv(poses[dst]) @ poses[src]


def affine(
    T: np.ndarray, shape: tuple[int, int, int], out: np.ndarray | None = None, *, grid: Grid = KITTI
) -> tuple[np.ndarray, np.ndarray]:
    """``(P (3, X, Y), c (3, Z))`` float64: voxel ``(i, j, k)`` lands in cell ``floor(P[:, i, j] + c[:, k])``.

    ``T``: the 4x4 transform from the source grid's frame into the destination grid's; ``shape``: the source
    grid's shape (the destination grid is the same grid in the other scan's frame); ``grid``: origin and voxel
    size (the KITTI grid by default); ``out``: a (3, X, Y) float64 array to write ``P`` into (the same values)."""
    T = np.asarray(T, np.float64)
    R, t = T[:3, :3], T[:3, 3]
    org = np.asarray(grid.origin, np.float64)
    size = grid.voxel_size
    b = R @ (org / size + 0.5) + (t - org) / size
    X, Y, Z = shape
    i = np.arange(X, dtype=np.float64)
    j = np.arange(Y, dtype=np.float64)
    k = np.arange(Z, dtype=np.float64)
    P = np.add(
        i[None, :, None] * R[:, 0, None, None] + b[:, None, None], j[None, None, :] * R[:, 1, None, None], out=out
    )
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


__all__ = ["KERNELS", "affine", "cell_key", "cells", "inside", "pair_transform", "warp_backward", "warp_forward"]

"""Compiled (numba) registration kernels: one float64 addition and a floor per voxel and axis.

Voxel ``(i, j, k)`` of a grid lands in cell ``floor(P[d, i, j] + c[d, k])`` of the other grid, per axis ``d``
(``P, c`` from :func:`occbench.registration.affine`), exactly the sum and floor that the numpy reference and the
voting engines' torch code evaluate, so every implementation gives the same cells.

* ``cell_key``: the flat key of the cell that holds one voxel, in a dense box of cells starting at ``lo`` with
  strides ``(s0, s1, 1)`` (inlined into the callers; the voting engines' lattice kernels use it).
* ``warp_backward``: dense gather. Every voxel of the output grid reads the source voxel that holds its centre
  (``P, c`` built from the output scan's frame into the source scan's), or ``fill`` where that lies outside the
  source grid.
* ``warp_forward``: sparse scatter. The destination cells of a list of source voxels (flat indices), -1 for those
  that land outside the destination grid.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# numba's dispatchers are typed loosely (a call's signature is only known once compiled): Any
njit: Any
try:  # numba is a declared dependency; without it occbench uses numpy code paths
    from occbench._numba_startup import prepare

    prepare()  # numba imported without yaml and scipy; cached kernels load without its registries (see there)
    from numba import njit
except ImportError:  # pragma: no cover - exercised only where numba is missing
    njit = None


def cell_key(p0, p1, p2, c, k, lo0, lo1, lo2, s0, s1):  # pragma: no cover - compiled below
    """Flat key of the map cell that holds source voxel ``k`` of the column with affine terms ``p0, p1, p2``."""
    return (
        (np.int64(np.floor(p0 + c[0, k])) - lo0) * s0
        + (np.int64(np.floor(p1 + c[1, k])) - lo1) * s1
        + np.int64(np.floor(p2 + c[2, k]))
        - lo2
    )


def _warp_backward_py(P, c, src, fill, out, valid):  # pragma: no cover - compiled below
    """``out[i, j, k] = src[cell]`` with ``cell = floor(P[:, i, j] + c[:, k])`` where the cell lies in ``src``
    (``valid`` True), else ``fill`` (``valid`` False). Returns the number of valid voxels.

    ``src`` (X', Y', Z') uint8 C-contiguous; ``out`` (X, Y, Z) uint8 and ``valid`` (X, Y, Z) bool with
    ``X, Y = P.shape[1:]`` and ``Z = c.shape[1]``. A column whose two end voxels read the same source column
    (x, y) needs only z per voxel (x and y are monotonic in ``k``, hence constant along it)."""
    X = P.shape[1]
    Y = P.shape[2]
    Z = c.shape[1]
    SX = src.shape[0]
    SY = src.shape[1]
    SZ = src.shape[2]
    last = Z - 1
    n = 0
    for i in range(X):
        for j in range(Y):
            p0 = P[0, i, j]
            p1 = P[1, i, j]
            p2 = P[2, i, j]
            xa = math.floor(p0 + c[0, 0])
            xb = math.floor(p0 + c[0, last])
            ya = math.floor(p1 + c[1, 0])
            yb = math.floor(p1 + c[1, last])
            if xa == xb and ya == yb:
                if xa < 0 or xa >= SX or ya < 0 or ya >= SY:
                    for k in range(Z):
                        out[i, j, k] = fill
                        valid[i, j, k] = False
                    continue
                for k in range(Z):
                    z = math.floor(p2 + c[2, k])
                    if z >= 0 and z < SZ:
                        out[i, j, k] = src[xa, ya, z]
                        valid[i, j, k] = True
                        n += 1
                    else:
                        out[i, j, k] = fill
                        valid[i, j, k] = False
            else:
                for k in range(Z):
                    x = math.floor(p0 + c[0, k])
                    y = math.floor(p1 + c[1, k])
                    z = math.floor(p2 + c[2, k])
                    if x >= 0 and x < SX and y >= 0 and y < SY and z >= 0 and z < SZ:
                        out[i, j, k] = src[x, y, z]
                        valid[i, j, k] = True
                        n += 1
                    else:
                        out[i, j, k] = fill
                        valid[i, j, k] = False
    return n


def _warp_forward_py(P, c, idx, dshape, out):  # pragma: no cover - compiled below
    """``out[e]``: the flat index ``(x * DY + y) * DZ + z`` in a grid of shape ``dshape`` of the cell that holds
    source voxel ``idx[e]`` (a flat index ``(i * Y + j) * Z + k`` of the source grid, ``Y = P.shape[2]``,
    ``Z = c.shape[1]``), or -1 where that cell lies outside. Returns the number of voxels inside."""
    Y = P.shape[2]
    Z = c.shape[1]
    DX = dshape[0]
    DY = dshape[1]
    DZ = dshape[2]
    n = 0
    for e in range(idx.shape[0]):
        v = idx[e]
        k = v % Z
        ij = v // Z
        j = ij % Y
        i = ij // Y
        x = math.floor(P[0, i, j] + c[0, k])
        y = math.floor(P[1, i, j] + c[1, k])
        z = math.floor(P[2, i, j] + c[2, k])
        if x >= 0 and x < DX and y >= 0 and y < DY and z >= 0 and z < DZ:
            out[e] = (x * DY + y) * DZ + z
            n += 1
        else:
            out[e] = -1
    return n


warp_backward: Any = None  # the compiled kernels, None without numba
warp_forward: Any = None
if njit is not None:
    cell_key = njit(cache=True, nogil=True, boundscheck=False, inline="always")(cell_key)
    _jit = njit(cache=True, nogil=True, boundscheck=False)
    warp_backward = _jit(_warp_backward_py)
    warp_forward = _jit(_warp_forward_py)

AVAILABLE = warp_backward is not None

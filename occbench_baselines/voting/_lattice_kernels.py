"""Compiled (numba) CPU kernels of the lattice voting engine (approximate).

The torch code of ``lattice.py`` is their twin.

Each kernel makes one pass over a scan's voxels. The world cell of source voxel ``(i, j, k)`` is
``floor(P[d, i, j] + c[d, k])`` per axis ``d`` (float64; ``P`` and ``c`` come from the scan's pose, see
``occbench.registration.affine``), exactly the sum and floor that the torch twin evaluates, so both give the same
cells. Cells are addressed by ``key = (cx - lo0) * s0 + (cy - lo1) * s1 + (cz - lo2)`` in the engine's
dense local map (``cov``: empty votes per cell; ``c2r``: row of the cell's occupied votes in ``rows``). Why numba:
the vectorised torch version needs ~10 full passes over 2 M voxels plus a scatter per scan; one compiled pass is 3-4x
faster on one CPU core (numbers in docs/baselines/voting.md).
"""

from __future__ import annotations

from typing import Any

from occbench.registration import cell_key  # the registration kernel, shared with occbench.windows

from ._decide_kernel import row_label

# numba's dispatchers are typed loosely (a call's signature is only known once compiled): Any
njit: Any
try:  # numba is a declared dependency; without it the engine uses its torch code path
    from numba import njit
except ImportError:  # pragma: no cover - exercised only where numba is missing
    njit = None


def _coverage_py(P, c, lo, s0, s1, w, occ, cov, sign):  # pragma: no cover - compiled below
    """``cov[cell] += sign * w[v]`` for every empty source voxel ``v`` (the empty votes).

    ``occ``: ascending flat indices of the scan's occupied voxels, which are skipped.
    """
    X = P.shape[1]
    Y = P.shape[2]
    Z = c.shape[1]
    lo0 = lo[0]
    lo1 = lo[1]
    lo2 = lo[2]
    p = 0
    nocc = occ.shape[0]
    nxt = occ[0] if nocc > 0 else -1
    for i in range(X):
        for j in range(Y):
            p0 = P[0, i, j]
            p1 = P[1, i, j]
            p2 = P[2, i, j]
            base = (i * Y + j) * Z
            for k in range(Z):
                v = base + k
                if v == nxt:
                    p += 1
                    nxt = occ[p] if p < nocc else -1
                    continue
                wv = w[v]
                if wv == 0:
                    continue
                key = cell_key(p0, p1, p2, c, k, lo0, lo1, lo2, s0, s1)
                cov[key] += sign * wv


def _occupied_py(idx, cls, P, c, lo, s0, s1, w_occ, c2r, rows, top, sign):  # pragma: no cover - compiled below
    """Add (``sign=1``) or remove (``sign=-1``) the occupied votes ``(idx[e], cls[e])`` of one scan.

    ``c2r[key]``: row of the cell in ``rows`` (-1: none). Row columns: 0 = number of entries (occupied
    source voxels) in the cell, ``k >= 1`` = votes of class ``k``. A cell's first entry takes row
    ``top[0]`` (bump allocation: rows of cells first seen together, by one scan, stay together in
    memory); when its last entry is removed the cell lets go of the row (its votes are then all 0),
    which the engine's compaction squeezes out. Returns -1 if the rows ran out (the caller sizes them
    so that this cannot happen), else 0.
    """
    Y = P.shape[2]
    Z = c.shape[1]
    cap = rows.shape[0]
    lo0 = lo[0]
    lo1 = lo[1]
    lo2 = lo[2]
    nt = top[0]
    for e in range(idx.shape[0]):
        v = idx[e]
        k = v % Z
        ij = v // Z
        j = ij % Y
        i = ij // Y
        key = cell_key(P[0, i, j], P[1, i, j], P[2, i, j], c, k, lo0, lo1, lo2, s0, s1)
        r = c2r[key]
        if r < 0:
            if nt == cap:
                top[0] = nt
                return -1
            r = nt
            nt += 1
            c2r[key] = r
        rows[r, 0] += sign
        rows[r, cls[e]] += sign * w_occ[v]
        if sign < 0 and rows[r, 0] == 0:
            c2r[key] = -1
    top[0] = nt
    return 0


def _read_py(P, c, lo, s0, s1, cov, has_cov, c2r, rows, policy, out):  # pragma: no cover - compiled below
    """Labels of a target: every voxel reads the world cell holding its centre and decides.

    ``policy``: 0 vote (argmax over empty and classes), 1 occupancy, 2 ignore; ties -> lowest id.
    """
    X = P.shape[1]
    Y = P.shape[2]
    Z = c.shape[1]
    lo0 = lo[0]
    lo1 = lo[1]
    lo2 = lo[2]
    for i in range(X):
        for j in range(Y):
            p0 = P[0, i, j]
            p1 = P[1, i, j]
            p2 = P[2, i, j]
            base = (i * Y + j) * Z
            for k in range(Z):
                key = cell_key(p0, p1, p2, c, k, lo0, lo1, lo2, s0, s1)
                r = c2r[key]
                if r < 0:
                    out[base + k] = 0
                    continue
                out[base + k] = row_label(rows, r, cov[key] if has_cov else 0, policy)


def _keys_py(P, c, lo, s0, s1, out):  # pragma: no cover - compiled below
    """Map keys of every voxel's world cell (``votes()``)."""
    X = P.shape[1]
    Y = P.shape[2]
    Z = c.shape[1]
    for i in range(X):
        for j in range(Y):
            base = (i * Y + j) * Z
            for k in range(Z):
                out[base + k] = cell_key(P[0, i, j], P[1, i, j], P[2, i, j], c, k, lo[0], lo[1], lo[2], s0, s1)


# the compiled kernels, None without numba
coverage: Any = None
occupied: Any = None
read: Any = None
keys: Any = None
if njit is not None:
    _jit = njit(cache=True, nogil=True, boundscheck=False)
    coverage = _jit(_coverage_py)
    occupied = _jit(_occupied_py)
    read = _jit(_read_py)
    keys = _jit(_keys_py)

AVAILABLE = coverage is not None

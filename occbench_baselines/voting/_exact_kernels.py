"""Compiled (numba) CPU kernels of the exact voting engine (``exact.py``; its torch code is their twin).

A source voxel ``(i, j, k)`` lands in destination cell ``floor(P[d, i, j] + c[d, k])`` per axis ``d``
(``occbench.registration.affine``: one float64 addition and a floor, exactly what the reference evaluates). Cells are
addressed by their flat index ``(x * Y + y) * Z + z`` in the destination grid, which has the source grid's shape.

* ``coverage``: the empty-vote weight of *every* source voxel that lands in the grid, summed per cell. Empty
  votes are counted implicitly: a cell's empty votes are its coverage minus the empty-vote weights of the
  occupied source voxels that landed in it (column 0 of its row). The destination cell is monotonic in ``k``
  along a source column (``occbench.registration``), so a column whose two end voxels fall in the same destination
  column (x, y) is treated as one: only z is computed per voxel; columns whose two ends leave the grid on
  the same side are skipped.
* ``occupied``: each occupied source voxel adds its class weight to its cell's row (column ``cls``) and its
  empty-vote weight to column 0; a cell's first vote takes the next free row (``vox[row]`` = the cell). The
  occupied voxels come by source column (CSR), so that a column's ``P`` is read once and no flat index is
  divided.
* ``decide``: the labels of the cells that have a row (every other cell is empty under every policy).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._decide_kernel import row_label

# numba's dispatchers are typed loosely (a call's signature is only known once compiled): Any
njit: Any
try:  # numba is a declared dependency; without it the engine uses its torch code path
    from numba import njit
except ImportError:  # pragma: no cover - exercised only where numba is missing
    njit = None


def _column_bins_py(P, c, colptr, shift, nslab):  # pragma: no cover - compiled below
    """Source columns by destination slab (``x >> shift``): ``(cov_off, cov_cols, occ_off, occ_cols)``.

    Slab ``b``'s columns are ``cov_cols[cov_off[b]:cov_off[b + 1]]`` (every column that lands in it, for the
    coverage) and ``occ_cols[occ_off[b]:occ_off[b + 1]]`` (those with occupied voxels); column ``(i, j)``
    is listed as ``(i << 16) | j`` (decoded without a division). A column's destination x (and y, z) is monotonic
    in ``k``, so its two end voxels bound it: columns that leave the grid are dropped and a column that crosses slabs is
    listed in each.
    """
    X = P.shape[1]
    Y = P.shape[2]
    Z = c.shape[1]
    last = Z - 1
    lo = np.empty(X * Y, np.int64)
    hi = np.empty(X * Y, np.int64)
    cov_off = np.zeros(nslab + 1, np.int64)
    occ_off = np.zeros(nslab + 1, np.int64)
    for i in range(X):
        for j in range(Y):
            col = i * Y + j
            lo[col] = 1
            hi[col] = 0
            p0 = P[0, i, j]
            xa = math.floor(p0 + c[0, 0])
            xb = math.floor(p0 + c[0, last])
            if (xa < 0 and xb < 0) or (xa >= X and xb >= X):
                continue
            ya = math.floor(P[1, i, j] + c[1, 0])
            yb = math.floor(P[1, i, j] + c[1, last])
            if (ya < 0 and yb < 0) or (ya >= Y and yb >= Y):
                continue
            za = math.floor(P[2, i, j] + c[2, 0])
            zb = math.floor(P[2, i, j] + c[2, last])
            if (za < 0 and zb < 0) or (za >= Z and zb >= Z):
                continue
            s0 = max(min(xa, xb), 0) >> shift
            s1 = min(max(xa, xb), X - 1) >> shift
            lo[col] = s0
            hi[col] = s1
            occ = colptr[col + 1] > colptr[col]
            for b in range(s0, s1 + 1):
                cov_off[b + 1] += 1
                if occ:
                    occ_off[b + 1] += 1
    for b in range(nslab):
        cov_off[b + 1] += cov_off[b]
        occ_off[b + 1] += occ_off[b]
    cov_cols = np.empty(cov_off[nslab], np.int32)
    occ_cols = np.empty(occ_off[nslab], np.int32)
    cpos = cov_off[:nslab].copy()
    opos = occ_off[:nslab].copy()
    for i in range(X):
        for j in range(Y):
            col = i * Y + j
            occ = colptr[col + 1] > colptr[col]
            code = (i << 16) | j
            for b in range(lo[col], hi[col] + 1):
                cov_cols[cpos[b]] = code
                cpos[b] += 1
                if occ:
                    occ_cols[opos[b]] = code
                    opos[b] += 1
    return cov_off, cov_cols, occ_off, occ_cols


def _first_at_least(p2, c2, g, lo, last):  # pragma: no cover - compiled below
    """Smallest ``k`` with ``floor(p2 + c2[k]) >= lo``, for ``z`` non-decreasing in ``k`` and ``z(last) >= lo``;
    ``g`` is a guess (walked from, so any guess is correct; a good one makes it O(1))."""
    if math.floor(p2 + c2[g]) >= lo:
        while g > 0 and math.floor(p2 + c2[g - 1]) >= lo:
            g -= 1
    else:
        while math.floor(p2 + c2[g]) < lo:
            g += 1
    return g


def _last_at_most(p2, c2, g, hi, last):  # pragma: no cover - compiled below
    """Largest ``k`` with ``floor(p2 + c2[k]) <= hi``, for ``z`` non-decreasing in ``k`` and ``z(0) <= hi``."""
    if math.floor(p2 + c2[g]) <= hi:
        while g < last and math.floor(p2 + c2[g + 1]) <= hi:
            g += 1
    else:
        while math.floor(p2 + c2[g]) > hi:
            g -= 1
    return g


def _coverage_slab(b, shift, cols, P, c, w, wconst, zlo, zhi, cov):  # pragma: no cover - compiled below
    """``cov[cell] += w[v]`` (or ``wconst`` when ``w`` is empty) for the source voxels ``v`` of the columns
    ``cols`` landing in slab ``b`` (destination ``x >> shift == b``), at least for every cell that has a row.

    A column that lands in one destination column ``(x, y)`` is only walked over the heights ``k`` whose
    destination z lies in ``[zlo[x * Y + y], zhi[x * Y + y]]``, the z range of that column's cells with a row
    (cells outside it are empty under every policy, so their coverage is never read); z is monotonic in ``k``,
    so that range of ``k`` is contiguous and found from a guess in a few steps.
    """
    X = P.shape[1]
    Y = P.shape[2]
    Z = c.shape[1]
    last = Z - 1
    const = w.shape[0] == 0
    x_lo = b << shift
    x_hi = min(x_lo + (1 << shift), X)
    c2 = c[2]
    for e in range(cols.shape[0]):
        i = cols[e] >> 16
        j = cols[e] & 0xFFFF
        col = i * Y + j
        p0 = P[0, i, j]
        p1 = P[1, i, j]
        p2 = P[2, i, j]
        xa = math.floor(p0 + c[0, 0])
        xb = math.floor(p0 + c[0, last])
        ya = math.floor(p1 + c[1, 0])
        yb = math.floor(p1 + c[1, last])
        src = col * Z
        if xa == xb and ya == yb:  # the whole column lands in one destination column (inside this slab)
            dcol = xa * Y + ya
            lo = zlo[dcol]
            hi = zhi[dcol]
            za = math.floor(p2 + c2[0])
            zb = math.floor(p2 + c2[last])
            if za <= zb:  # z non-decreasing in k (or constant)
                if hi < za or lo > zb:
                    continue
                ka = 0 if lo <= za else _first_at_least(p2, c2, min(lo - za, last), lo, last)
                kb = last if hi >= zb else _last_at_most(p2, c2, max(last - (zb - hi), 0), hi, last)
            else:  # z decreasing in k: walk every k (such poses are not driving poses)
                ka = 0
                kb = last
            base = dcol * Z
            for k in range(ka, kb + 1):
                z = math.floor(p2 + c2[k])
                if z >= 0 and z < Z:
                    cov[base + z] += wconst if const else w[src + k]
        else:
            for k in range(Z):
                x = math.floor(p0 + c[0, k])
                y = math.floor(p1 + c[1, k])
                z = math.floor(p2 + c2[k])
                if x >= x_lo and x < x_hi and y >= 0 and y < Y and z >= 0 and z < Z:
                    cov[(x * Y + y) * Z + z] += wconst if const else w[src + k]


def _zrange_py(vox, top, Z, zlo, zhi):  # pragma: no cover - compiled below
    """Per destination column, the z range of its cells with a row (``zlo > zhi``: none)."""
    zlo.fill(Z)
    zhi.fill(-1)
    for r in range(top):
        cell = vox[r]
        col = cell // Z
        z = cell - col * Z
        if z < zlo[col]:
            zlo[col] = z
        if z > zhi[col]:
            zhi[col] = z


def _occupied_slab(
    b, shift, cols, colptr, ks, cls, w_occ, w_emp, P, c, c2r, rows, vox, top
):  # pragma: no cover - compiled below
    """Add the occupied votes of the columns ``cols`` of one source that land in slab ``b``.

    The source's occupied voxels are stored by column (CSR): the entries of column ``col`` are
    ``colptr[col] .. colptr[col + 1]`` with height ``ks[e]`` and class ``cls[e]``; the voxel's class weight and
    empty-vote weight are ``w_occ`` and ``w_emp`` at its flat index ``col * Z + ks[e]`` (the weight grids, shared by
    every source). ``c2r[cell]``: the cell's row in ``rows`` (-1: none yet); a new cell takes row
    ``top`` (zeroed here) and ``vox[row] = cell``. The caller guarantees room for every entry as a new row.
    Returns the new top.
    """
    X = P.shape[1]
    Y = P.shape[2]
    Z = c.shape[1]
    C = rows.shape[1]
    x_lo = b << shift
    x_hi = min(x_lo + (1 << shift), X)
    for q in range(cols.shape[0]):
        i = cols[q] >> 16
        j = cols[q] & 0xFFFF
        col = i * Y + j
        p0 = P[0, i, j]
        p1 = P[1, i, j]
        p2 = P[2, i, j]
        for e in range(colptr[col], colptr[col + 1]):
            k = ks[e]
            x = math.floor(p0 + c[0, k])
            if x < x_lo or x >= x_hi:
                continue
            y = math.floor(p1 + c[1, k])
            z = math.floor(p2 + c[2, k])
            if y < 0 or y >= Y or z < 0 or z >= Z:
                continue
            cell = (x * Y + y) * Z + z
            r = c2r[cell]
            if r < 0:
                r = top
                top += 1
                c2r[cell] = r
                vox[r] = cell
                for m in range(C):
                    rows[r, m] = 0
            rows[r, 0] += w_emp[col * Z + k]
            rows[r, cls[e]] += w_occ[col * Z + k]
    return top


def _occupied_py(shift, Ps, cs, off, cols, colptr, ks, cls, w_occ, w_emp, c2r, rows, vox, top):  # pragma: no cover
    """The occupied votes of every source ``m`` of the window (``Ps[m]``, ``cs[m]``, lists of its arrays; ``off``
    (m, nslab + 1) and ``cols[m]``: its columns by slab; ``w_occ``, ``w_emp``: the weight grids), slab by slab, so
    that the rows of a slab stay in cache while every source adds to them. Returns the new top."""
    nslab = off.shape[1] - 1
    for b in range(nslab):
        for m in range(Ps.shape[0]):
            if off[m, b + 1] > off[m, b]:
                top = _occupied_slab(
                    b,
                    shift,
                    cols[m][off[m, b] : off[m, b + 1]],
                    colptr[m],
                    ks[m],
                    cls[m],
                    w_occ,
                    w_emp,
                    Ps[m],
                    cs[m],
                    c2r,
                    rows,
                    vox,
                    top,
                )
    return top


def _coverage_py(shift, Ps, cs, off, cols, w, wconst, zlo, zhi, cov):  # pragma: no cover - compiled below
    """The coverage of every source of the window, slab by slab (arguments as ``_occupied_py``)."""
    nslab = off.shape[1] - 1
    for b in range(nslab):
        for m in range(Ps.shape[0]):
            if off[m, b + 1] > off[m, b]:
                _coverage_slab(b, shift, cols[m][off[m, b] : off[m, b + 1]], Ps[m], cs[m], w, wconst, zlo, zhi, cov)


def _source_py(g, Z, colptr, ks, cls):  # pragma: no cover - compiled below
    """A source scan's occupied voxels by column (CSR) from its flat grid ``g``: per column its entries' heights and
    classes (their weights are read from the weight grids when they vote); returns their number."""
    n = 0
    ncol = colptr.shape[0] - 1
    for col in range(ncol):
        colptr[col] = n
        base = col * Z
        for k in range(Z):
            v = g[base + k]
            if v != 0:
                ks[n] = k
                cls[n] = v
                n += 1
    colptr[ncol] = n
    return n


def _decide_py(cov, has_cov, rows, vox, top, policy, out):  # pragma: no cover - compiled below
    """Labels of the cells with a row. ``policy``: 0 vote (argmax over empty and classes), 1 occupancy, 2 ignore.

    Empty votes of a cell: ``cov[cell] - rows[r, 0]``. Ties go to the lowest train id (empty first).
    """
    for r in range(top):
        cell = vox[r]
        out[cell] = row_label(rows, r, cov[cell] - rows[r, 0] if has_cov else 0, policy)


def _release_py(c2r, vox, top):  # pragma: no cover - compiled below
    """Forget the rows of the last target (``c2r`` back to -1 for its cells)."""
    for r in range(top):
        c2r[vox[r]] = -1


# the compiled kernels, None without numba
column_bins: Any = None
coverage: Any = None
occupied: Any = None
decide: Any = None
release: Any = None
source: Any = None
zrange: Any = None
if njit is not None:
    _jit = njit(cache=True, nogil=True, boundscheck=False)
    column_bins = _jit(_column_bins_py)
    source = _jit(_source_py)
    _first_at_least = _jit(_first_at_least)
    _last_at_most = _jit(_last_at_most)
    zrange = _jit(_zrange_py)
    _coverage_slab = _jit(_coverage_slab)
    _occupied_slab = _jit(_occupied_slab)
    coverage = _jit(_coverage_py)
    occupied = _jit(_occupied_py)
    decide = _jit(_decide_py)
    release = _jit(_release_py)

AVAILABLE = coverage is not None

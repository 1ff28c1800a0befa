"""Compiled kernels (numba) of the world-voxel map state of :mod:`occbench.metrics.worldmap`.

World voxel of a frame voxel ``(i, j, k)`` on axis ``d``: ``floor(((c0 + ai * i) + aj * j) + ak * k)`` with the
coefficients of :func:`occbench.metrics.worldmap.pose_coefficients` (the same float operations, in the same
order, as :func:`occbench.metrics.worldmetric.world_keys`), plus the axis offset (``OFFSETS``), so that indices are
non-negative: x and y in 21 bits, z in 14.

Tiles: 8 x 8 x 8 world voxels (``tx = x >> 3`` ...), key ``tx << 29 | ty << 11 | tz``; voxel ``l`` of a tile is
``(x & 7) << 6 | (y & 7) << 3 | (z & 7)`` (counting into them measured 5-50 % faster than into 4 x 4 x 32,
4 x 4 x 64, 8 x 8 x 16, 8 x 8 x 32 or 16 x 16 x 8 tiles). Live tiles sit in a pool (``t_n``: observations per voxel;
``t_head`` / ``t_tail`` / ``t_fill``: the tile's log, chunks of ``LOGC`` entries linked by ``l_next``, the last one
filled to ``t_fill``), found through a direct-mapped table of ``2**tb`` tiles a side, wrapping around
(:func:`table_bits`: wider than any frame's footprint; ``64 x 64 x 64`` on KITTI's grid, whose footprint spans 47
tiles at most along any axis). Frames are ``nx x ny x nz`` voxels (the protocol's grid, ``nz`` at most 64), flat
index ``(i * ny + j) * nz + k``.

A tile's log holds one uint32 entry per observation with a non-zero reference category or label:
``l << 14 | r << 7 | label``. It is folded into histogram rows (per voxel, the counts of reference categories
``1..S`` then of predicted labels ``1..C-1``; those of category 0 and label 0 are ``n`` minus the others) only when
the tile is finalised or sealed, in a scratch table that stays in cache. Appending keeps the lines a frame touches
few (the tail of each tile's log), where incrementing a row per voxel touched one line per voxel, last touched a
frame earlier. A supertile is 64 x 64 world voxels (12.8 m at 0.2 m), all heights: key ``(x >> 6) << 15 | y >> 6``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from occbench.metrics._kernel import (
    INV_BYTES,
    INV_NONE,
    INV_PACKED,
    _column_bits,
    copy_items,
    zeros_int32_2d,
    zeros_int64,
)

# numba's dispatchers are typed loosely (a call's signature is only known once compiled): Any
njit: Any
try:
    from numba import njit  # (numba's start-up: see occbench.metrics._kernel, imported above)
except ImportError:  # pragma: no cover
    njit = None

OFFSETS = (1 << 20, 1 << 20, 1 << 13)
AXIS_BITS = (21, 21, 14)
XB, YB, ZB = 3, 3, 3  # log2 of the tile's size along x, y, z
TILE_VOXELS = 1 << (XB + YB + ZB)
LOGC = 256  # entries of a chunk of a tile's log (1 KB)
LOG_FREE = 64  # free chunks the counting pass keeps in hand: one a voxel of a column (nz <= 64)
KZ = 14 - ZB  # bits of tz in a key
KY = 21 - YB  # bits of ty
TXB = 6  # log2 of the table's smallest size in tiles along each axis (table_bits)
TABLE_SIZE = 1 << (3 * TXB)  # its slots
AB = 4  # log2 of the side, in columns, of the blocks of columns accumulate() visits one after the other
BI, BJ, BK = 4, 4, 32  # frame sub-blocks whose world bounding boxes make up a frame's footprint
# prepare / accumulate status codes
OK, NEED_TILES, CONFLICT, OUT_OF_RANGE, NEED_CHUNKS, MISMATCH, TOO_WIDE = 0, 1, 2, 3, 4, 5, 6
_MARGIN = 1e-6  # voxels: the footprint's bounding boxes are widened by this much against rounding

__all__ = ["INV_BYTES", "INV_NONE", "INV_PACKED", "OFFSETS", "AXIS_BITS", "TILE_VOXELS", "LOGC", "TABLE_SIZE"]


def _slot(tx, ty, tz, tb):  # pragma: no cover - compiled
    """Slot of tile ``(tx, ty, tz)`` in a table of ``2**tb`` tiles along each axis."""
    m = (1 << tb) - 1
    return ((tx & m) << (2 * tb)) | ((ty & m) << tb) | (tz & m)


def _key_slot(key, tb):  # pragma: no cover - compiled
    return _slot(key >> (KY + KZ), (key >> KZ) & ((1 << KY) - 1), key & ((1 << KZ) - 1), tb)


def table_bits(shape, frame_voxel, voxel_size):
    """log2 of the table's side in tiles (at least ``TXB``): wider than the footprint of a frame of ``shape``
    voxels of ``frame_voxel`` metres in any orientation (its diagonal) in world tiles of ``voxel_size``, plus
    two tiles of rounding. 6 (64 tiles) on KITTI's grid at 0.2 m: a footprint spans 47 tiles at most."""
    diag = math.sqrt(sum((n * frame_voxel) ** 2 for n in shape)) / voxel_size
    tiles = math.ceil(diag / (1 << min(XB, YB, ZB))) + 2
    return max(TXB, math.ceil(math.log2(tiles)))


def _block_range(coef, d, i0, j0, k0, ni, nj, nk):  # pragma: no cover - compiled
    """Smallest and largest world voxel index (offset added) on axis ``d`` of frame voxels
    ``[i0, i0 + ni) x [j0, j0 + nj) x [k0, k0 + nk)``, widened by ``_MARGIN``."""
    c0, ai, aj, ak = coef[d, 0], coef[d, 1], coef[d, 2], coef[d, 3]
    lo = c0 + min(ai * i0, ai * (i0 + ni - 1)) + min(aj * j0, aj * (j0 + nj - 1)) + min(ak * k0, ak * (k0 + nk - 1))
    hi = c0 + max(ai * i0, ai * (i0 + ni - 1)) + max(aj * j0, aj * (j0 + nj - 1)) + max(ak * k0, ak * (k0 + nk - 1))
    off = 1 << 20 if d < 2 else 1 << 13
    return math.floor(lo - _MARGIN) + off, math.floor(hi + _MARGIN) + off


def _in_range(lo, hi, d):  # pragma: no cover - compiled
    return lo >= 0 and hi < (1 << (21 if d < 2 else 14))


def _block_box(coef, bi, bj, bk, nx, ny, nz):  # pragma: no cover - compiled
    """World index ranges (offsets added, widened by ``_MARGIN``) of the frame's sub-block ``(bi, bj, bk)`` of
    ``BI x BJ x BK`` voxels (fewer at the far edges of an ``nx x ny x nz`` grid): ``(ok, xl, xh, yl, yh, zl, zh)``,
    ``ok`` False when a range leaves the key's bits."""
    ni, nj, nk = min(BI, nx - bi * BI), min(BJ, ny - bj * BJ), min(BK, nz - bk * BK)
    xl, xh = _block_range(coef, 0, bi * BI, bj * BJ, bk * BK, ni, nj, nk)
    yl, yh = _block_range(coef, 1, bi * BI, bj * BJ, bk * BK, ni, nj, nk)
    zl, zh = _block_range(coef, 2, bi * BI, bj * BJ, bk * BK, ni, nj, nk)
    ok = _in_range(xl, xh, 0) and _in_range(yl, yh, 1) and _in_range(zl, zh, 2)
    return ok, xl, xh, yl, yh, zl, zh


def _column_bits_any(inv, inv_mode, col, nz):  # pragma: no cover - compiled
    """Invalid flags of the ``nz`` (at most 64) voxels of column ``col``: bit ``nz - 1 - k`` = voxel
    ``nz * col + k`` (packed: bit ``7 - (v & 7)`` of byte ``v >> 3``, MSB first, as stored)."""
    out = np.uint64(0)
    if inv_mode == INV_NONE:
        return out
    for k in range(nz):
        v = col * nz + k
        if inv_mode == INV_PACKED:
            b = (inv[v >> 3] >> (7 - (v & 7))) & 1
        else:
            b = 1 if inv[v] != 0 else 0
        out = (out << np.uint64(1)) | np.uint64(b)
    return out


def _sup_index(sup_keys, key):  # pragma: no cover - compiled
    """Index of ``key`` in the sorted ``sup_keys``, or -1 (a binary search written out: ``np.searchsorted`` would
    make the cached kernel import ``numba.np.arraymath`` each time it is loaded, see occbench._numba_startup)."""
    lo, hi = 0, sup_keys.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if sup_keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    if lo < sup_keys.size and sup_keys[lo] == key:
        return lo
    return -1


def _frame_supertiles(coef, nx, ny, nz, out):  # pragma: no cover - compiled
    """Supertile keys a frame of ``nx x ny x nz`` voxels may touch (its footprint, from sub-blocks) into ``out``;
    returns how many (with repeats), or -1 if a voxel index leaves the key's range."""
    n = 0
    for bi in range(-(-nx // BI)):
        for bj in range(-(-ny // BJ)):
            for bk in range(-(-nz // BK)):
                ok, xl, xh, yl, yh, zl, zh = _block_box(coef, bi, bj, bk, nx, ny, nz)
                if not ok:
                    return -1
                for sx in range(xl >> 6, (xh >> 6) + 1):
                    for sy in range(yl >> 6, (yh >> 6) + 1):
                        key = (sx << 15) | sy
                        if n > 0 and out[n - 1] == key:
                            continue
                        if n == out.size:
                            return -2
                        out[n] = key
                        n += 1
    return n


def _prepare(
    coef,
    nx,
    ny,
    nz,
    tb,
    frame_no,
    max_frames,
    max_obs,
    tab_key,
    tab_tile,
    t_key,
    t_last,
    t_frames,
    t_n,
    t_sup,
    t_hasrec,
    free_t,
    ttop,
    sup_keys,
    recorded,
    conflicts,
):  # pragma: no cover - compiled
    """Make every tile the frame may touch live before its voxels are counted: found in the table (touched: its
    ``t_last`` = ``frame_no``, ``t_frames`` + 1 once per frame), else allocated from the free stack. Returns
    ``(status, n_conflicts)`` (a new tile's ``t_hasrec``: whether ``recorded``, the key set of sealed tiles, has it):
    ``NEED_TILES`` (the pool is empty: grow it and call again), ``CONFLICT`` (``conflicts`` lists live tiles to
    evict first: another tile holding a needed slot, or a tile whose counts (uint8 or uint16) could overflow with one
    more frame; more than ``conflicts`` holds are listed by the call after), ``OUT_OF_RANGE``,
    ``TOO_WIDE`` (a slot is needed by two tiles of this frame: the table, ``2**tb`` tiles a side, is narrower than
    the footprint) or ``OK``. A listed tile is marked (``t_last`` = -1) and not listed again: the caller seals the
    listed tiles whatever the status, then calls again (after growing the pool, for ``NEED_TILES``).

    Overflow: a frame adds at most ``max_obs`` to a count, so a tile's counts stay at most ``t_frames * max_obs``,
    and ``t_frames <= max_frames`` keeps them within their dtype. A tile at ``max_frames`` is not sealed at once: its
    ``t_frames`` is first re-based on its largest count (``ceil(max / max_obs)``, which keeps that bound), and only a
    tile still at ``max_frames`` is listed (see :func:`_rebased`)."""
    nconf = 0
    status = 0
    for bi in range(-(-nx // BI)):
        for bj in range(-(-ny // BJ)):
            for bk in range(-(-nz // BK)):
                ok, xl, xh, yl, yh, zl, zh = _block_box(coef, bi, bj, bk, nx, ny, nz)
                if not ok:
                    return 3, nconf
                for tx in range(xl >> XB, (xh >> XB) + 1):
                    for ty in range(yl >> YB, (yh >> YB) + 1):
                        for tz in range(zl >> ZB, (zh >> ZB) + 1):
                            key = (tx << (KY + KZ)) | (ty << KZ) | tz
                            slot = _slot(tx, ty, tz, tb)
                            k0 = tab_key[slot]
                            if k0 == key:
                                ti = tab_tile[slot]
                                if t_last[ti] != frame_no and t_last[ti] != -1:  # -1: listed already
                                    if t_frames[ti] >= max_frames:
                                        t_frames[ti] = _rebased(t_n, ti, max_obs)
                                    if t_frames[ti] >= max_frames:  # one more frame could overflow its counts
                                        if nconf < conflicts.size:  # else listed by the call after the seal
                                            t_last[ti] = -1
                                            conflicts[nconf] = ti
                                            nconf += 1
                                        status = 2
                                    else:
                                        t_last[ti] = frame_no
                                        t_frames[ti] += 1
                            elif k0 < 0:
                                if ttop[0] == 0:
                                    return 1, nconf
                                ttop[0] -= 1
                                ti = free_t[ttop[0]]
                                t_key[ti] = key
                                tab_key[slot] = key
                                tab_tile[slot] = ti
                                t_last[ti] = frame_no
                                t_frames[ti] = 1
                                t_sup[ti] = _sup_index(sup_keys, ((tx >> (6 - XB)) << 15) | (ty >> (6 - YB)))
                                t_hasrec[ti] = _keyset_has(recorded, key)
                            else:
                                ti = tab_tile[slot]
                                if t_last[ti] == frame_no:
                                    return 6, nconf
                                if t_last[ti] != -1 and nconf < conflicts.size:  # -1: listed already
                                    t_last[ti] = -1
                                    conflicts[nconf] = ti
                                    nconf += 1
                                status = 2
    return status, nconf


def _rebased(t_n, ti, max_obs):  # pragma: no cover - compiled
    """Frames' worth of counts tile ``ti`` holds: ``ceil(max / max_obs)`` of its largest count (at most its
    ``t_frames``, as every frame adds at most ``max_obs`` to a count). Standing still, a voxel seen once a frame
    reaches the dtype's largest count (255 for uint8) after that many frames, not after ``max_frames``."""
    m = 0
    for li in range(TILE_VOXELS):
        m = max(m, np.int64(t_n[ti, li]))
    return (m + max_obs - 1) // max_obs


def _accumulate_cols(
    p,
    g,
    inv,
    i64,
    inv_mode,
    empty_only,
    r_lut,
    l_lut,
    coef,
    nx,
    ny,
    nz,
    tb,
    tab_key,
    tab_tile,
    tn,
    t_head,
    t_tail,
    t_fill,
    lg,
    l_next,
    free_c,
    ctop,
    start_col,
):  # pragma: no cover - compiled
    """Count the evaluated voxels of one frame of ``nx x ny x nz`` voxels (after :func:`_prepare`) from column
    position ``start_col`` on.

    ``p`` / ``g``: flat prediction and ground-truth ids (uint8 train ids or uint16 raw ids); ``i64``: ``inv`` as
    uint64 words; ``tn`` / ``lg``: the pool's ``t_n`` and ``log`` flat, indexed with unsigned integers (no stride from
    memory, no negative-index wrap-around per access). Views the caller makes: no kernel makes a view or a reshape,
    nor allocates with ``np.zeros``, so that loading them from numba's cache imports none of numba's array
    implementations (see :mod:`occbench.metrics._kernel`). ``r_lut``: ground-truth
    id -> reference category 0..S, 255 = not evaluated (ignore), 254 = malformed. ``l_lut``: prediction id ->
    train id, 255 = not a valid prediction. A voxel is skipped if invalid (under ``empty_only``: invalid with an
    empty ground truth) or ignored. Returns ``(next_col, bad, status)``: ``NEED_CHUNKS`` with the column to resume
    at when fewer than ``LOG_FREE`` free chunks of log are left; ``bad`` = evaluated voxels with a malformed ground
    truth or an invalid prediction (not counted). Each voxel adds one to its ``n`` and, with a non-zero category or
    label, one entry to its tile's log."""
    c0x, aix, ajx, akx = coef[0, 0], coef[0, 1], coef[0, 2], coef[0, 3]
    c0y, aiy, ajy, aky = coef[1, 0], coef[1, 1], coef[1, 2], coef[1, 3]
    c0z, aiz, ajz, akz = coef[2, 0], coef[2, 1], coef[2, 2], coef[2, 3]
    ox, oy, oz = 1 << 20, 1 << 20, 1 << 13
    full = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - nz)
    top = np.uint64(nz - 1)
    bad = 0
    last_key = -1
    ti = np.uint64(0)
    nbj = (ny + (1 << AB) - 1) >> AB
    nq = ((nx + (1 << AB) - 1) >> AB) * nbj << (2 * AB)
    for q in range(start_col, nq):
        if ctop[0] < LOG_FREE:
            return q, bad, 4
        # columns in blocks of 2**AB x 2**AB (i, j), so that the tiles a block touches stay in cache
        blk = q >> (2 * AB)
        w = q & ((1 << (2 * AB)) - 1)
        i = ((blk // nbj) << AB) | (w >> AB)
        j = ((blk % nbj) << AB) | (w & ((1 << AB) - 1))
        if i >= nx or j >= ny:
            continue
        col = i * ny + j
        if nz == 32:
            ib = _column_bits(inv, i64, inv_mode, col, 4)  # 32 voxels a column: 4 bytes
        else:
            ib = _column_bits_any(inv, inv_mode, col, nz)
        if ib == full and not empty_only:
            continue
        bx = (c0x + aix * i) + ajx * j
        by = (c0y + aiy * i) + ajy * j
        bz = (c0z + aiz * i) + ajz * j
        # bx + akx * k is monotonic in k (so is its floor): equal ends = the same x for the whole column
        x0 = math.floor(bx + akx * 0) + ox
        y0 = math.floor(by + aky * 0) + oy
        const_xy = x0 == math.floor(bx + akx * (nz - 1)) + ox and y0 == math.floor(by + aky * (nz - 1)) + oy
        # the column's x and y parts of a tile key and of a voxel's index in its tile (used when const_xy)
        kxy = ((x0 >> XB) << (KY + KZ)) | ((y0 >> YB) << KZ)
        lxy = ((x0 & ((1 << XB) - 1)) << (YB + ZB)) | ((y0 & ((1 << YB) - 1)) << ZB)
        base = col * nz
        for k in range(nz):
            v = np.uint64(base + k)
            gi = g[v]
            if (ib >> (top - np.uint64(k))) & np.uint64(1):
                if not empty_only or gi == 0:
                    continue
            r = r_lut[gi]
            if r == 255:
                continue
            lab = l_lut[p[v]]
            if r == 254 or lab == 255:
                bad += 1
                continue
            wz = math.floor(bz + akz * k) + oz
            if const_xy:
                tkey = kxy | (wz >> ZB)
                li = lxy | (wz & ((1 << ZB) - 1))
            else:
                wx = math.floor(bx + akx * k) + ox
                wy = math.floor(by + aky * k) + oy
                tkey = ((wx >> XB) << (KY + KZ)) | ((wy >> YB) << KZ) | (wz >> ZB)
                li = ((wx & ((1 << XB) - 1)) << (YB + ZB)) | ((wy & ((1 << YB) - 1)) << ZB) | (wz & ((1 << ZB) - 1))
            if tkey != last_key:
                slot = _key_slot(tkey, tb)
                if tab_key[np.uint64(slot)] != tkey:
                    return col, bad, 5
                ti = np.uint64(tab_tile[np.uint64(slot)])
                last_key = tkey
            tn[ti * np.uint64(TILE_VOXELS) + np.uint64(li)] += 1
            if r != 0 or lab != 0:
                f = t_fill[ti]
                if f == LOGC:  # the tail chunk is full (or the tile has none yet): link a new one
                    ctop[0] -= 1
                    c = free_c[ctop[0]]
                    l_next[c] = -1
                    if t_tail[ti] < 0:
                        t_head[ti] = c
                    else:
                        l_next[t_tail[ti]] = c
                    t_tail[ti] = c
                    f = 0
                e = (np.uint32(li) << np.uint32(14)) | (np.uint32(r) << np.uint32(7)) | np.uint32(lab)
                lg[np.uint64(t_tail[ti]) * np.uint64(LOGC) + np.uint64(f)] = e
                t_fill[ti] = f + 1
    return -1, bad, 0


def _accumulate(
    p,
    g,
    inv,
    i64,
    inv_mode,
    empty_only,
    r_lut,
    l_lut,
    coef,
    nx,
    ny,
    nz,
    tb,
    tab_key,
    tab_tile,
    tn,
    t_head,
    t_tail,
    t_fill,
    lg,
    l_next,
    free_c,
    ctop,
    start_col,
):  # pragma: no cover - compiled
    """:func:`_accumulate_cols`, with the column height a constant on KITTI's grid: the compiler specialises the
    column loop (on a 100-frame profile as fast as the KITTI-only pass was; about 10 % slower with the height a
    variable)."""
    if nz == 32:
        return _accumulate_cols(
            p,
            g,
            inv,
            i64,
            inv_mode,
            empty_only,
            r_lut,
            l_lut,
            coef,
            nx,
            ny,
            32,
            tb,
            tab_key,
            tab_tile,
            tn,
            t_head,
            t_tail,
            t_fill,
            lg,
            l_next,
            free_c,
            ctop,
            start_col,
        )
    return _accumulate_cols(
        p,
        g,
        inv,
        i64,
        inv_mode,
        empty_only,
        r_lut,
        l_lut,
        coef,
        nx,
        ny,
        nz,
        tb,
        tab_key,
        tab_tile,
        tn,
        t_head,
        t_tail,
        t_fill,
        lg,
        l_next,
        free_c,
        ctop,
        start_col,
    )


def _scratch(W):  # pragma: no cover - compiled
    """Scratch of :func:`_reduce_tile` for ``W`` columns: ``h``, int32 ``(W, TILE_VOXELS)``, a tile's histogram rows
    column-major (column ``w`` of every voxel together, so that the reduction runs along voxels); ``n``, int64
    observations per voxel; ``acc``, eight int32 per-voxel partial results (sums of a voxel's counts, at most its
    ``n``) and ``same``, an int64 one. Zeros from occbench's own allocation (``zeros_int32_2d``, ``zeros_int64``),
    not ``np.zeros``: see :mod:`occbench.metrics._kernel`. Made here, not passed in: the compiler knows fresh arrays
    overlap nothing else (``evict`` took 0.40 s instead of 0.23 s over 40 dense frames with them passed in)."""
    h = zeros_int32_2d(W, TILE_VOXELS)
    return h, zeros_int64(TILE_VOXELS), zeros_int32_2d(8, TILE_VOXELS), zeros_int64(TILE_VOXELS)


def _reduce_tile(n, h, cols, acc, same, S, C, lab_of, conf, psame, pall, scal, gp):  # pragma: no cover - compiled
    """Add the observed world voxels of one tile (``n[li]`` observations, ``0``: not observed; histogram column
    ``w`` of voxel ``li`` in ``h[w, li]``, zero in the columns whose bit is not in the mask ``cols``: see
    :func:`_col_bit`) to the sums, and write each voxel's ``g * K + p`` (its ground-truth (reference) and
    predicted map categories) to ``gp``; zero ``h``. Ties go to the lower category. Columns ``0..S-1``: reference
    categories ``1..S``; column ``S + lab - 1``: predicted label ``lab``; ``lab_of[k]``: the label of static
    category ``k`` (1..S); every other label is category 0. The passes run along the tile's voxels (the compiler
    vectorises them); only the sums' updates go one voxel at a time."""
    K = S + 1
    sr, bg, g, sp, bp, p, sl, mx = acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]
    acc[:, :] = 0
    same[:] = 0
    # reference: the largest static count, the lower category on ties
    for k in range(S):
        if not _has_col(cols, k):
            continue
        hk = h[k]
        for li in range(TILE_VOXELS):
            c = np.int32(hk[li])
            sr[li] += c
            up = c > bg[li]
            bg[li] = c if up else bg[li]
            g[li] = k + 1 if up else g[li]
    # prediction: static category k has the count of its one label
    for k in range(1, K):
        if not _has_col(cols, S + lab_of[k] - 1):
            continue
        hk = h[S + lab_of[k] - 1]
        for li in range(TILE_VOXELS):
            c = np.int32(hk[li])
            sp[li] += c
            up = c > bp[li]
            bp[li] = c if up else bp[li]
            p[li] = k if up else p[li]
    # labels, for the consistency of a static voxel seen twice or more
    for lab in range(1, C):
        if not _has_col(cols, S + lab - 1):
            continue
        hk = h[S + lab - 1]
        for li in range(TILE_VOXELS):
            c = np.int32(hk[li])
            sl[li] += c
            same[li] += np.int64(c) * (c - 1)
            mx[li] = c if c > mx[li] else mx[li]
    for li in range(TILE_VOXELS):
        nv = n[li]
        if nv == 0:
            continue
        gv = g[li] if bg[li] > nv - sr[li] else 0  # category 0 (n minus the static counts) wins ties
        pv = p[li] if bp[li] > nv - sp[li] else 0
        conf[pv * K + gv] += 1
        gp[li] = gv * K + pv
        if gv > 0 and nv >= 2:  # a static voxel seen twice or more: how its predicted labels agree
            h0 = nv - sl[li]
            m = max(mx[li], h0)
            psame[gv] += same[li] + h0 * (h0 - 1)
            pall[gv] += nv * (nv - 1)
            scal[0] += m
            scal[1] += nv
            scal[2] += 1
            if m == nv:
                scal[3] += 1
    for w in range(h.shape[0]):
        if _has_col(cols, w):
            h[w, :] = 0


def _col_bit(w):  # pragma: no cover - compiled
    """Bit of column ``w`` in a mask of columns (``w mod 64``: columns 64 apart share a bit)."""
    return np.uint64(1) << np.uint64(w & 63)


def _has_col(cols, w):  # pragma: no cover - compiled
    """Whether column ``w`` may be non-zero: its bit is in the mask ``cols`` (or that of a column 64 apart)."""
    return (cols & _col_bit(w)) != 0


def _labels_of(cat, S):  # pragma: no cover - compiled
    """``lab_of[k]``: the label whose category is ``k`` (1..S), from ``cat`` (label -> category)."""
    lab_of = zeros_int64(S + 1)
    for lab in range(cat.size):
        if cat[lab] > 0:
            lab_of[cat[lab]] = lab
    return lab_of


def _fold(ti, t_head, t_tail, t_fill, log, l_next, S, h):  # pragma: no cover - compiled
    """Add live tile ``ti``'s log to the column-major histogram rows ``h`` (``h[w, li]``, indexed with unsigned
    integers: no negative-index wrap-around per access; see :func:`_reduce_tile`); returns the mask of the columns it
    added to."""
    cols = np.uint64(0)
    one = np.uint64(1)
    c = t_head[ti]
    while c >= 0:
        m = t_fill[ti] if c == t_tail[ti] else LOGC
        for e in range(m):
            x = log[c, e]
            li = np.uint64(x >> np.uint32(14))
            r = np.uint64((x >> np.uint32(7)) & np.uint32(127))
            lab = np.uint64(x & np.uint32(127))
            if r != 0:
                h[r - one, li] += 1
                cols |= _col_bit(r - one)
            if lab != 0:
                w = np.uint64(S) + lab - one
                h[w, li] += 1
                cols |= _col_bit(w)
        c = l_next[c]
    return cols


def _release(  # pragma: no cover - compiled
    ti, tab_key, t_key, t_n, t_head, t_tail, t_fill, l_next, free_c, ctop, free_t, ttop, tb
):
    """Return live tile ``ti`` and the chunks of its log to the free stacks (its counts zeroed)."""
    c = t_head[ti]
    while c >= 0:
        free_c[ctop[0]] = c
        ctop[0] += 1
        c = l_next[c]
    t_head[ti] = -1
    t_tail[ti] = -1
    t_fill[ti] = LOGC
    t_n[ti, :] = 0
    tab_key[_key_slot(t_key[ti], tb)] = -1
    t_key[ti] = -1
    free_t[ttop[0]] = ti
    ttop[0] += 1


def _evict(
    frame_no,
    keep,
    force,
    plan,
    t_key,
    t_last,
    t_sup,
    t_hasrec,
    rem,
    ext,
    seen_at,
    out_seal,
    t_n,
    t_head,
    t_tail,
    t_fill,
    log,
    l_next,
    free_c,
    ctop,
    tab_key,
    free_t,
    ttop,
    tb,
    S,
    C,
    cat,
    conf,
    psame,
    pall,
    scal,
):  # pragma: no cover
    """After a frame: finalise the live tiles that are complete (``plan``: every frame that may touch the tile's
    supertile is this state's and has been added, ``rem == ext == 0``) into the sums (and the tile itself has no
    sealed records); list in ``out_seal`` the ones to seal (``force``: all others; else those not touched for more
    than ``keep`` frames whose supertile the last frame did not touch). Returns how many are listed."""
    ns = 0
    lab_of = _labels_of(cat, S)
    h, nn, acc, same = _scratch(S + C - 1)
    gp = zeros_int64(TILE_VOXELS)
    for ti in range(t_key.size):
        if t_key[ti] < 0:
            continue
        s = t_sup[ti]
        if plan and s >= 0 and rem[s] == 0 and ext[s] == 0 and not t_hasrec[ti]:
            cols = _fold(ti, t_head, t_tail, t_fill, log, l_next, S, h)
            for li in range(TILE_VOXELS):
                nn[li] = t_n[ti, li]
            _reduce_tile(nn, h, cols, acc, same, S, C, lab_of, conf, psame, pall, scal, gp)
            _release(ti, tab_key, t_key, t_n, t_head, t_tail, t_fill, l_next, free_c, ctop, free_t, ttop, tb)
        elif force or (frame_no - t_last[ti] > keep and (not plan or s < 0 or seen_at[s] != frame_no)):
            out_seal[ns] = ti
            ns += 1
    return ns


def _seal_sizes(tiles, t_n, t_head, t_tail, t_fill, l_next):  # pragma: no cover - compiled
    """At least as many entries as the records of ``tiles`` take: per observed voxel one for ``n``, and one per
    non-zero count of its histogram row, of which there are at most two per entry of the tile's log; plus one, the
    entry :func:`_seal_fill` writes after the last one it keeps."""
    ne = 0
    for ti in tiles:
        for li in range(TILE_VOXELS):
            if t_n[ti, li] != 0:
                ne += 1
        c = t_head[ti]
        while c >= 0:
            ne += 2 * (t_fill[ti] if c == t_tail[ti] else LOGC)
            c = l_next[c]
    return ne + 1  # + 1: seal_fill writes the entry after the last one it keeps


def _seal_fill(  # pragma: no cover - compiled
    tiles,
    t_key,
    t_n,
    t_head,
    t_tail,
    t_fill,
    log,
    l_next,
    S,
    W,
    keys,
    rne,
    ent,
    tab_key,
    free_c,
    ctop,
    free_t,
    ttop,
    tb,
):
    """Write live tiles (in the given order) as records, then release them; returns the entries written. A record:
    its key and ``rne`` entries (uint32 ``li << 23 | col << 16 | count``; ``li`` the voxel within the tile, ``col``
    0 for ``n``, ``1 + w`` for column ``w`` of its histogram row (``W`` columns); only non-zero counts: ``n`` by
    voxel, then the columns one after the other, each by voxel). Counts fit 16 bits: a live tile's counts stay
    within their dtype, uint8 or uint16 (``max_frames``, see :func:`_prepare`)."""
    h = zeros_int32_2d(W, TILE_VOXELS)
    e = np.uint64(0)  # unsigned: no negative-index wrap-around at each store (see _accumulate_cols)
    for a in range(tiles.size):
        ti = tiles[a]
        keys[a] = t_key[ti]
        e0 = e
        cols = _fold(ti, t_head, t_tail, t_fill, log, l_next, S, h)
        tn = t_n[ti]
        # branch-free: every entry is written and the position moves on past the non-zero ones (the entry after the
        # last one kept is written too: ``ent`` has one of slack, see seal_sizes); zero counts are too scattered for
        # a branch per count to be predicted (seal_fill took 2.0 s with one against 1.4 s without, 407 dense frames)
        for li in range(TILE_VOXELS):
            n = np.uint32(tn[li])
            ent[e] = (np.uint32(li) << np.uint32(23)) | n
            e += np.uint64(n != 0)
        for w in range(W):
            if not _has_col(cols, w):
                continue
            hw = h[w]
            cw = np.uint32(w + 1) << np.uint32(16)
            for li in range(TILE_VOXELS):
                c = np.uint32(hw[li])
                ent[e] = (np.uint32(li) << np.uint32(23)) | cw | c
                e += np.uint64(c != 0)
            hw[:] = 0
        rne[a] = e - e0
        _release(ti, tab_key, t_key, t_n, t_head, t_tail, t_fill, l_next, free_c, ctop, free_t, ttop, tb)
    return e


def _gather_records(sel, eoff, rne, ent, oent):  # pragma: no cover - compiled
    """Copy the entries of records ``sel`` (in that order) into ``oent``."""
    e = 0
    for r in sel:
        copy_items(oent, e, ent, eoff[r], rne[r])  # a slice assignment, without its message (see copy_items)
        e += rne[r]


def _reduce_records(
    keys, eoff, rne, ent, W, order, keep, S, C, cat, conf, psame, pall, scal, want_maps, mkeys, mcat
):  # pragma: no cover - compiled
    """Add the records (``order``: sorted by key, all records of a key together) to the sums, summing the records
    of one tile first; records with ``keep`` set are skipped (the caller keeps them). With ``want_maps`` every
    world voxel's packed key and ``g * K + p`` go to ``mkeys`` / ``mcat``; returns how many."""
    sh, sn, acc, same = _scratch(W)
    gp = zeros_int64(TILE_VOXELS)
    lab_of = _labels_of(cat, S)
    m = 0
    i = 0
    N = order.size
    while i < N:
        key = keys[order[i]]
        j = i
        while j < N and keys[order[j]] == key:
            j += 1
        if keep[order[i]]:
            i = j
            continue
        cols = np.uint64(0)
        for a in range(i, j):
            r = order[a]
            e0 = np.uint64(eoff[r])
            for e in range(e0, e0 + np.uint64(rne[r])):
                x = ent[e]
                li = np.uint64(x >> np.uint32(23))
                col = np.uint64((x >> np.uint32(16)) & np.uint32(127))
                c = np.int64(x & np.uint32(0xFFFF))
                if col == 0:
                    sn[li] += c
                else:
                    sh[col - np.uint64(1), li] += c
                    cols |= _col_bit(col - np.uint64(1))
        tx = key >> (KY + KZ)
        ty = (key >> KZ) & ((1 << KY) - 1)
        tz = key & ((1 << KZ) - 1)
        _reduce_tile(sn, sh, cols, acc, same, S, C, lab_of, conf, psame, pall, scal, gp)
        for li in range(TILE_VOXELS):
            if sn[li] == 0:
                continue
            if want_maps:
                ux = (tx << XB) | (li >> (YB + ZB))
                uy = (ty << YB) | ((li >> ZB) & ((1 << YB) - 1))
                uz = (tz << ZB) | (li & ((1 << ZB) - 1))
                mkeys[m] = (ux << 35) | (uy << 14) | uz
                mcat[m] = gp[li]
                m += 1
            sn[li] = 0
        i = j
    return m


def _hash_slot(key, mask):  # pragma: no cover - compiled
    h = key * np.int64(-7046029254386353131)  # 0x9E3779B97F4A7C15 as int64 (wraps)
    return (h ^ (h >> 29)) & mask


def _keyset_has(slots, key):  # pragma: no cover - compiled
    mask = slots.size - 1
    i = _hash_slot(key, mask)
    while True:
        k = slots[i]
        if k == key:
            return True
        if k < 0:
            return False
        i = (i + 1) & mask


def _keyset_add(slots, keys):  # pragma: no cover - compiled
    """Insert ``keys`` (open addressing, linear probing; the caller keeps the table at most half full); returns how
    many were new."""
    mask = slots.size - 1
    added = 0
    for key in keys:
        i = _hash_slot(key, mask)
        while True:
            k = slots[i]
            if k == key:
                break
            if k < 0:
                slots[i] = key
                added += 1
                break
            i = (i + 1) & mask
    return added


def _mark_recorded(slots, t_key, t_hasrec):  # pragma: no cover - compiled
    """Refresh the live tiles' has-records flags (after records were merged in)."""
    for ti in range(t_key.size):
        if t_key[ti] >= 0:
            t_hasrec[ti] = _keyset_has(slots, t_key[ti])


if njit is not None:
    _slot = njit(inline="always")(_slot)
    _key_slot = njit(inline="always")(_key_slot)
    _block_range = njit(inline="always")(_block_range)
    _in_range = njit(inline="always")(_in_range)
    _block_box = njit(inline="always")(_block_box)
    _accumulate_cols = njit(inline="always", boundscheck=False)(_accumulate_cols)
    _column_bits_any = njit(inline="always")(_column_bits_any)
    _sup_index = njit(inline="always")(_sup_index)
    _rebased = njit(inline="always")(_rebased)
    _scratch = njit(inline="always")(_scratch)
    _reduce_tile = njit(inline="always")(_reduce_tile)
    _has_col = njit(inline="always")(_has_col)
    _col_bit = njit(inline="always")(_col_bit)
    _labels_of = njit(inline="always")(_labels_of)
    _fold = njit(inline="always")(_fold)
    _release = njit(inline="always")(_release)
    frame_supertiles = njit(cache=True, nogil=True)(_frame_supertiles)
    prepare = njit(cache=True, nogil=True)(_prepare)
    accumulate = njit(cache=True, nogil=True, boundscheck=False)(_accumulate)
    evict = njit(cache=True, nogil=True)(_evict)
    seal_sizes = njit(cache=True, nogil=True)(_seal_sizes)
    seal_fill = njit(cache=True, nogil=True)(_seal_fill)
    gather_records = njit(cache=True, nogil=True)(_gather_records)
    reduce_records = njit(cache=True, nogil=True)(_reduce_records)
    _hash_slot = njit(inline="always")(_hash_slot)
    _keyset_has = njit(inline="always")(_keyset_has)
    keyset_add = njit(cache=True, nogil=True)(_keyset_add)
    mark_recorded = njit(cache=True, nogil=True)(_mark_recorded)
else:  # pragma: no cover - numba is a declared dependency; the pure-Python versions are far too slow for real use
    frame_supertiles, prepare, accumulate, evict = _frame_supertiles, _prepare, _accumulate, _evict
    seal_sizes, seal_fill, gather_records, reduce_records = _seal_sizes, _seal_fill, _gather_records, _reduce_records
    keyset_add, mark_recorded = _keyset_add, _mark_recorded

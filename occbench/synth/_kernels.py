"""Compiled (numba) kernels of the occbench-mini generator; the numpy code they replace stays as the reference.

Each kernel evaluates, voxel by voxel, exactly the IEEE operations of the numpy code it stands for, in the
same order and precision (float32 where numpy computes in float32, float64 where numpy promotes): numba
compiles without fast-math, so nothing is fused or reordered and the output is bit-identical (tested
against the numpy code, and by the pinned digest of a whole generation). Why numba: these are per-voxel
gathers with a few operations each, which numpy spreads over a dozen full-size temporary arrays.

* :func:`field_values`: :meth:`occbench.synth.onboard.Fields.sample` (blend of two key fields through the
  uniformiser, then, with a world part, :meth:`~occbench.synth.onboard.WorldSample.sample`'s trilinear lookup
  and :func:`~occbench.synth.onboard.blend_uniform`, or with one share per grid column
  :func:`~occbench.synth.onboard12.blend_uniform_varying` of :class:`~occbench.synth.onboard12.RangeShareFields`).
* :func:`line_of_sight`: :meth:`occbench.synth.sensor.Visibility.visible` (parents visited in distance order,
  then the faces of occupied voxels next to open ones).
* :func:`systematic`, :func:`dilate_labels`: the simulated models' systematic bias and the labels of occupied
  neighbours (integer label logic, one pass per step over the grid).
* :func:`smooth_field`: :func:`occbench.synth.onboard.smooth_field`'s trilinear interpolation of a coarse lattice
  (axis by axis, as numpy, without its full-size temporaries).
* :func:`depth_move`, :func:`fill_shifted`: generator 1.2's depth error and hidden-volume fill
  (:meth:`occbench.synth.onboard12.Predictor12._depth` and ``_fill_hidden``): per-voxel moves and copies, where
  numpy sorts the moved voxels by range and builds five shifted copies of the grid.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# numba's dispatchers are typed loosely (a call's signature is only known once compiled): Any
njit: Any
try:  # numba is a declared dependency; without it the generator runs its numpy code
    from occbench._numba_startup import prepare

    prepare()  # numba imported without yaml and scipy; cached kernels load without its registries (see there)
    from numba import njit
except ImportError:  # pragma: no cover - exercised only where numba is missing
    njit = None

AVAILABLE = njit is not None


def _field_values_py(fa, fb, w, lut, idx, has_world, L, px, py, pz, wlut, shares, out):  # pragma: no cover
    one = np.float32(1.0)
    ow = one - w
    scale = np.float32(lut.shape[0] - 1)
    n0 = L.shape[0] - 2
    n1 = L.shape[1] - 2
    # the vertical lattice cell and weights of each z level
    k0s = np.empty(pz.shape[0], np.int64)
    wzs = np.empty(pz.shape[0], np.float32)
    for kz in range(pz.shape[0]):
        k0s[kz] = np.int64(np.floor(pz[kz]))
        wzs[kz] = np.float32(np.float64(pz[kz]) - np.float64(k0s[kz]))
    per_column = shares.shape[0] > 1  # one world share per grid column, else one for all
    last = -1  # the column whose weights and share are at hand (indices come column by column)
    i0 = j0 = np.int64(0)
    f00 = f01 = f10 = f11 = sh = osh = a = half_b = b = two_ab = np.float32(0.0)
    share = 0.0
    for n in range(idx.shape[0]):
        i = idx[n]
        f = fa[i] * ow + fb[i] * w
        v = lut[np.int64(f * scale)]
        if has_world:
            col = i >> 5
            if col != last:
                last = col
                x = px[col]
                y = py[col]
                i0 = min(max(np.int64(np.floor(x)), 0), n0)
                j0 = min(max(np.int64(np.floor(y)), 0), n1)
                wx = np.float32(min(max(np.float64(x) - np.float64(i0), 0.0), 1.0))
                wy = np.float32(min(max(np.float64(y) - np.float64(j0), 0.0), 1.0))
                f00 = (one - wx) * (one - wy)
                f01 = (one - wx) * wy
                f10 = wx * (one - wy)
                f11 = wx * wy
                share = shares[col] if per_column else shares[0]
                sh = np.float32(share)
                osh = np.float32(1.0 - share)
                a = np.float32(max(share, 1.0 - share))
                b = one - a
                half_b = b / np.float32(2.0)
                two_ab = np.float32(2.0) * a * b
            if share <= 0.0:  # the viewpoint part alone
                out[n] = v
                continue
            k0 = k0s[i & 31]
            wz = wzs[i & 31]
            owz = one - wz
            # trilinear, corners in the order (0, 0), (0, 1), (1, 0), (1, 1), summed from 0 (as the numpy code)
            g = np.float32(0.0) + f00 * (L[i0, j0, k0] * owz + L[i0, j0, k0 + 1] * wz)
            g = g + f01 * (L[i0, j0 + 1, k0] * owz + L[i0, j0 + 1, k0 + 1] * wz)
            g = g + f10 * (L[i0 + 1, j0, k0] * owz + L[i0 + 1, j0, k0 + 1] * wz)
            g = g + f11 * (L[i0 + 1, j0 + 1, k0] * owz + L[i0 + 1, j0 + 1, k0 + 1] * wz)
            u = wlut[np.int64(g * scale)]
            s = sh * u + osh * v
            if share >= 1.0:  # the world part alone
                v = u
            elif s < b:
                v = s * s / two_ab
            elif s <= a:
                v = (s - half_b) / a
            else:
                v = one - (one - s) * (one - s) / two_ab
        out[n] = v


def _smooth_field_py(a, i0x, wx, i0y, wy, i0z, wz, out):  # pragma: no cover - compiled below
    one = np.float32(1.0)
    nx, ny, nz = out.shape
    ax = np.empty((nx, a.shape[1], a.shape[2]), np.float32)  # interpolated along x, then y, then z
    for x in range(nx):
        i, w = i0x[x], wx[x]
        for y in range(a.shape[1]):
            for z in range(a.shape[2]):
                ax[x, y, z] = a[i, y, z] * (one - w) + a[i + 1, y, z] * w
    axy = np.empty((nx, ny, a.shape[2]), np.float32)
    for x in range(nx):
        for y in range(ny):
            j, w = i0y[y], wy[y]
            for z in range(a.shape[2]):
                axy[x, y, z] = ax[x, j, z] * (one - w) + ax[x, j + 1, z] * w
    for x in range(nx):
        for y in range(ny):
            for z in range(nz):
                k, w = i0z[z], wz[z]
                out[x, y, z] = axy[x, y, k] * (one - w) + axy[x, y, k + 1] * w


def _depth_move_py(P, idx, u, X, Y, Z, R, sigma, nx, ny, nz, out, nearest):  # pragma: no cover - compiled below
    one = np.float32(1.0)
    size = np.float32(0.2)
    for n in range(idx.shape[0]):
        i = idx[n]
        r = R[i]
        rn = r / np.float32(51.2)
        d = (u[n] - np.float32(0.5)) * np.float32(3.4641016) * sigma * rn * rn
        k = d / r
        x = np.int64(np.floor((X[i] * (one + k)) / size))
        y = np.int64(np.floor((Y[i] * (one + k) + np.float32(25.6)) / size))
        z = np.int64(np.floor((Z[i] * (one + k) + np.float32(2.0)) / size))
        if x < 0 or x >= nx or y < 0 or y >= ny or z < 0 or z >= nz:
            continue
        dst = (x * ny + y) * nz + z
        if r <= nearest[dst]:  # the nearer voxel wins, the later one of equally near ones
            nearest[dst] = r
            out[dst] = P[i]


def _fill_shifted_py(P, sel, which, xdom, ypos, k, out):  # pragma: no cover - compiled below
    X, Y, Z = P.shape
    for n in range(sel.shape[0]):
        i = sel[n]
        z = i % Z
        y = (i // Z) % Y
        x = i // (Z * Y)
        w = which[n]
        if w == 0:  # along the ray, away from the sensor
            if xdom[x, y]:
                x -= k
            elif ypos[x, y]:
                y -= k
            else:
                y += k
        elif w == 1:  # to the left
            if xdom[x, y]:
                y -= k
            else:
                x -= k
        elif xdom[x, y]:  # to the right
            y += k
        else:
            x += k
        out[i] = P[x, y, z] if 0 <= x < X and 0 <= y < Y else 0


def _line_of_sight_py(occ, order, parent, nx, ny, nz, out):  # pragma: no cover - compiled below
    n = occ.shape[0]
    opn = np.zeros(n + 1, np.bool_)
    opn[n] = True
    for i in range(order.shape[0]):
        v = order[i]
        o = opn[parent[i]]
        out[v] = o
        opn[v] = o and not occ[v]
    # an occupied voxel next to an open (visible, empty) voxel shows that face: it is visible too
    sx = ny * nz
    for ix in range(nx):
        for iy in range(ny):
            base = ix * sx + iy * nz
            for iz in range(nz):
                v = base + iz
                if not occ[v] or out[v]:
                    continue
                if (
                    (ix > 0 and opn[v - sx])
                    or (ix < nx - 1 and opn[v + sx])
                    or (iy > 0 and opn[v - nz])
                    or (iy < ny - 1 and opn[v + nz])
                    or (iz > 0 and opn[v - 1])
                    or (iz < nz - 1 and opn[v + 1])
                ):
                    out[v] = True


def _dilate_labels_py(P, N):  # pragma: no cover - compiled below
    X, Y, Z = P.shape
    for x in range(X):
        for y in range(Y):
            for z in range(Z):
                v = P[x, y, z - 1] if z > 0 else 0
                if v == 0 and x > 0:
                    v = P[x - 1, y, z]
                if v == 0 and x < X - 1:
                    v = P[x + 1, y, z]
                if v == 0 and y > 0:
                    v = P[x, y - 1, z]
                if v == 0 and y < Y - 1:
                    v = P[x, y + 1, z]
                if v == 0 and z < Z - 1:
                    v = P[x, y, z + 1]
                N[x, y, z] = v


def _systematic_py(
    P,
    near_n,
    park,
    road,
    og_from,
    og_to,
    veg_to,
    veg,
    terrain,
    trunk_k,
    trunk,
    sign_from,
    pole,
    small_to,
    thick,
    far,
    smear,
    xdom,
    ypos,
    ground,
    small,
    obj,
    tmp,
):  # pragma: no cover
    X, Y, Z = P.shape
    if near_n > 0:  # parking within near_n cells (Chebyshev, inside the grid) of a road column becomes road
        road2d = np.zeros((X, Y), np.bool_)
        for x in range(X):
            for y in range(Y):
                for z in range(Z):
                    if P[x, y, z] == road:
                        road2d[x, y] = True
                        break
        rows = np.zeros((X, Y), np.bool_)
        for x in range(X):
            for y in range(Y):
                if road2d[x, y]:
                    for xx in range(max(0, x - near_n), min(X, x + near_n + 1)):
                        rows[xx, y] = True
        for x in range(X):
            for y in range(Y):
                if rows[x, y]:
                    for yy in range(max(0, y - near_n), min(Y, y + near_n + 1)):
                        road2d[x, yy] = True
        for x in range(X):
            for y in range(Y):
                if road2d[x, y]:
                    for z in range(Z):
                        if P[x, y, z] == park:
                            P[x, y, z] = road
    for x in range(X):
        for y in range(Y):
            for z in range(Z - 1, -1, -1):  # top down: a voxel reads the one below before that one changes
                v = P[x, y, z]
                if og_from >= 0 and v == og_from:
                    v = og_to
                if veg_to and v == veg and z > 0:
                    b = P[x, y, z - 1]
                    if og_from >= 0 and b == og_from:
                        b = og_to
                    if ground[b]:
                        v = terrain
                P[x, y, z] = v
    for x in range(X):
        for y in range(Y):
            for z in range(Z):
                v = P[x, y, z]
                if z >= trunk_k and v == trunk:
                    v = veg
                if sign_from >= 0 and v == sign_from:
                    v = pole
                if small_to >= 0 and small[v]:
                    v = small_to
                P[x, y, z] = v
    if thick:
        for x in range(X):
            for y in range(Y):
                if far[x, y]:
                    for z in range(Z - 1, 0, -1):  # top down, as above
                        b = P[x, y, z - 1]
                        if P[x, y, z] == 0 and ground[b]:
                            P[x, y, z] = b
    if smear:  # objects grow one voxel away from the sensor, all from the scene before this step
        tmp[:] = P
        for x in range(X):
            for y in range(Y):
                for z in range(Z):
                    if P[x, y, z] != 0:
                        continue
                    if xdom[x, y]:
                        c = tmp[x - 1, y, z] if x > 0 else 0
                    elif ypos[x, y]:
                        c = tmp[x, y - 1, z] if y > 0 else 0
                    else:
                        c = tmp[x, y + 1, z] if y < Y - 1 else 0
                    if c != 0 and obj[c]:
                        P[x, y, z] = c


if AVAILABLE:
    _jit = njit(cache=True, nogil=True, boundscheck=False)
    _field_values = _jit(_field_values_py)
    _line_of_sight = _jit(_line_of_sight_py)
    _dilate_labels = _jit(_dilate_labels_py)
    _smooth_field = _jit(_smooth_field_py)
    _depth_move = _jit(_depth_move_py)
    _fill_shifted = _jit(_fill_shifted_py)
    _systematic = _jit(_systematic_py)


def field_values(
    fa: np.ndarray, fb: np.ndarray, w: np.float32, lut: np.ndarray, idx: np.ndarray, world: tuple | None
) -> np.ndarray:
    """Values of a field at flat voxel indices ``idx`` (see :meth:`occbench.synth.onboard.Fields.sample`).

    ``fa``, ``fb``: the two key fields, flat float32; ``world``: None or (lattice, px, py, pz, lut, share), share
    one float or one float64 per grid column (:class:`occbench.synth.onboard12.RangeShareFields`)."""
    out = np.empty(idx.shape, np.float32)
    if world is None:
        z3 = np.zeros((2, 2, 2), np.float32)
        z1 = np.zeros(1, np.float32)
        _field_values(fa, fb, np.float32(w), lut, idx, False, z3, z1, z1, z1, lut, np.zeros(1), out)
        return out
    L, px, py, pz, wlut, share = world
    shares = np.ascontiguousarray(share, np.float64).reshape(-1)
    _field_values(fa, fb, np.float32(w), lut, idx, True, L, px, py, pz, wlut, shares, out)
    return out


def line_of_sight(
    occupied: np.ndarray, order: np.ndarray, parent: np.ndarray, shape: tuple[int, int, int]
) -> np.ndarray:
    """Flat bool line of sight (see :meth:`occbench.synth.sensor.Visibility.visible`); ``order`` must list every
    voxel after its parent."""
    occ = np.ascontiguousarray(occupied).reshape(-1)
    out = np.zeros(occ.shape[0], np.bool_)
    _line_of_sight(occ, order, parent, shape[0], shape[1], shape[2], out)
    return out


def smooth_field(a: np.ndarray, steps: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """See :func:`occbench.synth.onboard.smooth_field`: the coarse lattice ``a`` interpolated along x, y, then z,
    ``steps`` = (lower lattice index, float32 weight of the upper one) of every output voxel along each axis."""
    if any(i0[-1] + 1 >= n for (i0, _), n in zip(steps, a.shape)):  # as numpy's take (the kernel does not check)
        raise IndexError(f"the lattice {a.shape} is too small for the interpolation")
    (i0x, wx), (i0y, wy), (i0z, wz) = steps
    out = np.empty((i0x.size, i0y.size, i0z.size), np.float32)
    _smooth_field(a, i0x, wx, i0y, wy, i0z, wz, out)
    return out


def depth_move(P: np.ndarray, idx: np.ndarray, u: np.ndarray, xyzr: tuple[np.ndarray, ...], sigma: float) -> np.ndarray:
    """See :meth:`occbench.synth.onboard12.Predictor12._depth`: the occupied voxels ``idx`` of ``P`` moved along
    their rays by the depth error of field values ``u``; ``xyzr``: the voxel centres and ranges, flat float32."""
    out = np.zeros(P.size, P.dtype)
    nearest = np.full(P.size, np.inf, np.float32)
    X, Y, Z, R = xyzr
    _depth_move(P.reshape(-1), idx, u, X, Y, Z, R, np.float32(sigma), *P.shape, out, nearest)
    return out.reshape(P.shape)


def fill_shifted(
    P: np.ndarray, sel: np.ndarray, which: np.ndarray, xdom: np.ndarray, ypos: np.ndarray, k: int
) -> np.ndarray:
    """See :meth:`occbench.synth.onboard12.Predictor12._fill_hidden`: ``P`` with the voxels ``sel`` taking the
    content ``k`` voxels along the ray (``which`` 0), to the left (1) or to the right (2)."""
    out = np.ascontiguousarray(P).copy()
    _fill_shifted(np.ascontiguousarray(P), sel, which, xdom, ypos, k, out.reshape(-1))
    return out


def dilate_labels(P: np.ndarray) -> np.ndarray:
    """See :func:`occbench.synth.onboard._dilate_labels`."""
    N = np.empty_like(P)
    _dilate_labels(np.ascontiguousarray(P), N)
    return N


def systematic(P: np.ndarray, args: tuple) -> np.ndarray:
    """See :func:`occbench.synth.onboard._systematic`; ``args`` from ``onboard._systematic_args``."""
    out = np.ascontiguousarray(P).copy()
    _systematic(out, *args, np.empty_like(out))
    return out

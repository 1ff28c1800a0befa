"""LiDAR-like ray casting (HDL-64E geometry) with precomputed, de-duplicated voxel traversals.

Because every scan sees the world through a volume aligned with its own LiDAR frame (planar motion,
see :mod:`occbench.synth.world`), the voxels a ray traverses are the same for every scan: they are computed
once (fine marching at 0.1 m, consecutive duplicates removed, i.e. a conservative DDA) and a cast is then a
single gather of occupancy along all rays plus a first-hit search.

Two casters are used:

* :class:`Caster` over a 120 m x 120 m x 6.4 m volume around the sensor (x, y in [-60, 60)): 64 beams x
  ``azimuths`` over 360 degrees, 60 m range. It gives the voxels traversed and hit by a scan, which make the
  ``.invalid`` / ``.occluded`` masks (traversed or hit = observed) and the ``.bin`` input (hit).
* the same class over the SSC grid only (forward rays), used to give the simulated onboard models a cheap
  per-scan line-of-sight mask (z-buffer against the depth of each ray).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from occbench.synth import _kernels

NZ = 32
CELL = 0.2


def hdl64_elevations() -> np.ndarray:
    """Elevation angles (degrees) of the 64 beams: upper block +2.0..-8.33, lower block -8.83..-24.33."""
    up = [2.0 - i * (10.33 / 31) for i in range(32)]
    lo = [-8.83 - i * (15.5 / 31) for i in range(32)]
    return np.round(np.array(up + lo), 6)


@dataclass
class Caster:
    idx: np.ndarray  # (S,) int32 flat voxel index of each traversal sample
    ray_of: np.ndarray  # (S,) int32 ray of each sample
    ray_start: np.ndarray  # (R + 1,) int64
    shape: tuple[int, int, int]
    sensor_index: tuple[int, int]  # (ix, iy) of the sensor column (x = y = 0)
    n_rays: int

    @classmethod
    def build(
        cls,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        azimuths: int,
        az_range: tuple[float, float] = (-180.0, 180.0),
        max_range: float = 60.0,
        min_range: float = 1.0,
        ground_level: int = 1,
    ) -> "Caster":
        nx = int(round((x_range[1] - x_range[0]) / CELL))
        ny = int(round((y_range[1] - y_range[0]) / CELL))
        shape = (nx, ny, NZ)
        el = hdl64_elevations()
        a0, a1 = az_range
        az = [a0 + (a1 - a0) * (j + 0.5) / azimuths for j in range(azimuths)]
        ce = np.array([round(math.cos(math.radians(e)), 12) for e in el])
        se = np.array([round(math.sin(math.radians(e)), 12) for e in el])
        ca = np.array([round(math.cos(math.radians(a)), 12) for a in az])
        sa = np.array([round(math.sin(math.radians(a)), 12) for a in az])
        dx = (ce[:, None] * ca[None, :]).ravel()
        dy = (ce[:, None] * sa[None, :]).ravel()
        dz = np.repeat(se, azimuths)
        step = 0.1
        idx_list: list[np.ndarray] = []
        ray_list: list[np.ndarray] = []
        starts = [0]
        n_rays = dx.size
        # march in blocks of rays to bound memory
        dist = min_range + step * np.arange(int((max_range - min_range) / step) + 1)
        for r0 in range(0, n_rays, 512):
            r1 = min(n_rays, r0 + 512)
            px = dist[None, :] * dx[r0:r1, None]
            py = dist[None, :] * dy[r0:r1, None]
            pz = dist[None, :] * dz[r0:r1, None]
            ix = np.floor((px - x_range[0]) / CELL).astype(np.int64)
            iy = np.floor((py - y_range[0]) / CELL).astype(np.int64)
            iz = np.floor((pz + 2.0) / CELL).astype(np.int64)
            inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny) & (iz >= 0) & (iz < NZ)
            # a ray stops at the first sample outside the volume, and at the ground level
            # (z level <= ground_level is occupied everywhere in the flat world: nothing lies beyond)
            alive = np.cumprod(inside, axis=1).astype(bool)
            below = np.cumsum(iz <= ground_level, axis=1)
            alive &= (below == 0) | ((below == 1) & (iz <= ground_level))
            flat = (ix * ny + iy) * NZ + iz
            keep = alive.copy()
            keep[:, 1:] &= flat[:, 1:] != flat[:, :-1]
            counts = keep.sum(1)
            idx_list.append(flat[keep].astype(np.int32))
            ray_list.append(np.repeat(np.arange(r0, r1, dtype=np.int32), counts))
            starts.extend((starts[-1] + np.cumsum(counts)).tolist())
        return cls(
            idx=np.concatenate(idx_list),
            ray_of=np.concatenate(ray_list),
            ray_start=np.array(starts, np.int64),
            shape=shape,
            sensor_index=(int(round(-x_range[0] / CELL)), int(round(-y_range[0] / CELL))),
            n_rays=n_rays,
        )

    def first_hits(self, occupied_flat: np.ndarray) -> np.ndarray:
        """Sample index of the first occupied voxel of every ray (-1 = no return)."""
        occ = occupied_flat[self.idx]
        hits = np.flatnonzero(occ)
        first = np.full(self.n_rays, -1, np.int64)
        if hits.size:
            r = self.ray_of[hits]
            is_first = np.empty(hits.size, bool)
            is_first[0] = True
            is_first[1:] = r[1:] != r[:-1]
            first[r[is_first]] = hits[is_first]
        return first

    def cast_packed(self, occupied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`cast`, with the observed volume packed per column: (nx * ny, 4) uint8, bit k = level k."""
        observed, hit = self.cast(occupied)
        return np.packbits(observed.reshape(-1, NZ), axis=1, bitorder="little"), hit

    def cast(self, occupied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Observed (traversed or hit by a ray with a return) and hit voxels, as flat bool volumes."""
        flat = occupied.reshape(-1)
        first = self.first_hits(flat)
        has = first >= 0
        # samples up to and including the hit, on rays with a return
        end = np.where(has, first + 1, self.ray_start[:-1])  # exclusive end of the observed samples
        start = self.ray_start[:-1]
        n = end - start
        total = int(n.sum())
        pos = np.arange(total, dtype=np.int64) + np.repeat(start - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
        observed = np.zeros(flat.size, bool)
        observed[self.idx[pos]] = True
        hit = np.zeros(flat.size, bool)
        hit[self.idx[first[has]]] = True
        return observed, hit


def unpack_columns(packed: np.ndarray) -> np.ndarray:
    """(N, 4) uint8 column bit masks -> (N, 32) bool."""
    return np.unpackbits(packed, axis=1, bitorder="little").astype(bool)


@dataclass
class Visibility:
    """Line of sight from the sensor to every voxel centre of a volume, as the voxelizer defines it.

    The real ``.occluded`` / ``.invalid`` masks are line-of-sight tests (semantic-kitti-api README: invalid
    voxels "are occluded from each view position"): a voxel is visible when the segment from the sensor to
    it crosses no occupied voxel. Here every voxel's *parent* is the voxel one step (0.2 m) back along
    that segment, so a voxel is visible iff its parent is visible and empty. Voxels are processed in shells
    of increasing distance (a parent is always at least 0.027 m closer than its child, shells are 0.025 m
    thick), which makes a viewpoint cost a few vectorised gathers over the volume.
    """

    order: np.ndarray  # (M,) int32 voxel flat ids within max_range, by increasing distance (stable)
    parent: np.ndarray  # (M,) int32 parent flat id of order[i]; n (sentinel) = the sensor itself
    bounds: list[tuple[int, int]]
    n: int
    shape: tuple[int, int, int]

    @classmethod
    def build(cls, x_range: tuple[float, float], y_range: tuple[float, float], max_range: float = 60.0) -> "Visibility":
        nx = int(round((x_range[1] - x_range[0]) / CELL))
        ny = int(round((y_range[1] - y_range[0]) / CELL))
        shape = (nx, ny, NZ)
        cx = (x_range[0] + CELL * (np.arange(nx) + 0.5)).astype(np.float64)
        cy = (y_range[0] + CELL * (np.arange(ny) + 0.5)).astype(np.float64)
        cz = (-2.0 + CELL * (np.arange(NZ) + 0.5)).astype(np.float64)
        ids_all: list[np.ndarray] = []
        d_all: list[np.ndarray] = []
        par_all: list[np.ndarray] = []
        n = nx * ny * NZ
        for i in range(nx):  # row by row to bound memory
            X = np.full((ny, NZ), cx[i])
            Y = np.broadcast_to(cy[:, None], (ny, NZ))
            Z = np.broadcast_to(cz[None, :], (ny, NZ))
            d = np.sqrt(X * X + Y * Y + Z * Z)
            keep = d <= max_range
            f = np.where(d > CELL, 1.0 - CELL / np.maximum(d, 1e-9), 0.0)
            px = np.floor((X * f - x_range[0]) / CELL).astype(np.int64)
            py = np.floor((Y * f - y_range[0]) / CELL).astype(np.int64)
            pz = np.floor((Z * f + 2.0) / CELL).astype(np.int64)
            px = np.clip(px, 0, nx - 1)
            py = np.clip(py, 0, ny - 1)
            pz = np.clip(pz, 0, NZ - 1)
            par = (px * ny + py) * NZ + pz
            par = np.where(d > CELL, par, n)
            ids = (i * ny + np.arange(ny)[:, None]) * NZ + np.arange(NZ)[None, :]
            ids_all.append(ids[keep].astype(np.int32))
            d_all.append(d[keep])
            par_all.append(par[keep].astype(np.int32))
        ids = np.concatenate(ids_all)
        d = np.concatenate(d_all)
        par = np.concatenate(par_all)
        o = np.argsort(d, kind="stable")
        ids, d, par = ids[o], d[o], par[o]
        edges = np.arange(0.0, max_range + 0.05, 0.025)
        cut = np.searchsorted(d, edges, side="left").tolist() + [ids.size]
        bounds = [(a, b) for a, b in zip(cut[:-1], cut[1:]) if b > a]
        return cls(order=ids, parent=par, bounds=bounds, n=n, shape=shape)

    @cached_property
    def parents_first(self) -> bool:
        """Whether every voxel's parent lies in an earlier shell (or is the sensor): then visiting ``order`` one
        voxel at a time gives what the shell-by-shell pass gives (a shell reads its parents before it writes)."""
        pos = np.full(self.n + 1, -1, np.int64)
        pos[self.order] = np.arange(self.order.size)
        start = np.empty(self.order.size, np.int64)
        for a, b in self.bounds:
            start[a:b] = a
        p = self.parent
        return bool(np.all((p == self.n) | (pos[p] < start)))

    def visible(self, occupied: np.ndarray) -> np.ndarray:
        """Flat bool: voxels in line of sight of the sensor (occupied surfaces included, what lies behind not).
        The compiled kernel when numba is present (and :attr:`parents_first`), else :meth:`visible_numpy`."""
        if _kernels.AVAILABLE and self.parents_first:
            return _kernels.line_of_sight(occupied, self.order, self.parent, self.shape)
        return self.visible_numpy(occupied)

    def visible_numpy(self, occupied: np.ndarray) -> np.ndarray:
        """The reference of :meth:`visible`, in numpy: one vectorised step per shell."""
        free = np.empty(self.n + 1, bool)
        free[: self.n] = ~occupied.reshape(-1)
        free[self.n] = True
        # "open" = visible and empty: light passes through it to its children
        vis = np.zeros(self.n + 1, bool)
        vis[self.n] = True
        opn = np.zeros(self.n + 1, bool)
        opn[self.n] = True
        order, parent = self.order, self.parent
        for a, b in self.bounds:
            ids = order[a:b]
            v = opn[parent[a:b]]
            vis[ids] = v
            opn[ids] = v & free[ids]
        # An occupied voxel next to an open (visible, empty) voxel shows that face: it is visible too.
        # Without this, ground seen at grazing angles would be hidden by its own neighbours.
        o = opn[: self.n].reshape(self.shape)
        grow = np.zeros(self.shape, bool)
        for axis in range(3):
            hi = [slice(None)] * 3
            lo = [slice(None)] * 3
            hi[axis], lo[axis] = slice(1, None), slice(None, -1)
            grow[tuple(hi)] |= o[tuple(lo)]
            grow[tuple(lo)] |= o[tuple(hi)]
        out = vis[: self.n]
        out |= grow.reshape(-1) & ~free[: self.n]
        return out

"""A shaded 3D view of the occupied voxels of a grid, headless (numpy only: no display, no OpenGL).

Orthographic camera looking down at ``elevation`` degrees from behind-left of the car (``azimuth``: 0 looks along
+x, the driving direction; negative turns the camera to the car's left); every occupied voxel is a cube whose three
camera-facing faces are shaded (top brightest), drawn with a z-buffer: each pixel shows the nearest cube. Cubes are
splatted as precomputed sprites at their projected centres (rounded to whole pixels), so a frame of a few hundred
thousand voxels renders in well under a second. Voxel edges are darkened where neighbouring pixels show different
voxels, which gives the look of the figures of semantic scene completion papers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FACE_SHADE = {"top": 1.0, "x": 0.78, "y": 0.62}  # Lambert-like shading of the three visible faces
EDGE_SHADE = 0.72


@dataclass(frozen=True)
class Camera:
    """An orthographic camera: ``px`` pixels per voxel edge; ``azimuth``/``elevation`` in degrees."""

    azimuth: float = -35.0
    elevation: float = 40.0
    px: float = 3.0

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(right, up, forward) unit vectors in grid coordinates (x forward, y left, z up)."""
        a, e = np.radians(self.azimuth), np.radians(self.elevation)
        f = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), -np.sin(e)])
        r = np.cross(f, [0.0, 0.0, 1.0])
        r /= np.linalg.norm(r)
        u = np.cross(r, f)
        return r, u, f


@dataclass(frozen=True)
class Projection:
    """Where grid points land in a rendered image: ``pixel(points)`` -> (col, row) floats."""

    camera: Camera
    u0: float
    v1: float
    width: int
    height: int

    def pixel(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) grid coordinates (voxel units, corner of voxel (0,0,0) at the origin) -> (N, 2) (col, row)."""
        r, u, _ = self.camera.basis()
        p = np.asarray(points, float)
        return np.stack([(p @ r - self.u0) * self.camera.px, (self.v1 - p @ u) * self.camera.px], axis=1)


def _sprite(cam: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel offsets (drow, dcol) covered by a unit cube centred at a pixel centre, and the shade of each (which
    face the pixel's ray enters first). Slightly enlarged (by half a pixel) so neighbouring cubes leave no gaps
    after their centres are rounded."""
    r, u, f = cam.basis()
    half = 0.5 + 0.5 / cam.px
    reach = int(np.ceil(np.sqrt(3) * half * cam.px)) + 1
    dr, dc = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    dr, dc = dr.ravel(), dc.ravel()
    # ray origin (in voxel units, relative to the cube centre) for each pixel, travelling along f
    o = (dc[:, None] * r[None, :] - dr[:, None] * u[None, :]) / cam.px - 10.0 * f[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = np.where(f != 0, (-half - o) / f, -np.inf)
        t1 = np.where(f != 0, (half - o) / f, np.inf)
    tmin = np.minimum(t0, t1)
    tmax = np.maximum(t0, t1)
    # axes where the direction is zero: inside the slab or never
    inside = np.where(f == 0, np.abs(o) <= half, True).all(axis=1)
    tin = tmin.max(axis=1)
    tout = tmax.min(axis=1)
    hit = inside & (tin <= tout)
    axis = tmin.argmax(axis=1)  # the slab entered last is the face the ray enters through
    shade = np.where(axis == 2, FACE_SHADE["top"], np.where(axis == 0, FACE_SHADE["x"], FACE_SHADE["y"]))
    return dr[hit], dc[hit], shade[hit]


def visible_voxels(occupied: np.ndarray, cam: Camera) -> np.ndarray:
    """Mask of occupied voxels with at least one camera-facing neighbour free (the others are hidden)."""
    occ = np.asarray(occupied, bool)
    _, _, f = cam.basis()
    vis = np.zeros_like(occ)
    for ax in range(3):
        if f[ax] == 0:
            continue
        step = -1 if f[ax] > 0 else 1  # the neighbour towards the camera
        nb = np.zeros_like(occ)  # True where the neighbour towards the camera is occupied
        src = [slice(None)] * 3
        dst = [slice(None)] * 3
        if step == -1:
            dst[ax], src[ax] = slice(1, None), slice(None, -1)
        else:
            dst[ax], src[ax] = slice(None, -1), slice(1, None)
        nb[tuple(dst)] = occ[tuple(src)]
        vis |= occ & ~nb
    return vis


def projection_for(shape: tuple[int, int, int], cam: Camera) -> Projection:
    """The image frame holding the whole grid of ``shape`` voxels (same camera -> same frame for every grid)."""
    r, u, _ = cam.basis()
    X, Y, Z = shape
    corners = np.array([[x, y, z] for x in (0, X) for y in (0, Y) for z in (0, Z)], float)
    su, sv = corners @ r, corners @ u
    pad = 2.0 / cam.px
    u0, u1 = su.min() - pad, su.max() + pad
    v0, v1 = sv.min() - pad, sv.max() + pad
    return Projection(cam, float(u0), float(v1), int(np.ceil((u1 - u0) * cam.px)), int(np.ceil((v1 - v0) * cam.px)))


def render_voxels(
    labels: np.ndarray,
    colors: np.ndarray,
    cam: Camera = Camera(),
    background: tuple[int, int, int] = (255, 255, 255),
    edges: bool = True,
) -> tuple[np.ndarray, np.ndarray, Projection]:
    """Render the voxels of ``labels`` (X, Y, Z) that are neither 0 nor 255, coloured ``colors[label]``.

    Returns (``(H, W, 3)`` uint8 image, ``(H, W)`` int64 flat index into ``labels`` of the voxel each pixel shows
    or -1, the :class:`Projection`)."""
    g = np.asarray(labels)
    occ = (g != 0) & (g != 255)
    proj = projection_for(g.shape, cam)
    H, W = proj.height, proj.width
    vis = visible_voxels(occ, cam)
    idx = np.flatnonzero(vis)
    img = np.empty((H, W, 3), np.uint8)
    img[:] = background
    shown = np.full((H, W), -1, np.int64)
    if idx.size == 0:
        return img, shown, proj
    ijk = np.stack(np.unravel_index(idx, g.shape), axis=1).astype(float) + 0.5
    _, _, f = cam.basis()
    depth = ijk @ f
    order = np.argsort(depth, kind="stable")  # nearest first; ties by index (deterministic)
    idx, ijk = idx[order], ijk[order]
    cr = np.rint(proj.pixel(ijk)).astype(np.int64)  # (col, row)
    dr, dc, shade = _sprite(cam)
    S = dr.size
    rows = cr[:, 1:2] + dr[None, :]
    cols = cr[:, 0:1] + dc[None, :]
    code = np.arange(idx.size, dtype=np.int64)[:, None] * S + np.arange(S, dtype=np.int64)[None, :]
    ok = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
    pix = (rows * W + cols)[ok]
    zbuf = np.full(H * W, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(zbuf, pix, code[ok])
    hit = zbuf != np.iinfo(np.int64).max
    rank, s = np.divmod(zbuf[hit], S)
    col = colors[g.reshape(-1)[idx[rank]]].astype(np.float32) * shade[s][:, None]
    flat_shown = shown.reshape(-1)
    flat_shown[hit] = idx[rank]
    if edges:
        # darken pixels whose right or lower neighbour shows another voxel (or the background)
        e = np.zeros((H, W), bool)
        e[:, :-1] |= shown[:, :-1] != shown[:, 1:]
        e[:-1, :] |= shown[:-1, :] != shown[1:, :]
        ef = e.reshape(-1)[hit]
        col[ef] *= EDGE_SHADE
    img.reshape(-1, 3)[hit] = np.clip(np.rint(col), 0, 255).astype(np.uint8)
    return img, shown, proj

"""The procedural town of occbench-mini: route, static world raster, moving agents.

The world is a 2.5D-plus raster ``W[ix, iy, k]`` of uint8 *codes* at 0.2 m in x/y whose 32 z levels are
exactly the z levels of the SSC grid (``z in [-2 + 0.2 k, -2 + 0.2 (k + 1))`` in the LiDAR frame): the ego
drives on flat ground with the LiDAR 1.73 m above the road (KITTI's mounting height), so every scan's grid
is a planar (x, y, yaw) resampling of ``W`` with no z resampling.

Codes are train ids 0..19 plus raw-only variants (moving objects, lane markings, ignored classes); see
:data:`CODE_TO_RAW`. The world frame is the LiDAR frame of scan 0 (first pose = identity, like KITTI).

Determinism: only integer/uniform draws of numpy's PCG64 and IEEE basic arithmetic touch per-cell data;
the few trigonometric constants come from Python's ``math`` rounded to 12 digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from occbench.grid import KITTI

CELL = KITTI.voxel_size  # the world raster is the SSC grid's voxel size in x/y and its z levels
NZ = KITTI.shape[2]
GROUND_Z = -1.73  # road surface in the LiDAR frame (KITTI HDL-64E mounting height)
LANE_OFF = 1.75  # ego lane centre right of the street centreline (right-hand traffic)

# ---- codes -------------------------------------------------------------------------------------------
# 0..19: train ids (written with learning_map_inv). Extra codes are raw ids the real data also contain.
MOVING_CAR, MOVING_BICYCLIST, MOVING_PERSON, MOVING_MOTORCYCLIST = 20, 21, 22, 23
OTHER_OBJECT, OTHER_STRUCTURE, LANE_MARKING = 24, 25, 26
_INV = [0, 10, 11, 15, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 70, 71, 72, 80, 81]
CODE_TO_RAW = np.zeros(256, np.uint16)
CODE_TO_RAW[:20] = _INV
CODE_TO_RAW[[20, 21, 22, 23, 24, 25, 26]] = [252, 253, 254, 255, 99, 52, 60]
CODE_TO_RAW.flags.writeable = False
# code -> train id (255 = ignored in evaluation, like raw 52/99)
CODE_TO_TRAIN = np.zeros(256, np.uint8)
CODE_TO_TRAIN[:20] = np.arange(20)
CODE_TO_TRAIN[[20, 21, 22, 23, 24, 25, 26]] = [1, 7, 6, 8, 255, 255, 9]
CODE_TO_TRAIN.flags.writeable = False

(
    EMPTY,
    CAR,
    BICYCLE,
    MOTORCYCLE,
    TRUCK,
    OTHER_VEHICLE,
    PERSON,
    BICYCLIST,
    MOTORCYCLIST,
    ROAD,
    PARKING,
    SIDEWALK,
    OTHER_GROUND,
    BUILDING,
    FENCE,
    VEGETATION,
    TRUNK,
    TERRAIN,
    POLE,
    TRAFFIC_SIGN,
) = range(20)


def kz(z: float) -> int:
    """z level of a LiDAR-frame height (clipped to the grid)."""
    return int(min(NZ - 1, max(0, math.floor((z + 2.0) / CELL))))


def kh(h: float) -> int:
    """z level of a height above the road surface."""
    return kz(GROUND_Z + h)


K_ROAD = kz(GROUND_Z)  # 1: road top voxel
K_CURB = kz(GROUND_Z + 0.15)  # 2: sidewalk top voxel (curb ~0.15-0.2 m)


def _c(a: float) -> float:
    return round(math.cos(a), 12)


def _s(a: float) -> float:
    return round(math.sin(a), 12)


# ---- route -------------------------------------------------------------------------------------------
@dataclass
class Route:
    """Dense ego path (0.1 m spacing): positions, yaw, and whether a sample lies on a turning arc."""

    xy: np.ndarray  # (M, 2)
    yaw: np.ndarray  # (M,)
    turning: np.ndarray  # (M,) bool
    step: float = 0.1

    @property
    def length(self) -> float:
        return self.step * (len(self.xy) - 1)


def _dirs() -> dict[str, tuple[int, int]]:
    return {"E": (1, 0), "N": (0, 1), "W": (-1, 0), "S": (0, -1)}


def _grid_lines(rng: np.random.Generator, start: float, extent: float, first: tuple[float, float]) -> list[float]:
    """Street coordinates: one at ``start``, spaced 55..110 m, covering +-extent."""
    out = [start]
    x = start + float(rng.uniform(*first))
    while x < start + extent:
        out.append(round(x, 3))
        x += float(rng.uniform(55.0, 110.0))
    x = start - float(rng.uniform(55.0, 110.0))
    while x > start - extent:
        out.append(round(x, 3))
        x -= float(rng.uniform(55.0, 110.0))
    return sorted(out)


def procedural_route(rng: np.random.Generator, length: float) -> tuple[Route, list[float], list[float]]:
    """Ego route on a jittered street grid: straights, 90-degree turns on arcs (R 7 m right, 11 m left).

    Returns the route and the x coordinates of north-south streets and y coordinates of east-west streets.
    The ego starts at (0, 0) heading +x on the right lane of the east-west street ``y = LANE_OFF``.
    """
    extent = length + 200.0
    ys = _grid_lines(rng, LANE_OFF, extent, (55.0, 110.0))
    xs = _grid_lines(rng, float(rng.uniform(25.0, 70.0)), extent, (55.0, 110.0))
    dirs = _dirs()
    pts: list[np.ndarray] = []
    yaws: list[np.ndarray] = []
    turn: list[np.ndarray] = []
    P = np.array([0.0, 0.0])
    h = "E"
    total = 0.0
    step = 0.1
    last_turn = 0
    while total < length + 20.0:
        hx, hy = dirs[h]
        # candidate crossing streets ahead
        if hx != 0:
            cands = sorted(x for x in xs if (x - P[0]) * hx > 0)
            cands = cands if hx > 0 else cands[::-1]
        else:
            cands = sorted(y for y in ys if (y - P[1]) * hy > 0)
            cands = cands if hy > 0 else cands[::-1]
        chosen = None
        for c in cands:
            decision = rng.random()
            kind = "S" if decision < 0.55 and last_turn < 3 else ("L" if rng.random() < 0.5 else "R")
            if kind == "S":
                last_turn += 1
                continue
            R = 7.0 if kind == "R" else 11.0
            # outgoing heading
            ho = (-hy, hx) if kind == "L" else (hy, -hx)
            right_out = (ho[1], -ho[0])
            # corner C: on current lane line and the new lane line (street at coordinate c)
            if hx != 0:
                C = np.array([c + right_out[0] * LANE_OFF, P[1]])
            else:
                C = np.array([P[0], c + right_out[1] * LANE_OFF])
            if float(np.dot(C - P, [hx, hy])) < R + 3.0:
                continue
            chosen = (C, R, ho, kind)
            break
        if chosen is None:  # no turn: drive 200 m straight
            n = int(round(200.0 / step))
            seg = P + np.outer(np.arange(1, n + 1) * step, [hx, hy])
            pts.append(seg)
            yaws.append(np.full(n, math.atan2(hy, hx)))
            turn.append(np.zeros(n, bool))
            P = seg[-1]
            total += 200.0
            continue
        C, R, ho, kind = chosen
        A = C - R * np.array([hx, hy], float)
        dist = float(np.dot(A - P, [hx, hy]))
        n = int(math.floor(dist / step))
        if n > 0:
            seg = P + np.outer(np.arange(1, n + 1) * step, [hx, hy])
            pts.append(seg)
            yaws.append(np.full(n, math.atan2(hy, hx)))
            turn.append(np.zeros(n, bool))
        # arc from A to B = C + R ho, centre Oc = A + R * n_turn
        nt = np.array([-hy, hx], float) if kind == "L" else np.array([hy, -hx], float)
        Oc = A + R * nt
        a0 = math.atan2(A[1] - Oc[1], A[0] - Oc[0])
        sgn = 1.0 if kind == "L" else -1.0
        m = int(math.ceil(R * math.pi / 2 / step))
        angs = [a0 + sgn * (math.pi / 2) * (i / m) for i in range(1, m + 1)]
        arc = np.array([[Oc[0] + R * _c(a), Oc[1] + R * _s(a)] for a in angs])
        yaw0 = math.atan2(hy, hx)
        pts.append(arc)
        yaws.append(np.array([yaw0 + sgn * (math.pi / 2) * (i / m) for i in range(1, m + 1)]))
        turn.append(np.ones(m, bool))
        P = C + R * np.array(ho, float)
        h = {v: k for k, v in dirs.items()}[ho]
        total += dist + R * math.pi / 2
        last_turn = 0
    xy = np.concatenate([np.zeros((1, 2))] + pts)
    yaw = np.concatenate([np.zeros(1)] + yaws)
    tr = np.concatenate([np.zeros(1, bool)] + turn)
    return Route(xy=np.round(xy, 9), yaw=yaw, turning=tr), xs, ys


ROUTE_AHEAD = 80.0  # m of road drawn past the last followed pose (the grid reaches 51.2 m ahead)
ROUTE_BEHIND = 40.0  # m of road drawn (straight) before the first followed pose


def planar_poses(poses_lidar: np.ndarray) -> np.ndarray:
    """Planar projection (N, 3) = (x, y, yaw) of real LiDAR poses, in the LiDAR frame of the first one.

    ``rel_i = inv(T_0) @ T_i``; x, y are its translation's first two components and yaw is the heading of its
    x axis, ``atan2(R[1, 0], R[0, 0])``. z, pitch and roll are dropped. The inverse is the rigid one
    (``R_0^T``, no LAPACK call) so that the result does not depend on the linear-algebra library.
    """
    T = np.asarray(poses_lidar, np.float64)
    R0, t0 = T[0, :3, :3], T[0, :3, 3]
    R = np.einsum("ji,njk->nik", R0, T[:, :3, :3])
    t = np.einsum("ji,nj->ni", R0, T[:, :3, 3] - t0)
    yaw = np.array([math.atan2(float(r[1, 0]), float(r[0, 0])) for r in R])
    return np.concatenate([t[:, :2], yaw[:, None]], axis=1)


def route_from_poses(
    poses_lidar: np.ndarray, n: int | None = None, ahead: float = ROUTE_AHEAD, behind: float = ROUTE_BEHIND
) -> Route:
    """Route along the planar projection (:func:`planar_poses`) of the first ``n`` real poses, densified to 0.1 m.

    The road must not end inside a scan's grid: the route goes on ``ahead`` metres past pose ``n - 1`` (along
    the real trajectory while the file lasts, then straight on) and starts ``behind`` metres before pose 0.
    Stops (repeated positions) are dropped, so a standing ego still gets a road.
    """
    plan = planar_poses(poses_lidar)
    n = len(plan) if n is None else max(1, min(int(n), len(plan)))
    xy, yaw = plan[:, :2], np.unwrap(plan[:, 2])
    seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    # real poses up to `ahead` metres past pose n-1, then a straight extension on the last heading
    target = float(s[n - 1]) + ahead
    end = int(np.searchsorted(s, target, side="right"))
    xy, yaw, s = xy[:end], yaw[:end], s[:end]
    keep = np.concatenate([[True], np.diff(s) > 1e-6])
    xy, yaw, s = xy[keep], yaw[keep], s[keep]
    rest = target - float(s[-1])
    if rest > 0.05:
        h = np.array([_c(float(yaw[-1])), _s(float(yaw[-1]))])
        xy = np.concatenate([xy, [xy[-1] + rest * h]])
        yaw = np.concatenate([yaw, [yaw[-1]]])
        s = np.concatenate([s, [s[-1] + rest]])
    h0 = np.array([_c(float(yaw[0])), _s(float(yaw[0]))])
    xy = np.concatenate([[xy[0] - behind * h0], xy])
    yaw = np.concatenate([[yaw[0]], yaw])
    s = np.concatenate([[0.0], s + behind])
    m = max(2, int(s[-1] / 0.1) + 1)
    ss = np.arange(m) * 0.1
    dx = np.interp(ss, s, xy[:, 0])
    dy = np.interp(ss, s, xy[:, 1])
    dyaw = np.interp(ss, s, yaw)
    turning = np.abs(np.gradient(dyaw, 0.1)) > 0.03
    return Route(xy=np.round(np.stack([dx, dy], 1), 9), yaw=dyaw, turning=turning)


def speed_profile(rng: np.random.Generator, route: Route) -> np.ndarray:
    """Target speed (m/s) per route sample: cruise 8.5..11.5 m/s, slow drift, ~6 m/s in turns."""
    n = len(route.xy)
    s = np.arange(n) * route.step
    cruise = float(rng.uniform(8.5, 11.5))
    phase = float(rng.uniform(0, 2 * math.pi))
    period = float(rng.uniform(120.0, 220.0))
    # slow drift, +-0.8 m/s (sampled every 10 m, linearly interpolated: no per-sample trig)
    knots = np.arange(0.0, s[-1] + 20.0, 10.0)
    drift = np.array([0.8 * _s(2 * math.pi * k / period + phase) for k in knots])
    v = cruise + np.interp(s, knots, drift)
    turn_v = np.where(route.turning, 6.0, np.inf)
    # widen the slow zone by 12 m on both sides
    w = int(12.0 / route.step)
    slow = ndimage.minimum_filter1d(turn_v, 2 * w + 1, mode="nearest")
    v = np.minimum(v, slow)
    k = int(20.0 / route.step)
    v = ndimage.uniform_filter1d(v, k, mode="nearest")
    return v


def sample_poses(route: Route, speed: np.ndarray, n: int, dt: float = 0.1) -> np.ndarray:
    """Planar LiDAR poses (n, 3) = (x, y, yaw) at 10 Hz along the route."""
    out = np.zeros((n, 3))
    s = 0.0
    for t in range(n):
        i = min(int(round(s / route.step)), len(route.xy) - 1)
        out[t] = (route.xy[i, 0], route.xy[i, 1], route.yaw[i])
        s += dt * float(speed[i])
    out[:, :2] = np.round(out[:, :2], 6)
    out[:, 2] = np.round(out[:, 2], 9)
    return out


def pose_matrix(x: float, y: float, yaw: float) -> np.ndarray:
    T = np.eye(4)
    c, s = _c(yaw), _s(yaw)
    T[:2, :2] = [[c, -s], [s, c]]
    T[0, 3], T[1, 3] = x, y
    return T


# ---- agents ------------------------------------------------------------------------------------------
@dataclass
class Path2D:
    xy: np.ndarray  # (M, 2) dense samples, 0.5 m apart
    yaw: np.ndarray  # (M,)
    step: float = 0.5

    @property
    def length(self) -> float:
        return self.step * (len(self.xy) - 1)


@dataclass
class Agent:
    path: int
    s0: float
    speed: float  # m/s, signed (negative = against the path direction)
    offset: float  # lateral offset, positive = left of the path direction
    code: int
    L: float
    Wd: float
    H: float


# ---- the world ---------------------------------------------------------------------------------------
@dataclass
class World:
    W: np.ndarray  # (NX, NY, 32) uint8 codes, static world
    origin: np.ndarray  # world (x, y) of the corner of cell (0, 0)
    poses: np.ndarray  # (n, 3) planar LiDAR poses (including look-ahead poses)
    paths: list[Path2D]
    agents: list[Agent]
    stats: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.W.shape[0]), int(self.W.shape[1])

    def lidar_pose(self, t: int) -> np.ndarray:
        x, y, yaw = self.poses[t]
        return pose_matrix(float(x), float(y), float(yaw))

    # -- agents --------------------------------------------------------------------------------------
    def agent_state(self, a: Agent, t: int) -> tuple[float, float, float]:
        p = self.paths[a.path]
        s = (a.s0 + a.speed * 0.1 * t) % p.length
        i = int(s / p.step)
        i = min(i, len(p.xy) - 2)
        f = s / p.step - i
        x = p.xy[i, 0] * (1 - f) + p.xy[i + 1, 0] * f
        y = p.xy[i, 1] * (1 - f) + p.xy[i + 1, 1] * f
        yaw = float(p.yaw[i])
        c, sn = _c(yaw), _s(yaw)
        x += -sn * a.offset
        y += c * a.offset
        if a.speed < 0:
            yaw += math.pi
        return round(float(x), 6), round(float(y), 6), yaw

    def stamp_agents(self, t: int, radius: float = 80.0) -> list[tuple[tuple[slice, slice], np.ndarray]]:
        """Write the moving agents of time t into ``W`` (only into empty voxels); returns an undo list."""
        ex, ey, _ = self.poses[t]
        undo: list[tuple[tuple[slice, slice], np.ndarray]] = []
        for a in self.agents:
            x, y, yaw = self.agent_state(a, t)
            d2 = (x - ex) ** 2 + (y - ey) ** 2
            if d2 > radius * radius:
                continue
            if d2 < (3.0 + a.L / 2) ** 2:  # never inside the ego vehicle
                continue
            undo.extend(
                self._stamp_box(x, y, yaw, a.L, a.Wd, a.H, a.code, only_empty=True, vehicle=a.code in (MOVING_CAR, CAR))
            )
        return undo

    def unstamp(self, undo: list[tuple[tuple[slice, slice], np.ndarray]]) -> None:
        for sl, mask in reversed(undo):
            self.W[sl][mask] = 0

    def _stamp_box(
        self,
        x: float,
        y: float,
        yaw: float,
        L: float,
        Wd: float,
        H: float,
        code: int,
        only_empty: bool,
        vehicle: bool,
        k0: int | None = None,
    ) -> list:
        c, s = _c(yaw), _s(yaw)
        r = 0.5 * math.hypot(L, Wd) + CELL
        ox, oy = self.origin
        i0 = max(0, int(math.floor((x - r - ox) / CELL)))
        i1 = min(self.W.shape[0], int(math.ceil((x + r - ox) / CELL)) + 1)
        j0 = max(0, int(math.floor((y - r - oy) / CELL)))
        j1 = min(self.W.shape[1], int(math.ceil((y + r - oy) / CELL)) + 1)
        if i0 >= i1 or j0 >= j1:
            return []
        cx = ox + CELL * (np.arange(i0, i1) + 0.5) - x
        cy = oy + CELL * (np.arange(j0, j1) + 0.5) - y
        u = c * cx[:, None] + s * cy[None, :]
        v = -s * cx[:, None] + c * cy[None, :]
        foot = (np.abs(u) <= L / 2) & (np.abs(v) <= Wd / 2)
        base = K_ROAD + 1 if k0 is None else k0
        prof = np.zeros((i1 - i0, j1 - j0, NZ), bool)
        if vehicle:  # body up to 1.0 m (0.2 m clearance), cabin (60 % of the length) up to H
            kb = kh(min(1.0, H))
            prof[foot, base : kb + 1] = True
            cab = (np.abs(u + 0.1 * L) <= 0.3 * L) & (np.abs(v) <= Wd / 2 - 0.1)
            prof[cab, base : kh(H) + 1] = True
        else:
            prof[foot, base : kh(H) + 1] = True
        sl = (slice(i0, i1), slice(j0, j1))
        region = self.W[sl]
        if only_empty:
            prof &= region == 0
        region[prof] = code
        return [(sl, prof)]

    # -- sampling ------------------------------------------------------------------------------------
    def cell_coords(
        self, pose: tuple[float, float, float], u: np.ndarray, v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Continuous cell coordinates of ``W`` (cell i spans [i, i+1)) of LiDAR-frame points (u, v) of a planar
        pose."""
        x, y, yaw = pose
        c, s = _c(float(yaw)), _s(float(yaw))
        xw = (c * u - s * v) + float(x)
        yw = (s * u + c * v) + float(y)
        return (xw - self.origin[0]) / CELL, (yw - self.origin[1]) / CELL

    def gather(self, pose: tuple[float, float, float], u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Columns of ``W`` at LiDAR-frame column centres (u, v) of a planar pose: (len(u), 32) codes."""
        fx, fy = self.cell_coords(pose, u, v)
        ix = np.floor(fx).astype(np.int64)
        iy = np.floor(fy).astype(np.int64)
        nx, ny = self.shape
        ok = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
        flat = np.where(ok, ix * ny + iy, 0)
        cols = self.W.reshape(-1, NZ)[flat]
        if not ok.all():
            cols[~ok] = 0
            cols[~ok, : K_ROAD + 1] = TERRAIN
        return cols


def _segment_samples(p0: np.ndarray, p1: np.ndarray, step: float) -> np.ndarray:
    n = max(2, int(math.ceil(float(np.linalg.norm(p1 - p0)) / step)) + 1)
    f = np.arange(n) / (n - 1)
    return p0[None, :] * (1 - f[:, None]) + p1[None, :] * f[:, None]


def _path_from_xy(xy: np.ndarray, step: float = 0.5) -> Path2D:
    seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(2, int(s[-1] / step) + 1)
    ss = np.arange(n) * step
    px = np.interp(ss, s, xy[:, 0])
    py = np.interp(ss, s, xy[:, 1])
    d = np.diff(np.stack([px, py], 1), axis=0)
    yaw = np.array([math.atan2(float(b), float(a)) for a, b in d] + [0.0])
    yaw[-1] = yaw[-2] if len(yaw) > 1 else 0.0
    return Path2D(xy=np.round(np.stack([px, py], 1), 6), yaw=yaw, step=step)


# ---- the town, stage by stage --------------------------------------------------------------------------
# ``build_world`` runs the stages below in a fixed order on one random generator and most of them draw from it,
# so reordering the stages (or the draws inside one) changes every sequence's world.

_ZONE_CELLS = 160  # side of a zone in cells (32 m)


@dataclass
class _TownRaster:
    """Extent of the world raster: ``NX x NY`` cells whose cell (0, 0) has its corner at ``origin``."""

    lo: np.ndarray  # (x, y) of the lower corner, before rounding (street ends are laid out from it)
    hi: np.ndarray  # (x, y) of the upper corner
    origin: np.ndarray  # ``lo`` rounded to 1e-6 m
    NX: int
    NY: int

    @property
    def area_km2(self) -> float:
        return self.NX * self.NY * CELL * CELL / 1e6


@dataclass
class _StreetWidths:
    """Cross-section of every street (index = street), in m."""

    hw: np.ndarray  # road half width
    pw: np.ndarray  # parking strip (0 where none)
    sw: np.ndarray  # sidewalk
    vw: np.ndarray  # grass verge (0 where none)


@dataclass
class _StreetFields:
    """Per cell: distance to the nearest street centreline, the direction away from it, and its cross-section."""

    d: np.ndarray  # (NX, NY) float32 distance (m) to the nearest centreline
    gx: np.ndarray  # (NX, NY) float32 cell offset from the nearest centreline cell, x (not normalised)
    gy: np.ndarray  # (NX, NY) float32 same, y
    H: np.ndarray  # (NX, NY) float32 road half width of the nearest street
    P: np.ndarray  # parking strip width
    S: np.ndarray  # sidewalk width
    VW: np.ndarray  # verge width
    front: np.ndarray  # H + P + VW + S: where the lots begin


@dataclass
class _Zones:
    """32 m zones (0 residential, 1 commercial, 2 green, 3 parking lot) and their per-zone flags, per cell."""

    zone: np.ndarray  # (NX, NY) uint8
    fence_flag: np.ndarray  # (NX, NY) bool: the zone's lots are fenced
    hedge_flag: np.ndarray  # (NX, NY) bool: the zone's lots have front hedges
    zx: int  # number of zones along x (with a spare row)
    zy: int


@dataclass
class _Ground:
    """The static raster with its ground levels written, and the ground cover of every cell."""

    W: np.ndarray  # (NX, NY, NZ) uint8 codes
    G: np.ndarray  # (NX, NY) uint8 ground code
    Gk: np.ndarray  # (NX, NY) int8 top voxel of the ground
    park: np.ndarray  # (NX, NY) bool parking strips
    verge: np.ndarray  # grass verges
    side: np.ndarray  # sidewalks
    lot: np.ndarray  # everything behind the sidewalks
    drv: np.ndarray  # driveways


@dataclass
class _Town:
    """State shared by the stages that place objects in the raster (``ground.W`` is written in place)."""

    rng: np.random.Generator
    grid: _TownRaster
    fields: _StreetFields
    zones: _Zones
    ground: _Ground
    reserved: np.ndarray  # (NX, NY) bool: cells where nothing big may stand
    taken: np.ndarray  # (NX, NY) bool: building footprints with a 0.5 m margin
    stats: dict[str, int]

    def ground_k(self, ix: int, iy: int) -> int:
        """Ground top voxel of cell (ix, iy), clamped to the raster."""
        NX, NY = self.grid.NX, self.grid.NY
        return int(self.ground.Gk[min(max(ix, 0), NX - 1), min(max(iy, 0), NY - 1)])

    def stamp_rect(
        self,
        x: float,
        y: float,
        yaw: float,
        L: float,
        Wd: float,
        k0: int,
        k1: int,
        code: int,
        overwrite: bool = True,
        only_free2d: np.ndarray | None = None,
    ) -> bool:
        """Write ``code`` into levels k0..k1 of an L x Wd rectangle (only into empty voxels unless ``overwrite``)."""
        rc = _rect_cells(x, y, yaw, L, Wd, self.grid.origin, self.grid.NX, self.grid.NY)
        if rc is None:
            return False
        (si, sj), foot, _ = rc
        if only_free2d is not None:
            if (only_free2d[si, sj] & foot).any():
                return False
        blk = self.ground.W[si, sj, k0 : k1 + 1]
        if overwrite:
            blk[foot] = code
        else:
            sub = blk[foot]
            sub[sub == 0] = code
            blk[foot] = sub
        return True

    def normal_at(self, ix: int, iy: int) -> tuple[float, float]:
        """Unit normal pointing away from the nearest street centreline at cell (ix, iy)."""
        a, b = float(self.fields.gx[ix, iy]), float(self.fields.gy[ix, iy])
        n = math.hypot(a, b)
        return (a / n, b / n) if n > 0 else (1.0, 0.0)

    def cell_of(self, x: float, y: float) -> tuple[int, int]:
        origin = self.grid.origin
        return int((x - origin[0]) / CELL), int((y - origin[1]) / CELL)

    def pos_of(self, ix: int, iy: int) -> tuple[float, float]:
        origin = self.grid.origin
        return float(origin[0] + CELL * (ix + 0.5)), float(origin[1] + CELL * (iy + 0.5))

    def sample_cells(self, mask: np.ndarray, n: int) -> np.ndarray:
        """``n`` cells of ``mask`` drawn uniformly with replacement: (n, 2) indices (none if the mask is empty)."""
        idx = np.flatnonzero(mask)
        if idx.size == 0 or n <= 0:
            return np.zeros((0, 2), np.int64)
        pick = idx[self.rng.integers(0, idx.size, n)]
        return np.stack(np.unravel_index(pick, mask.shape), 1)


def _ego_route_and_poses(
    rng: np.random.Generator, n_total: int, poses_lidar: np.ndarray | None
) -> tuple[Route, list[float], list[float], np.ndarray]:
    """The ego's route and its ``n_total`` planar poses, plus the street grid lines (x, y) of a procedural route.

    Without ``poses_lidar`` the route runs through a procedural street grid at a drawn speed profile; with
    them the route follows their planar projection (no grid lines), holding the last pose past their end.
    """
    if poses_lidar is None:
        route, xs, ys = procedural_route(rng, length=12.0 * 0.1 * n_total + 40.0)
        speed = speed_profile(rng, route)
        poses = sample_poses(route, speed, n_total)
    else:
        route = route_from_poses(poses_lidar, n_total)
        xs, ys = [], []
        plan = planar_poses(poses_lidar[:n_total])
        poses = np.zeros((len(plan), 3))
        poses[:, :2] = np.round(plan[:, :2], 6) + 0.0  # + 0.0: no negative zeros in poses.txt
        poses[:, 2] = np.round(plan[:, 2], 9) + 0.0
        if len(poses) < n_total:  # extend the look-ahead by holding the last pose
            poses = np.concatenate([poses, np.repeat(poses[-1:], n_total - len(poses), 0)])
    return route, xs, ys, poses


def _grid_extent(poses: np.ndarray) -> _TownRaster:
    """The raster covers the ego's positions with an 80 m margin, snapped to the cell size."""
    used = poses[:, :2]
    margin = 80.0
    lo = np.floor((used.min(0) - margin) / CELL) * CELL
    hi = np.ceil((used.max(0) + margin) / CELL) * CELL
    origin = np.round(lo, 6)
    NX, NY = int(round((hi[0] - lo[0]) / CELL)), int(round((hi[1] - lo[1]) / CELL))
    return _TownRaster(lo=lo, hi=hi, origin=origin, NX=NX, NY=NY)


def _street_centrelines(
    rng: np.random.Generator, route: Route, xs: list[float], ys: list[float], grid: _TownRaster, cross_streets: bool
) -> tuple[list[np.ndarray], int]:
    """Street centreline polylines and the index of the route's own.

    The grid lines that cross the raster become straight streets past its edges; the route's centreline (ego
    lane shifted left by ``LANE_OFF``) follows its arcs, so turning corners are rounded. With ``cross_streets``
    (a route that follows real poses) straight cross streets are added every ~90-130 m along it.
    """
    lo, hi = grid.lo, grid.hi
    streets: list[np.ndarray] = []
    for x in xs:
        if lo[0] - 10 < x < hi[0] + 10:
            streets.append(np.array([[x, lo[1] - 20], [x, hi[1] + 20]]))
    for y in ys:
        if lo[1] - 10 < y < hi[1] + 10:
            streets.append(np.array([[lo[0] - 20, y], [hi[0] + 20, y]]))
    cy_, sy_ = np.array([_c(a) for a in route.yaw[::5]]), np.array([_s(a) for a in route.yaw[::5]])
    rc = route.xy[::5] + LANE_OFF * np.stack([-sy_, cy_], 1)
    route_id = len(streets)
    streets.append(rc)
    if cross_streets:
        streets.extend(_cross_streets(rng, route, rc))
    return streets, route_id


def _cross_streets(rng: np.random.Generator, route: Route, rc: np.ndarray) -> list[np.ndarray]:
    """300 m straight streets across the route centreline ``rc``, the first 40-90 m along it, then every 90-130 m."""
    out: list[np.ndarray] = []
    s = 0.0
    nxt = float(rng.uniform(40, 90))
    for i in range(1, len(rc)):
        s += float(np.linalg.norm(rc[i] - rc[i - 1]))
        if s >= nxt:
            yaw = float(route.yaw[min(5 * i, len(route.yaw) - 1)])
            nrm = np.array([-_s(yaw), _c(yaw)])
            out.append(np.stack([rc[i] - 150 * nrm, rc[i] + 150 * nrm]))
            nxt = s + float(rng.uniform(90, 130))
    return out


def _street_widths(rng: np.random.Generator, nst: int, route_id: int) -> _StreetWidths:
    """Draw the cross-section of ``nst`` streets; the route's own street gets a road half width of 4.5-6 m."""
    hw = rng.uniform(3.5, 6.5, nst)  # road half width
    pw = np.where(rng.random(nst) < 0.35, rng.uniform(2.2, 2.6, nst), 0.0)  # parking strip
    sw = rng.uniform(1.8, 3.8, nst)  # sidewalk
    vw = np.where(rng.random(nst) < 0.75, rng.uniform(1.5, 3.5, nst), 0.0)  # grass verge (terrain)
    hw[route_id] = float(rng.uniform(4.5, 6.0))
    return _StreetWidths(hw=hw, pw=pw, sw=sw, vw=vw)


def _street_fields(
    streets: list[np.ndarray], widths: _StreetWidths, grid: _TownRaster
) -> tuple[list[np.ndarray], _StreetFields]:
    """Rasterise the centrelines (0.1 m samples) and take every cell's nearest one (exact distance transform).

    Returns the dense centreline samples (one array per street) and the per-cell fields.
    """
    origin, NX, NY = grid.origin, grid.NX, grid.NY
    hw, pw, sw, vw = widths.hw, widths.pw, widths.sw, widths.vw
    sid = np.full((NX, NY), -1, np.int32)
    dense_paths: list[np.ndarray] = []
    for i, pl in enumerate(streets):
        pts = np.concatenate([_segment_samples(pl[j], pl[j + 1], 0.1) for j in range(len(pl) - 1)])
        dense_paths.append(pts)
        ix = np.floor((pts[:, 0] - origin[0]) / CELL).astype(np.int64)
        iy = np.floor((pts[:, 1] - origin[1]) / CELL).astype(np.int64)
        ok = (ix >= 0) & (ix < NX) & (iy >= 0) & (iy < NY)
        sid[ix[ok], iy[ok]] = i
    dist, (nix, niy) = ndimage.distance_transform_edt(sid < 0, return_indices=True)
    d = (dist * CELL).astype(np.float32)
    nid = sid[nix, niy]
    del dist
    # unit normal pointing away from the nearest centreline (for orienting things along streets)
    gx = (np.arange(NX)[:, None] - nix).astype(np.float32)
    gy = (np.arange(NY)[None, :] - niy).astype(np.float32)
    del nix, niy
    H = hw[nid].astype(np.float32)
    P = pw[nid].astype(np.float32)
    S = sw[nid].astype(np.float32)
    VW = vw[nid].astype(np.float32)
    front = H + P + VW + S  # start of the lots
    return dense_paths, _StreetFields(d=d, gx=gx, gy=gy, H=H, P=P, S=S, VW=VW, front=front)


def _zones(rng: np.random.Generator, grid: _TownRaster) -> _Zones:
    """Draw the 32 m zones' use (residential 45 %, commercial 17 %, green 25 %, parking lot 13 %) and flags."""
    NX, NY = grid.NX, grid.NY
    zc = _ZONE_CELLS
    zx, zy = NX // zc + 2, NY // zc + 2
    zone_small = rng.choice(4, size=(zx, zy), p=[0.45, 0.17, 0.25, 0.13]).astype(np.uint8)
    # 0 residential, 1 commercial, 2 green, 3 parking lot
    zone = np.repeat(np.repeat(zone_small, zc, 0), zc, 1)[:NX, :NY]
    fence_flag = np.repeat(np.repeat(rng.random((zx, zy)) < 0.7, zc, 0), zc, 1)[:NX, :NY]
    hedge_flag = np.repeat(np.repeat(rng.random((zx, zy)) < 0.85, zc, 0), zc, 1)[:NX, :NY]
    return _Zones(zone=zone, fence_flag=fence_flag, hedge_flag=hedge_flag, zx=zx, zy=zy)


def _ground(rng: np.random.Generator, grid: _TownRaster, f: _StreetFields, zones: _Zones) -> _Ground:
    """Ground cover and height of every cell, written into the bottom levels of a new raster.

    Streets get road, parking strips, raised sidewalks and verges by distance from their centreline; lots get
    terrain lawns with uneven patches (residential, green), pavement with other-ground plazas (commercial),
    parking (parking lots) and other-ground driveways (residential). Dashed lane markings go on wide roads.
    """
    NX, NY = grid.NX, grid.NY
    d, H, P, VW, front = f.d, f.H, f.P, f.VW, f.front
    zx, zy, zc = zones.zx, zones.zy, _ZONE_CELLS
    W = np.zeros((NX, NY, NZ), np.uint8)
    G = np.full((NX, NY), TERRAIN, np.uint8)
    Gk = np.full((NX, NY), K_ROAD, np.int8)
    road = d < H
    park = (~road) & (d < H + P)
    verge = (~road) & (~park) & (d < H + P + VW)
    side = (~road) & (~park) & (~verge) & (d < front)
    lot = d >= front
    G[road] = ROAD
    G[park] = PARKING
    G[side] = SIDEWALK
    Gk[side] = K_CURB
    G[verge] = TERRAIN
    Gk[verge] = K_CURB
    # lot ground
    coarse_rough = rng.random((NX // 10 + 2, NY // 10 + 2)) < 0.35
    rough = np.repeat(np.repeat(coarse_rough, 10, 0), 10, 1)[:NX, :NY]
    lotz = zones.zone
    G[lot & (lotz == 1)] = SIDEWALK  # commercial pavement
    Gk[lot & (lotz == 1)] = K_CURB
    og = lot & (lotz == 1) & np.repeat(np.repeat(rng.random((zx * 4, zy * 4)) < 0.35, zc // 4, 0), zc // 4, 1)[:NX, :NY]
    G[og] = OTHER_GROUND
    G[lot & (lotz == 3)] = PARKING
    Gk[lot & ((lotz == 0) | (lotz == 2)) & rough] = K_CURB  # uneven terrain
    # driveways (other-ground) crossing lawns in residential zones
    drv = (
        lot
        & (lotz == 0)
        & (d < front + 12)
        & (np.repeat(np.repeat(rng.random((NX // 20 + 1, NY // 20 + 1)) < 0.12, 20, 0), 20, 1)[:NX, :NY])
    )
    G[drv] = OTHER_GROUND
    Gk[drv] = K_ROAD
    # lane markings: dashed centre lines on streets with a wide road
    mark = (d < 0.15) & (H > 4.0) & (((np.arange(NX)[:, None] + np.arange(NY)[None, :]) // 15) % 2 == 0)
    for k in range(NZ):
        if k > 2:
            break
        W[:, :, k] = np.where(k <= Gk, G, 0)
    W[mark, K_ROAD] = LANE_MARKING
    return _Ground(W=W, G=G, Gk=Gk, park=park, verge=verge, side=side, lot=lot, drv=drv)


def _buildings(t: _Town) -> None:
    """Buildings on residential and commercial lots, aligned with the nearest street and set back from the lot
    front, 2.5 m apart from each other; 30 % get an L-shaped wing behind."""
    rng, origin, NX, NY = t.rng, t.grid.origin, t.grid.NX, t.grid.NY
    d, front, zone, lot = t.fields.d, t.fields.front, t.zones.zone, t.ground.lot
    taken, reserved = t.taken, t.reserved
    nb = 0
    cand = t.sample_cells(lot & (zone != 2) & (zone != 3) & (d < front + 20), int(5000 * t.grid.area_km2 * 4))
    for ix, iy in cand:
        z = int(zone[ix, iy])
        nx_, ny_ = t.normal_at(ix, iy)
        yaw = math.atan2(-nx_, ny_)  # along the street
        if z == 0:
            L, D, Hh, setback = rng.uniform(8, 16), rng.uniform(8, 13), rng.uniform(4.5, 10), rng.uniform(1.5, 5)
        else:
            L, D, Hh, setback = rng.uniform(14, 40), rng.uniform(10, 22), rng.uniform(7, 22), rng.uniform(0.3, 2.5)
        dd = float(d[ix, iy])
        fr = float(front[ix, iy])
        x, y = t.pos_of(ix, iy)
        shift = fr + setback + D / 2 - dd
        x, y = x + nx_ * shift, y + ny_ * shift
        cx_, cy_ = t.cell_of(x, y)
        if not (0 <= cx_ < NX and 0 <= cy_ < NY):
            continue
        # footprint must be on lots and keep 2.5 m from other buildings
        rc_ = _rect_cells(x, y, yaw, L + 5, D + 5, origin, NX, NY)
        if rc_ is None or (taken[rc_[0]] & rc_[1]).any():
            continue
        if not _all_in(lot, x, y, yaw, L, D, origin, NX, NY):
            continue
        t.stamp_rect(x, y, yaw, L, D, 0, kh(Hh), BUILDING)
        _mark(taken, x, y, yaw, L + 1, D + 1, origin)
        _mark(reserved, x, y, yaw, L + 1, D + 1, origin)
        nb += 1
        if rng.random() < 0.3:  # L-shaped wing behind
            wl, wd = L * float(rng.uniform(0.3, 0.5)), D * float(rng.uniform(0.6, 1.0))
            off = (L / 2 - wl / 2) * (1 if rng.random() < 0.5 else -1)
            c, s = _c(yaw), _s(yaw)
            wx, wy = x + c * off + nx_ * (D / 2 + wd / 2), y + s * off + ny_ * (D / 2 + wd / 2)
            if _all_in(lot & ~taken, wx, wy, yaw, wl, wd, origin, NX, NY):
                t.stamp_rect(wx, wy, yaw, wl, wd, 0, kh(Hh * float(rng.uniform(0.6, 1.0))), BUILDING)
                _mark(taken, wx, wy, yaw, wl + 1, wd + 1, origin)
                _mark(reserved, wx, wy, yaw, wl + 1, wd + 1, origin)
    t.stats["buildings"] = nb


def _hedges_and_fences(t: _Town) -> None:
    """Hedges and fences along the front of the lots (with gaps), and garden fences further back in residential
    zones; their cells become reserved."""
    rng, NX, NY = t.rng, t.grid.NX, t.grid.NY
    d, front = t.fields.d, t.fields.front
    zone, fence_flag, hedge_flag = t.zones.zone, t.zones.fence_flag, t.zones.hedge_flag
    zx, zy, zc = t.zones.zx, t.zones.zy, _ZONE_CELLS
    W, Gk, lot, drv = t.ground.W, t.ground.Gk, t.ground.lot, t.ground.drv
    taken, reserved = t.taken, t.reserved
    gapn = np.repeat(np.repeat(rng.random((NX // 25 + 1, NY // 25 + 1)) < 0.22, 25, 0), 25, 1)[:NX, :NY]
    free_lot = lot & ~taken & ~drv
    hedge = free_lot & (d >= front + 0.2) & (d < front + 2.2) & (zone != 3) & (hedge_flag | (zone == 2)) & ~gapn
    fence = free_lot & (d >= front + 0.0) & (d < front + 0.2) & ~gapn & (fence_flag | (zone == 3))
    hedge_h = np.repeat(np.repeat(rng.integers(kh(1.2), kh(2.8) + 1, (zx * 6, zy * 6)), zc // 6, 0), zc // 6, 1)[
        :NX, :NY
    ]
    fence_h = np.repeat(np.repeat(rng.integers(kh(1.0), kh(2.2) + 1, (zx * 6, zy * 6)), zc // 6, 0), zc // 6, 1)[
        :NX, :NY
    ]
    # second fence line along back of lots (garden fences) and walls around parking lots
    fence2 = free_lot & (d >= front + 9.0) & (d < front + 9.2) & fence_flag & (zone == 0) & ~gapn
    ks = np.arange(NZ)[None, None, :]
    for m, hgt, code in ((hedge, hedge_h, VEGETATION), (fence | fence2, fence_h, FENCE)):
        ii, jj = np.nonzero(m)
        base = Gk[ii, jj].astype(np.int64) + 1
        top = hgt[ii, jj]
        colmask = (ks[0] >= base[:, None]) & (ks[0] <= top[:, None])
        cols = W[ii, jj]
        cols[colmask] = code
        W[ii, jj] = cols
        reserved[ii, jj] = True
    t.stats["hedge_cells"] = int(hedge.sum())
    t.stats["fence_cells"] = int((fence | fence2).sum())


def _tree(t: _Town, x: float, y: float, big: bool) -> None:
    """A trunk and an ellipsoid crown at (x, y); the crown fills only empty or vegetation voxels."""
    rng, W = t.rng, t.ground.W
    ix, iy = t.cell_of(x, y)
    g = t.ground_k(ix, iy)
    tr = float(rng.uniform(0.1, 0.2 if not big else 0.3))
    crown_c = float(rng.uniform(3.6, 5.5) if big else rng.uniform(2.5, 3.6))
    rh = float(rng.uniform(2.5, 4.5) if big else rng.uniform(1.5, 2.5))
    rv = float(rng.uniform(1.6, 2.8) if big else rng.uniform(1.0, 1.6))
    box = _ellipsoid_box(W, t.grid.origin, x, y, GROUND_Z + crown_c, rh, rv)
    if box is None:
        return
    i0, i1, j0, j1, cx, cy, e = box
    blk = W[i0:i1, j0:j1]
    crown = (e <= 1.0) & ((blk == 0) | (blk == VEGETATION))
    blk[crown] = VEGETATION
    trunk = (cx[:, None] ** 2 + cy[None, :] ** 2) <= (tr + 0.1) ** 2
    top = kh(crown_c)
    sub = blk[:, :, g + 1 : top + 1]
    sub[trunk] = TRUNK
    blk[:, :, g + 1 : top + 1] = sub


def _far_enough(placed: list[tuple[float, float]], x: float, y: float, dmin: float) -> bool:
    """(x, y) is at least ``dmin`` from the last 400 ``placed`` points."""
    for px, py in placed[-400:]:
        if (px - x) ** 2 + (py - y) ** 2 < dmin * dmin:
            return False
    return True


def _trees_and_bushes(t: _Town) -> None:
    """Street trees every 6-10 m on wide sidewalks and verges, then trees and bushes 3-6 m apart on free lawns."""
    rng, origin, W = t.rng, t.grid.origin, t.ground.W
    d, front, S, VW = t.fields.d, t.fields.front, t.fields.S, t.fields.VW
    zone, G, side, verge, lot = t.zones.zone, t.ground.G, t.ground.side, t.ground.verge, t.ground.lot
    area_km2 = t.grid.area_km2
    placed: list[tuple[float, float]] = []
    street_tree_band = (side & (d >= front - 1.0) & (d < front - 0.4) & (S > 2.2)) | (verge & (VW > 1.5))
    for ix, iy in t.sample_cells(street_tree_band, int(1500 * area_km2 * 4)):
        x, y = t.pos_of(ix, iy)
        if _far_enough(placed, x, y, float(rng.uniform(6.0, 10.0))):
            placed.append((x, y))
            _tree(t, x, y, big=rng.random() < 0.7)
    lawn = lot & ~t.taken & ~t.reserved & ((zone == 0) | (zone == 2)) & (G == TERRAIN)
    for ix, iy in t.sample_cells(lawn, int(5000 * area_km2 * 4)):
        x, y = t.pos_of(ix, iy)
        if _far_enough(placed, x, y, float(rng.uniform(3.0, 6.0))):
            placed.append((x, y))
            if rng.random() < 0.55:
                _tree(t, x, y, big=rng.random() < 0.6)
            else:  # bush
                r = float(rng.uniform(1.0, 2.5))
                hgt = float(rng.uniform(1.0, 2.5))
                stamp_ellipsoid(W, origin, x, y, GROUND_Z + hgt * 0.4, r, hgt * 0.6, VEGETATION)
    t.stats["trees_and_bushes"] = len(placed)


def _poles_and_signs(t: _Town) -> None:
    """Poles at the sidewalk curb at least 11 m apart, then traffic signs (a pole and a plate facing the road)
    at least 5 m from the poles and signs already placed."""
    rng = t.rng
    d, H, P = t.fields.d, t.fields.H, t.fields.P
    area_km2 = t.grid.area_km2
    curb_band = t.ground.side & (d >= H + P + 0.3) & (d < H + P + 0.6)
    poles: list[tuple[float, float]] = []
    for ix, iy in t.sample_cells(curb_band, int(1200 * area_km2 * 4)):
        x, y = t.pos_of(ix, iy)
        if all((px - x) ** 2 + (py - y) ** 2 > 11.0**2 for px, py in poles[-300:]):
            poles.append((x, y))
            g = t.ground_k(ix, iy)
            w = 0.4 if rng.random() < 0.5 else 0.3
            t.stamp_rect(x, y, 0.0, w, w, g + 1, NZ - 1, POLE)
    nsign = 0
    for ix, iy in t.sample_cells(curb_band, int(1500 * area_km2 * 4)):
        x, y = t.pos_of(ix, iy)
        if all((px - x) ** 2 + (py - y) ** 2 > 5.0**2 for px, py in poles[-300:]):
            poles.append((x, y))
            g = t.ground_k(ix, iy)
            top = float(rng.uniform(2.4, 3.2))
            t.stamp_rect(x, y, 0.0, 0.3, 0.3, g + 1, kh(top - 0.6), POLE)
            nx_, ny_ = t.normal_at(ix, iy)
            yaw = math.atan2(ny_, nx_)  # plate faces the road: spans across the sidewalk normal
            pw_ = float(rng.uniform(0.7, 1.2))
            t.stamp_rect(x, y, yaw + math.pi / 2, pw_, 0.3, kh(top - 0.8) + 1, kh(top), TRAFFIC_SIGN)
            nsign += 1
    t.stats["poles_and_signs"] = len(poles)
    t.stats["signs"] = nsign


def _sidewalk_objects(t: _Town) -> None:
    """Small objects near the back of the sidewalks: parked bicycles, motorcycles, standing people, bins and
    benches (other-object), shelters and kiosks (other-structure); written only into empty voxels."""
    rng = t.rng
    d, front = t.fields.d, t.fields.front
    obj_band = t.ground.side & (d >= front - 1.2) & (d < front - 0.3)
    for ix, iy in t.sample_cells(obj_band, int(900 * t.grid.area_km2 * 4)):
        x, y = t.pos_of(ix, iy)
        g = t.ground_k(ix, iy)
        nx_, ny_ = t.normal_at(ix, iy)
        yaw = math.atan2(-nx_, ny_)
        r = rng.random()
        if r < 0.25:  # parked bicycles (racks of 1-4)
            for q in range(int(rng.integers(1, 5))):
                t.stamp_rect(
                    x + q * 0.7 * nx_,
                    y + q * 0.7 * ny_,
                    yaw + math.pi / 2,
                    1.7,
                    0.5,
                    g + 1,
                    g + kh(1.0) - K_ROAD,
                    BICYCLE,
                    overwrite=False,
                )
        elif r < 0.42:
            t.stamp_rect(x, y, yaw, 2.0, 0.8, g + 1, g + kh(1.2) - K_ROAD, MOTORCYCLE, overwrite=False)
        elif r < 0.72:  # standing / waiting people
            t.stamp_rect(x, y, 0.0, 0.5, 0.5, g + 1, g + kh(1.7) - K_ROAD, PERSON, overwrite=False)
        elif r < 0.9:  # bins, benches (raw 99 other-object: ignored by the metric)
            t.stamp_rect(x, y, yaw, 1.2, 0.6, g + 1, g + kh(1.0) - K_ROAD, OTHER_OBJECT, overwrite=False)
        else:  # shelters, kiosks (raw 52 other-structure: ignored)
            t.stamp_rect(x, y, yaw, 3.0, 1.4, g + 1, g + kh(2.5) - K_ROAD, OTHER_STRUCTURE, overwrite=False)


def _parked_vehicle(t: _Town, x: float, y: float, yaw: float) -> None:
    """One parked vehicle at (x, y) heading ``yaw``: 93 % cars (body and cabin), 3.5 % trucks, 3.5 % other
    vehicles; written only into empty voxels."""
    rng = t.rng
    r = rng.random()
    if r < 0.93:
        code, L, Wd, Hh = CAR, rng.uniform(3.9, 4.8), rng.uniform(1.7, 1.9), rng.uniform(1.4, 1.6)
    elif r < 0.965:
        code, L, Wd, Hh = TRUCK, rng.uniform(6.0, 9.0), rng.uniform(2.3, 2.5), rng.uniform(2.8, 3.5)
    else:
        code, L, Wd, Hh = OTHER_VEHICLE, rng.uniform(5.0, 11.0), rng.uniform(2.0, 2.5), rng.uniform(2.0, 3.2)
    ix, iy = t.cell_of(x, y)
    g = t.ground_k(ix, iy)
    L, Wd, Hh = float(L), float(Wd), float(Hh)
    c, s = _c(yaw), _s(yaw)
    if code == CAR:
        t.stamp_rect(x, y, yaw, L, Wd, g + 1, g + kh(1.0) - K_ROAD, code, overwrite=False)
        t.stamp_rect(
            x - 0.1 * L * c, y - 0.1 * L * s, yaw, 0.6 * L, Wd - 0.2, g + 1, g + kh(Hh) - K_ROAD, code, overwrite=False
        )
    else:
        t.stamp_rect(x, y, yaw, L, Wd, g + 1, g + kh(Hh) - K_ROAD, code, overwrite=False)


def _parked_vehicles(t: _Town) -> None:
    """Vehicles along the parking strips (parallel to the street, at least 7 m apart) and in parking lots
    (across the street direction, at least 3.2 m apart)."""
    rng = t.rng
    d, front, H = t.fields.d, t.fields.front, t.fields.H
    area_km2 = t.grid.area_km2
    vehicles: list[tuple[float, float]] = []
    strip = t.ground.park & (d >= H + 0.9) & (d < H + 1.3)
    for ix, iy in t.sample_cells(strip, int(3000 * area_km2 * 4)):
        x, y = t.pos_of(ix, iy)
        if rng.random() < 0.55:
            continue
        if all((px - x) ** 2 + (py - y) ** 2 > 7.0**2 for px, py in vehicles[-400:]):
            nx_, ny_ = t.normal_at(ix, iy)
            _parked_vehicle(t, x, y, math.atan2(-nx_, ny_))
            vehicles.append((x, y))
    plot = t.ground.lot & (t.zones.zone == 3) & ~t.taken & (d > front + 2.0)
    for ix, iy in t.sample_cells(plot, int(4000 * area_km2 * 4)):
        x, y = t.pos_of(ix, iy)
        if rng.random() < 0.3:
            continue
        if all((px - x) ** 2 + (py - y) ** 2 > 3.2**2 for px, py in vehicles[-400:]):
            nx_, ny_ = t.normal_at(ix, iy)
            _parked_vehicle(t, x, y, math.atan2(ny_, nx_))
            vehicles.append((x, y))
    t.stats["parked_vehicles"] = len(vehicles)


def _moving_agents(rng: np.random.Generator, paths: list[Path2D], route_id: int, widths: _StreetWidths) -> list[Agent]:
    """Agents on every street of at least 20 m: cars and motorcyclists in both lanes (only the oncoming one on the
    ego's street), bicyclists at the edge of wide roads, pedestrians on the sidewalks."""
    hw, pw, sw = widths.hw, widths.pw, widths.sw
    agents: list[Agent] = []
    for i, p in enumerate(paths):
        if p.length < 20:
            continue
        n_cars = max(1, int(p.length / 45.0))
        for _ in range(n_cars):
            lane = LANE_OFF if rng.random() < 0.5 else -LANE_OFF
            if i == route_id:
                lane = LANE_OFF  # only oncoming traffic on the ego's street
            v = float(rng.uniform(6.0, 13.0)) * (1 if lane < 0 else -1)
            r = rng.random()
            if r < 0.88:
                agents.append(
                    Agent(
                        i,
                        float(rng.uniform(0, p.length)),
                        v,
                        lane,
                        MOVING_CAR,
                        float(rng.uniform(3.9, 4.8)),
                        float(rng.uniform(1.7, 1.9)),
                        1.5,
                    )
                )
            else:
                agents.append(Agent(i, float(rng.uniform(0, p.length)), v, lane, MOVING_MOTORCYCLIST, 2.0, 0.8, 1.6))
        hwi, side_off = float(hw[i]), float(hw[i] + pw[i] + sw[i] / 2)
        for _ in range(max(1, int(p.length / 60.0))):
            sgn = 1 if rng.random() < 0.5 else -1
            if hwi >= 4.5:
                agents.append(
                    Agent(
                        i,
                        float(rng.uniform(0, p.length)),
                        -sgn * float(rng.uniform(3.5, 6.5)),
                        sgn * (hwi - 0.8),
                        MOVING_BICYCLIST,
                        1.8,
                        0.6,
                        1.7,
                    )
                )
        for _ in range(max(1, int(p.length / 25.0))):
            sgn = 1 if rng.random() < 0.5 else -1
            agents.append(
                Agent(
                    i,
                    float(rng.uniform(0, p.length)),
                    float(rng.uniform(-1.6, 1.6)),
                    sgn * side_off,
                    MOVING_PERSON,
                    0.6,
                    0.5,
                    float(rng.uniform(1.5, 1.9)),
                )
            )
    return agents


MOVING_VEHICLE_STREAM = 1_000_033  # appended to a sequence's entropy to thin its moving vehicles (generator 1.2)


def thin_moving_vehicles(agents: list[Agent], seed_seq: list[int], keep: float) -> list[Agent]:
    """Generator 1.2: keep each moving car or motorcyclist with probability ``keep`` (its own random stream, so the
    rest of the world is unchanged): vehicles near the ego are then mostly the parked ones, as in KITTI 08."""
    rng = np.random.default_rng(list(seed_seq) + [MOVING_VEHICLE_STREAM])
    return [a for a in agents if a.code not in (MOVING_CAR, MOVING_MOTORCYCLIST) or rng.random() < keep]


STOPPED_STREAM = 1_000_037  # appended to a sequence's entropy to stop some of its agents (generator 1.2)
STOPPED_CODE = {MOVING_CAR: CAR, MOVING_BICYCLIST: BICYCLIST, MOVING_PERSON: PERSON, MOVING_MOTORCYCLIST: MOTORCYCLIST}


def stop_agents(agents: list[Agent], seed_seq: list[int], share: float) -> list[Agent]:
    """Generator 1.2: each agent stands still with probability ``share`` (its own random stream, so the rest of the
    world is unchanged): speed 0 and the static class (a waiting car, a standing pedestrian), as most of the
    vehicles and people near the car in KITTI sequence 08 are. The others (and agents already static) are kept as
    they are."""
    rng = np.random.default_rng(list(seed_seq) + [STOPPED_STREAM])
    out = []
    for a in agents:
        if rng.random() < share and a.code in STOPPED_CODE:
            a = replace(a, speed=0.0, code=STOPPED_CODE[a.code])
        out.append(a)
    return out


def build_world(
    seed_seq: list[int],
    n_scans: int,
    lookahead: int,
    poses_lidar: np.ndarray | None = None,
    moving_vehicle_keep: float = 1.0,
    stopped_share: float = 0.0,
) -> World:
    """Generate the town, the ego poses and the agents of one sequence.

    ``seed_seq`` seeds everything (numpy SeedSequence entropy). With ``poses_lidar`` (real LiDAR poses),
    the ego follows their planar projection and the town is laid out around that trajectory.

    The stages run in this order, all drawing from one generator: ego route and poses, raster extent, street
    centrelines, street widths, per-cell street fields, zones, ground, buildings, hedges and fences, trees
    and bushes, poles and signs, sidewalk objects, parked vehicles, moving agents. ``moving_vehicle_keep`` < 1
    (generator 1.2) then thins the moving vehicles (:func:`thin_moving_vehicles`), and ``stopped_share`` > 0
    (generator 1.2) stops a share of the remaining agents (:func:`stop_agents`).
    """
    rng = np.random.default_rng(seed_seq)
    route, xs, ys, poses = _ego_route_and_poses(rng, n_scans + lookahead, poses_lidar)
    grid = _grid_extent(poses)
    streets, route_id = _street_centrelines(rng, route, xs, ys, grid, cross_streets=poses_lidar is not None)
    widths = _street_widths(rng, len(streets), route_id)
    dense_paths, fields = _street_fields(streets, widths, grid)
    zones = _zones(rng, grid)
    ground = _ground(rng, grid, fields, zones)
    town = _Town(
        rng=rng,
        grid=grid,
        fields=fields,
        zones=zones,
        ground=ground,
        reserved=~ground.lot.copy(),
        taken=np.zeros((grid.NX, grid.NY), bool),
        stats={},
    )
    _buildings(town)
    _hedges_and_fences(town)
    _trees_and_bushes(town)
    _poles_and_signs(town)
    _sidewalk_objects(town)
    _parked_vehicles(town)
    paths = [_path_from_xy(pts[::5]) for pts in dense_paths]
    agents = _moving_agents(rng, paths, route_id, widths)
    if moving_vehicle_keep < 1.0:
        agents = thin_moving_vehicles(agents, seed_seq, moving_vehicle_keep)
    if stopped_share > 0.0:
        agents = stop_agents(agents, seed_seq, stopped_share)
    town.stats["moving_agents"] = len(agents)
    return World(W=ground.W, origin=grid.origin, poses=poses, paths=paths, agents=agents, stats=town.stats)


def _ellipsoid_box(W: np.ndarray, origin: np.ndarray, x: float, y: float, z: float, rh: float, rv: float):
    """The cells of ``W`` around an ellipsoid centred at (x, y, z) with radii ``rh`` (horizontal) and ``rv``:
    ``(i0, i1, j0, j1, cx, cy, e)`` with ``e <= 1`` inside (cell centres), or None when it misses ``W``."""
    NX, NY = W.shape[:2]
    r = rh + CELL
    i0, i1 = max(0, int((x - r - origin[0]) / CELL)), min(NX, int((x + r - origin[0]) / CELL) + 2)
    j0, j1 = max(0, int((y - r - origin[1]) / CELL)), min(NY, int((y + r - origin[1]) / CELL) + 2)
    if i0 >= i1 or j0 >= j1:
        return None
    cx = origin[0] + CELL * (np.arange(i0, i1) + 0.5) - x
    cy = origin[1] + CELL * (np.arange(j0, j1) + 0.5) - y
    cz = -2.0 + CELL * (np.arange(NZ) + 0.5) - z
    e = (cx[:, None, None] ** 2 + cy[None, :, None] ** 2) / (rh * rh) + cz[None, None, :] ** 2 / (rv * rv)
    return i0, i1, j0, j1, cx, cy, e


def stamp_ellipsoid(
    W: np.ndarray, origin: np.ndarray, x: float, y: float, z: float, rh: float, rv: float, code: int
) -> None:
    box = _ellipsoid_box(W, origin, x, y, z, rh, rv)
    if box is None:
        return
    i0, i1, j0, j1, _, _, e = box
    blk = W[i0:i1, j0:j1]
    m = (e <= 1.0) & ((blk == 0) | (blk == TERRAIN))
    m[:, :, : K_ROAD + 1] &= False  # never replace the ground itself
    blk[m] = code


def _rect_cells(x: float, y: float, yaw: float, L: float, Wd: float, origin: np.ndarray, NX: int, NY: int):
    c, s = _c(yaw), _s(yaw)
    r = 0.5 * math.hypot(L, Wd) + CELL
    i0 = max(0, int((x - r - origin[0]) / CELL))
    i1 = min(NX, int((x + r - origin[0]) / CELL) + 2)
    j0 = max(0, int((y - r - origin[1]) / CELL))
    j1 = min(NY, int((y + r - origin[1]) / CELL) + 2)
    if i0 >= i1 or j0 >= j1:
        return None
    cx = origin[0] + CELL * (np.arange(i0, i1) + 0.5) - x
    cy = origin[1] + CELL * (np.arange(j0, j1) + 0.5) - y
    u = c * cx[:, None] + s * cy[None, :]
    v = -s * cx[:, None] + c * cy[None, :]
    return (slice(i0, i1), slice(j0, j1)), (np.abs(u) <= L / 2) & (np.abs(v) <= Wd / 2), (i1 - i0) * (j1 - j0)


def _all_in(
    mask: np.ndarray, x: float, y: float, yaw: float, L: float, Wd: float, origin: np.ndarray, NX: int, NY: int
) -> bool:
    rc = _rect_cells(x, y, yaw, L, Wd, origin, NX, NY)
    if rc is None:
        return False
    sl, foot, _ = rc
    full = foot.sum()
    expected = L * Wd / (CELL * CELL)
    return bool(mask[sl][foot].all()) and full >= 0.8 * expected


def _mark(mask: np.ndarray, x: float, y: float, yaw: float, L: float, Wd: float, origin: np.ndarray) -> None:
    rc = _rect_cells(x, y, yaw, L, Wd, origin, mask.shape[0], mask.shape[1])
    if rc is not None:
        sl, foot, _ = rc
        mask[sl] |= foot

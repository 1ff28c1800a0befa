"""Simulated onboard SSC models: ``voxformer-sim`` (camera) and ``sscnet-sim`` (LiDAR).

A simulated model turns the true scene of a scan (train ids, in the scan's grid, *including* what no
sensor observed) into a prediction by applying, in this order:

1. **systematic bias** (:func:`_systematic`): deterministic functions of the local scene and of the range,
   identical at every viewpoint of the same configuration. They are what a refinement model can *learn*
   to undo (train split ground truth shows the pattern), and what fusing frames cannot remove.
2. **blob errors** (:func:`_viewpoint`): thresholds on smooth random fields (blobs of ~1.6 m x 1.6 m x 0.8 m).
   Each field is a blend of two parts (generator 1.1):

   - a *viewpoint* part drawn in the *scan's* frame, redrawn every ``key_every`` scans and blended in
     between: at a fixed place in the world it changes as the ego moves, so fusing frames averages it out;
   - a *world* part (share ``world_share``) drawn once per (model, sequence) on a lattice fixed in the
     *world*: the same place looks equally hard from every nearby viewpoint, like a region a real network
     fails on. Fusing frames cannot remove it; a learned model can only fill it in from context.

   The blend is mapped back to a uniform value (:func:`blend_uniform`), so that the per-voxel error *rates*
   do not depend on the share, only how much of the error neighbouring viewpoints have in common does
   (measured: the single-frame scores on mini val still moved by 0.1-1.9 points; docs/mini.md). Rates grow with
   range, outside the camera field of view and behind occluders (camera), and in the regions the scan did not see
   (LiDAR).

The parameters of both models are in :data:`MODELS`; docs/mini.md explains each one and gives the
calibration against Table 2 of the OccFiner paper (``python -m occbench.synth.calibrate``).

Determinism: the fields come from PCG64 uniform draws and IEEE +,-,*,/ only (no transcendental functions
on per-voxel data), so the same seed gives the same bytes on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import ndimage

from occbench.grid import KITTI
from occbench.synth import _kernels
from occbench.synth import world as Wd

GRID = KITTI.shape
NCLS = 20

# Confusion partners (train ids): (first, second). A confused blob takes the first partner where the
# field is in the lower half of the threshold, the second one elsewhere.
PARTNERS: dict[int, tuple[int, int]] = {
    1: (4, 5),
    2: (7, 3),
    3: (2, 8),
    4: (1, 5),
    5: (1, 4),
    6: (7, 18),
    7: (6, 2),
    8: (7, 3),
    9: (10, 11),
    10: (9, 11),
    11: (9, 17),
    12: (11, 17),
    13: (14, 15),
    14: (15, 13),
    15: (17, 13),
    16: (15, 18),
    17: (15, 11),
    18: (16, 19),
    19: (18, 13),
}
THIN = (Wd.TRUNK, Wd.POLE, Wd.TRAFFIC_SIGN)
SMALL_DYNAMIC = (Wd.BICYCLE, Wd.MOTORCYCLE, Wd.PERSON, Wd.BICYCLIST, Wd.MOTORCYCLIST)
VEHICLES = (Wd.CAR, Wd.TRUCK, Wd.OTHER_VEHICLE)
GROUND = (Wd.ROAD, Wd.PARKING, Wd.SIDEWALK, Wd.OTHER_GROUND, Wd.TERRAIN)


def _lut(classes: tuple[int, ...]) -> np.ndarray:
    m = np.zeros(256, bool)
    m[list(classes)] = True
    return m


GROUND_LUT = _lut(GROUND)
SMALL_LUT = _lut(SMALL_DYNAMIC)
OBJ_LUT = _lut(VEHICLES + (Wd.BUILDING,))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    modality: str  # "camera" | "lidar"
    # --- viewpoint-dependent geometry: occupied voxels dropped (blobs) ---
    miss0: float  # at the sensor
    miss_r: float  # added per 51.2 m of horizontal range
    miss_fov: float  # added outside the camera field of view (camera)
    miss_hidden: float  # added where this scan has no line of sight
    miss_hidden_r: float  # added where hidden, per 51.2 m (LiDAR: completion fades with range)
    miss_class: dict[int, float] = field(default_factory=dict)  # added per true class
    # --- viewpoint-dependent geometry: hallucinated voxels next to surfaces (blobs) ---
    add0: float = 0.0
    add_r: float = 0.0
    add_fov: float = 0.0
    # --- viewpoint-dependent semantics: blobs relabelled to a confusion partner ---
    conf0: float = 0.0
    conf_r: float = 0.0
    conf_fov: float = 0.0
    conf_class: dict[int, float] = field(default_factory=dict)
    # --- systematic (learnable) bias ---
    sys_parking_to_road: float = 0.0  # parking within this distance (m) of road is predicted road
    sys_otherground_to_sidewalk: bool = False
    sys_lowveg_to_terrain: bool = False  # the lowest vegetation voxel of a column becomes terrain
    sys_trunk_top: float = 99.0  # trunk voxels above this height (m) above the road become vegetation
    sys_sign_to_pole: bool = False
    sys_thicken_from: float = 99.0  # beyond this range (m), ground surfaces gain one voxel on top
    sys_smear: int = 0  # vehicles/buildings grow this many voxels away from the sensor (depth smearing)
    sys_small_to: int = -1  # small dynamic classes always predicted as this class (-1: untouched)
    key_every: int = 5  # scans between independent field draws (linear blend in between)
    blob: tuple[int, int, int] = (8, 8, 4)  # field cell in voxels
    world_share: float = 0.0  # weight of the world-anchored part of every error field (0: all viewpoint)
    image_size: tuple[int, int] = (1241, 376)  # camera-2 image (width, height) of the FoV mask (1.2: 1220 x 370)


MODELS: dict[str, ModelSpec] = {
    "voxformer-sim": ModelSpec(
        name="voxformer-sim",
        modality="camera",
        miss0=0.0,
        miss_r=0.34,
        miss_fov=0.22,
        miss_hidden=0.18,
        miss_hidden_r=0.0,
        miss_class={
            Wd.ROAD: 0.04,
            Wd.CAR: 0.10,
            Wd.TRUNK: 0.35,
            Wd.POLE: 0.45,
            Wd.TRAFFIC_SIGN: 0.5,
            Wd.PERSON: 0.55,
            Wd.BICYCLIST: 0.55,
            Wd.MOTORCYCLIST: 0.6,
            Wd.BICYCLE: 0.55,
            Wd.MOTORCYCLE: 0.55,
        },
        add0=0.02,
        add_r=0.25,
        add_fov=0.15,
        conf0=0.03,
        conf_r=0.50,
        conf_fov=0.20,
        conf_class={
            Wd.PARKING: 0.15,
            Wd.SIDEWALK: 0.05,
            Wd.OTHER_GROUND: 0.2,
            Wd.TERRAIN: 0.1,
            Wd.FENCE: 0.15,
            Wd.TRUCK: 0.25,
            Wd.OTHER_VEHICLE: 0.25,
        },
        sys_parking_to_road=1.0,
        sys_otherground_to_sidewalk=True,
        sys_lowveg_to_terrain=True,
        sys_trunk_top=1.8,
        sys_sign_to_pole=False,
        sys_thicken_from=25.6,
        sys_smear=1,
        world_share=0.5,
    ),
    "sscnet-sim": ModelSpec(
        name="sscnet-sim",
        modality="lidar",
        miss0=0.28,
        miss_r=0.0,
        miss_fov=0.0,
        miss_hidden=0.10,
        miss_hidden_r=0.12,
        miss_class={Wd.TRUNK: 0.35, Wd.POLE: 0.35, Wd.TRAFFIC_SIGN: 0.3, Wd.FENCE: 0.05},
        add0=0.26,
        add_r=0.10,
        add_fov=0.0,
        conf0=0.03,
        conf_r=0.38,
        conf_fov=0.0,
        conf_class={
            Wd.PARKING: 0.2,
            Wd.OTHER_GROUND: 0.25,
            Wd.SIDEWALK: 0.08,
            Wd.TERRAIN: 0.1,
            Wd.FENCE: 0.15,
            Wd.TRUCK: 0.3,
            Wd.OTHER_VEHICLE: 0.3,
        },
        sys_parking_to_road=0.6,
        sys_otherground_to_sidewalk=False,
        sys_lowveg_to_terrain=True,
        sys_trunk_top=99.0,
        sys_sign_to_pole=True,
        sys_thicken_from=99.0,
        sys_smear=0,
        sys_small_to=0,
        world_share=0.5,
    ),
}
MODEL_IDS = {name: i for i, name in enumerate(sorted(MODELS))}


# ---- static geometry of the grid ------------------------------------------------------------------
@lru_cache(maxsize=None)
def grid_geometry(image_size: tuple[int, int] = (1241, 376)) -> dict[str, np.ndarray]:
    """Normalised horizontal range per column, camera-2 field of view per voxel (an image of ``image_size`` pixels:
    the full KITTI 08 image, 1241 x 376, by default), z level per voxel."""
    from occbench.synth._calib import CALIB_08_TXT

    vals = {}
    for line in CALIB_08_TXT.strip().splitlines():
        k, v = line.split(":", 1)
        vals[k] = np.array([float(x) for x in v.split()]).reshape(3, 4)
    P2, Tr = vals["P2"], np.vstack([vals["Tr"], [0, 0, 0, 1]])
    x = 0.2 * (np.arange(256) + 0.5)
    y = -25.6 + 0.2 * (np.arange(256) + 0.5)
    z = -2.0 + 0.2 * (np.arange(32) + 0.5)
    X, Y = np.meshgrid(x, y, indexing="ij")
    rn = (np.sqrt(X * X + Y * Y) / 51.2).astype(np.float32)
    # project every voxel centre: explicit products (no BLAS) so that results are bit-identical everywhere
    M = P2 @ Tr  # 3x4, computed once from fixed constants
    M = np.round(M, 9)
    Xs, Ys, Zs = X[:, :, None], Y[:, :, None], z[None, None, :]
    u = M[0, 0] * Xs + M[0, 1] * Ys + M[0, 2] * Zs + M[0, 3]
    v = M[1, 0] * Xs + M[1, 1] * Ys + M[1, 2] * Zs + M[1, 3]
    w = M[2, 0] * Xs + M[2, 1] * Ys + M[2, 2] * Zs + M[2, 3]
    fov = (w > 0.1) & (u >= 0) & (u < image_size[0] * w) & (v >= 0) & (v < image_size[1] * w)
    return {"rn": rn, "fov": fov, "X": X.astype(np.float32), "Y": Y.astype(np.float32)}


def smooth_field(
    rng: np.random.Generator, cell: tuple[int, int, int], shape: tuple[int, int, int] = GRID
) -> np.ndarray:
    """Uniform noise on a coarse lattice (cells of ``cell`` voxels), trilinearly interpolated: float32 in [0, 1).
    The compiled kernel when numba is present, else :func:`_interpolate_numpy` (the same bits)."""
    cs = tuple(shape[d] // cell[d] + 2 for d in range(3))
    a = rng.random(cs, dtype=np.float32)
    steps = []
    for d in range(3):
        pos = (np.arange(shape[d]) + 0.5) / cell[d] + 0.5  # in coarse cells, offset so every point has two neighbours
        i0 = np.floor(pos).astype(np.int64)
        steps.append((i0, (pos - i0).astype(np.float32)))
    return _kernels.smooth_field(a, steps) if _kernels.AVAILABLE else _interpolate_numpy(a, steps)


def _interpolate_numpy(a: np.ndarray, steps: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The reference of :func:`smooth_field`'s interpolation, in numpy: ``a`` interpolated along x, y, then z, at
    (lower lattice index, float32 weight of the upper one) per output voxel along each axis."""
    for d, (i0, w) in enumerate(steps):
        sh = [1, 1, 1]
        sh[d] = i0.size
        w = w.reshape(sh)
        a = np.take(a, i0, axis=d) * (1 - w) + np.take(a, i0 + 1, axis=d) * w
    return a


WORLD_STREAM = 1_000_003  # appended to a (model, sequence) entropy for its world-anchored fields


class FieldCache:
    """Fields of one (model, sequence).

    Viewpoint part of scan t: blend of key fields floor(t/K) and floor(t/K)+1, in the scan's frame. World part
    (when ``spec.world_share > 0``): ``n_fields`` lattices over the world of ``world`` (a
    :class:`occbench.synth.world.World`), sampled at the world position of every voxel of scan t.
    """

    def __init__(self, entropy: list[int], spec: ModelSpec, n_fields: int = 3, world: "Wd.World | None" = None):
        self.entropy = entropy
        self.spec = spec
        self.n = n_fields
        self._cache: dict[int, list[np.ndarray]] = {}
        self.world = world
        self._world_fields: list[np.ndarray] | None = None
        if spec.world_share > 0 and world is None:
            raise ValueError(
                f"{spec.name} has world-anchored errors (world_share={spec.world_share}): "
                "FieldCache needs the sequence's world"
            )
        if not 0.0 <= spec.world_share <= 1.0:
            raise ValueError(f"world_share of {spec.name} must lie in [0, 1], got {spec.world_share}")

    def _world(self) -> Wd.World:
        if self.world is None:
            raise ValueError(f"model {self.spec.name}: world_share > 0 needs the world the scans are drawn from")
        return self.world

    def world_fields(self) -> list[np.ndarray]:
        """Coarse lattices (cells of ``spec.blob`` voxels) covering the world, uniform draws in [0, 1)."""
        if self._world_fields is None:
            nx, ny = self._world().shape
            c = self.spec.blob
            shape = (nx // c[0] + 3, ny // c[1] + 3, GRID[2] // c[2] + 2)
            rng = np.random.default_rng(self.entropy + [WORLD_STREAM])
            self._world_fields = [rng.random(shape, dtype=np.float32) for _ in range(self.n)]
        return self._world_fields

    def key(self, q: int) -> list[np.ndarray]:
        if q not in self._cache:
            if len(self._cache) > 4:
                self._cache.pop(min(self._cache))
            rng = np.random.default_rng(self.entropy + [q])
            self._cache[q] = [smooth_field(rng, self.spec.blob) for _ in range(self.n)]
        return self._cache[q]

    def at(self, t: int) -> "Fields":
        K = self.spec.key_every
        q, r = divmod(t, K)
        fields = Fields(self.key(q), self.key(q + 1), np.float32(r / K), _uniformiser(self.spec.blob, r, K))
        if self.spec.world_share > 0:
            fields.world = WorldSample(
                self.world_fields(),
                self._world(),
                t,
                self.spec.blob,
                _uniformiser(self.spec.blob, 0, K),
                self.spec.world_share,
            )
        return fields


LUT_N = 4096


@lru_cache(maxsize=None)
def _uniformiser(blob: tuple[int, int, int], r: int, K: int) -> np.ndarray:
    """Lookup table (4096 bins over [0, 1]) mapping a blended field to its empirical CDF, i.e. to ~uniform.

    Thresholds of the error model are then probabilities: ``field < p`` marks a fraction ~p of the voxels.
    Computed once from fixed draws (seed 20240101), with exact arithmetic only.
    """
    rng = np.random.default_rng([20240101, *blob])
    a = [smooth_field(rng, blob) for _ in range(2)]
    w = np.float32(r / K)
    f = (a[0] * (np.float32(1) - w) + a[1] * w).reshape(-1)
    q = np.sort(f)[np.linspace(0, f.size - 1, 257).round().astype(np.int64)].astype(np.float64)
    q[0], q[-1] = 0.0, 1.0
    q = np.maximum.accumulate(q)
    # lookup table over [0, 1]: field value -> uniform value
    return np.interp(np.arange(LUT_N) / (LUT_N - 1), q, np.linspace(0.0, 1.0, q.size)).astype(np.float32)


def blend_uniform(u: np.ndarray, v: np.ndarray, share: float) -> np.ndarray:
    """``share * u + (1 - share) * v`` for independent uniforms u, v, mapped through its exact CDF to uniform.

    With a = max(share, 1 - share) and b = 1 - a, the sum s has the trapezoidal CDF s^2 / 2ab on [0, b],
    (s - b/2) / a on [b, a] and 1 - (1 - s)^2 / 2ab on [a, 1]; only +, -, *, / are used (bit-identical
    everywhere).
    """
    if share <= 0:
        return v
    if share >= 1:
        return u
    a = np.float32(max(share, 1.0 - share))
    b = np.float32(1) - a
    s = np.float32(share) * u + np.float32(1 - share) * v
    two_ab = np.float32(2) * a * b
    lo = s * s / two_ab
    mid = (s - b / np.float32(2)) / a
    hi = np.float32(1) - (np.float32(1) - s) * (np.float32(1) - s) / two_ab
    return np.where(s < b, lo, np.where(s <= a, mid, hi)).astype(np.float32)


class WorldSample:
    """The world-anchored fields seen from scan t: values at the world position of each voxel of its grid."""

    def __init__(
        self,
        lattices: list[np.ndarray],
        world: "Wd.World",
        t: int,
        cell: tuple[int, int, int],
        lut: np.ndarray,
        share: float,
    ):
        from occbench.synth.columns import columns  # grid column centres in the LiDAR frame

        cols = columns()
        fx, fy = world.cell_coords(tuple(world.poses[t]), cols["GU"], cols["GV"])  # where World.gather reads
        # continuous lattice coordinates of each column centre (as smooth_field: voxel centre / cell + 0.5)
        self.px = (fx / cell[0] + 0.5).astype(np.float32)
        self.py = (fy / cell[1] + 0.5).astype(np.float32)
        self.pz = ((np.arange(GRID[2]) + 0.5) / cell[2] + 0.5).astype(np.float32)
        self.lattices, self.lut, self.share = lattices, lut, share

    def kernel_args(self, k: int) -> tuple:
        """What :func:`occbench.synth._kernels.field_values` needs for field ``k``."""
        return self.lattices[k], self.px, self.py, self.pz, self.lut, self.share

    def sample(self, k: int, idx: np.ndarray) -> np.ndarray:
        L = self.lattices[k]
        col, kz = idx >> 5, idx & 31
        px, py, pz = self.px[col], self.py[col], self.pz[kz]
        # outside the lattice (columns beyond the generated world) clamps to its border cells
        i0 = np.clip(np.floor(px).astype(np.int64), 0, L.shape[0] - 2)
        j0 = np.clip(np.floor(py).astype(np.int64), 0, L.shape[1] - 2)
        k0 = np.floor(pz).astype(np.int64)
        wx = np.clip(px - i0, 0, 1).astype(np.float32)
        wy = np.clip(py - j0, 0, 1).astype(np.float32)
        wz = (pz - k0).astype(np.float32)
        one = np.float32(1)
        f = np.zeros(idx.shape, np.float32)
        for di, fx in ((0, one - wx), (1, wx)):
            for dj, fy in ((0, one - wy), (1, wy)):
                fxy = fx * fy
                f += fxy * (L[i0 + di, j0 + dj, k0] * (one - wz) + L[i0 + di, j0 + dj, k0 + 1] * wz)
        return self.lut[(f * np.float32(LUT_N - 1)).astype(np.int64)]


class Fields:
    """The fields of one scan, evaluated lazily at flat voxel indices."""

    def __init__(self, a: list[np.ndarray], b: list[np.ndarray], w: np.float32, lut: np.ndarray):
        self.a, self.b, self.w, self.lut = a, b, w, lut
        self.world: WorldSample | None = None

    def sample(self, k: int, idx: np.ndarray) -> np.ndarray:
        """Approximately uniform values in [0, 1] at flat voxel indices ``idx`` (spatially smooth): the compiled
        kernel when numba is present, else :meth:`sample_numpy` (bit-identical)."""
        if not _kernels.AVAILABLE:
            return self.sample_numpy(k, idx)
        return _kernels.field_values(
            self.a[k].reshape(-1),
            self.b[k].reshape(-1),
            self.w,
            self.lut,
            np.ascontiguousarray(idx, np.int64),
            self.kernel_world_args(k),
        )

    def kernel_world_args(self, k: int) -> tuple | None:
        """The world part of field ``k`` as :func:`occbench.synth._kernels.field_values` takes it (None: none)."""
        return None if self.world is None else self.world.kernel_args(k)

    def sample_numpy(self, k: int, idx: np.ndarray) -> np.ndarray:
        """The reference of :meth:`sample`, in numpy."""
        fa = self.a[k].reshape(-1)[idx]
        fb = self.b[k].reshape(-1)[idx]
        f = fa * (np.float32(1) - self.w) + fb * self.w
        v = self.lut[(f * np.float32(LUT_N - 1)).astype(np.int64)]
        if self.world is None:
            return v
        return blend_uniform(self.world.sample(k, idx), v, self.world.share)


def _shift(a: np.ndarray, axis: int, step: int) -> np.ndarray:
    """a shifted by ``step`` along ``axis`` (zeros enter): out[i] = a[i - step]."""
    out = np.zeros_like(a)
    sl_src = [slice(None)] * 3
    sl_dst = [slice(None)] * 3
    if step > 0:
        sl_src[axis] = slice(0, -step)
        sl_dst[axis] = slice(step, None)
    else:
        sl_src[axis] = slice(-step, None)
        sl_dst[axis] = slice(0, step)
    out[tuple(sl_dst)] = a[tuple(sl_src)]
    return out


def _systematic(spec: ModelSpec, P: np.ndarray) -> np.ndarray:
    """The systematic bias of ``spec`` applied to the labels ``P``: the compiled kernel when numba is present,
    else :func:`_systematic_numpy` (the same labels)."""
    if not _kernels.AVAILABLE:
        return _systematic_numpy(spec, P)
    geo = grid_geometry()
    X, Y = geo["X"], geo["Y"]
    args = (
        max(1, int(round(spec.sys_parking_to_road / 0.2))) if spec.sys_parking_to_road > 0 else 0,
        Wd.PARKING,
        Wd.ROAD,
        Wd.OTHER_GROUND if spec.sys_otherground_to_sidewalk else -1,
        Wd.SIDEWALK,
        bool(spec.sys_lowveg_to_terrain),
        Wd.VEGETATION,
        Wd.TERRAIN,
        Wd.kh(spec.sys_trunk_top) if spec.sys_trunk_top < 99 else P.shape[2],
        Wd.TRUNK,
        Wd.TRAFFIC_SIGN if spec.sys_sign_to_pole else -1,
        Wd.POLE,
        int(spec.sys_small_to),
        spec.sys_thicken_from < 99,
        np.ascontiguousarray(geo["rn"] * 51.2 >= spec.sys_thicken_from),
        spec.sys_smear > 0,
        np.abs(X) >= np.abs(Y),
        Y > 0,
        GROUND_LUT,
        SMALL_LUT,
        OBJ_LUT,
    )
    return _kernels.systematic(P, args)


def _systematic_numpy(spec: ModelSpec, P: np.ndarray) -> np.ndarray:
    """The reference of :func:`_systematic`, in numpy."""
    geo = grid_geometry()
    P = P.copy()
    if spec.sys_parking_to_road > 0:
        n = max(1, int(round(spec.sys_parking_to_road / 0.2)))
        road2d = (P == Wd.ROAD).any(axis=2)
        near = ndimage.binary_dilation(road2d, structure=np.ones((3, 3), bool), iterations=n)
        P[(P == Wd.PARKING) & near[:, :, None]] = Wd.ROAD
    if spec.sys_otherground_to_sidewalk:
        P[P == Wd.OTHER_GROUND] = Wd.SIDEWALK
    if spec.sys_lowveg_to_terrain:
        veg = P == Wd.VEGETATION
        below = _shift(P, 2, 1)
        P[veg & GROUND_LUT[below]] = Wd.TERRAIN
    if spec.sys_trunk_top < 99:
        k = Wd.kh(spec.sys_trunk_top)
        sub = P[:, :, k:]
        sub[sub == Wd.TRUNK] = Wd.VEGETATION
    if spec.sys_sign_to_pole:
        P[P == Wd.TRAFFIC_SIGN] = Wd.POLE
    if spec.sys_small_to >= 0:
        P[SMALL_LUT[P]] = spec.sys_small_to
    if spec.sys_thicken_from < 99:
        far = (geo["rn"] * 51.2 >= spec.sys_thicken_from)[:, :, None]
        below = _shift(P, 2, 1)
        grow = far & (P == 0) & GROUND_LUT[below]
        P[grow] = below[grow]
    if spec.sys_smear > 0:
        # grow objects one voxel away from the sensor along the dominant horizontal axis of the ray
        X, Y = geo["X"], geo["Y"]
        obj = OBJ_LUT[P]
        src = np.where(obj, P, 0)
        fx = _shift(src, 0, 1)  # value of the voxel one step closer in +x
        sy_pos = _shift(src, 1, 1)
        sy_neg = _shift(src, 1, -1)
        xdom = (np.abs(X) >= np.abs(Y))[:, :, None]
        cand = np.where(xdom, fx, np.where((Y > 0)[:, :, None], sy_pos, sy_neg))
        grow = (P == 0) & (cand > 0)
        P[grow] = cand[grow]
    return P


def _dilate_labels(P: np.ndarray) -> np.ndarray:
    """For every voxel, the label of an occupied 6-neighbour (below, x, y, above; the first found), 0 if none:
    the compiled kernel when numba is present, else :func:`_dilate_labels_numpy`."""
    return _kernels.dilate_labels(P) if _kernels.AVAILABLE else _dilate_labels_numpy(P)


def _dilate_labels_numpy(P: np.ndarray) -> np.ndarray:
    """The reference of :func:`_dilate_labels`, in numpy."""
    N = np.zeros_like(P)
    for axis, step in ((2, 1), (0, 1), (0, -1), (1, 1), (1, -1), (2, -1)):
        dst = [slice(None)] * 3
        src = [slice(None)] * 3
        if step > 0:
            dst[axis], src[axis] = slice(step, None), slice(0, -step)
        else:
            dst[axis], src[axis] = slice(0, step), slice(-step, None)
        d = N[tuple(dst)]
        np.copyto(d, P[tuple(src)], where=d == 0)
    return N


def _viewpoint(
    spec: ModelSpec, P: np.ndarray, truth: np.ndarray, vis: np.ndarray, fields: Fields, draw_confused=None
) -> np.ndarray:
    """The blob errors. ``draw_confused(classes, u)`` (generator 1.2) picks the label of a confused voxel from its
    class and a uniform u; None: the first partner of :data:`PARTNERS` for u < 0.5, else the second (1.1)."""
    geo = grid_geometry(tuple(spec.image_size))
    rn = geo["rn"].reshape(-1)
    fov = geo["fov"].reshape(-1)
    Pf = P.reshape(-1)
    out = Pf.copy()
    # 1. missed blobs (occupied voxels)
    idx = np.flatnonzero(Pf)
    r = rn[idx >> 5]
    extra = np.zeros(256, np.float32)
    for c, v in spec.miss_class.items():
        extra[c] = v
    near = np.minimum(np.float32(1), np.float32(0.35) + np.float32(1.3) * r)  # class terms fade in with range
    pm = np.float32(spec.miss0) + np.float32(spec.miss_r) * r + extra[truth.reshape(-1)[idx]] * near
    hidden = ~vis.reshape(-1)[idx]
    if spec.miss_hidden:
        pm += np.float32(spec.miss_hidden) * hidden
    if spec.miss_hidden_r:
        pm += np.float32(spec.miss_hidden_r) * (hidden * r)
    if spec.miss_fov:
        pm += np.float32(spec.miss_fov) * ~fov[idx]
    out[idx[fields.sample(0, idx) < pm]] = 0
    # 2. hallucinated blobs next to (true) surfaces
    N = _dilate_labels(P).reshape(-1)
    idx = np.flatnonzero((Pf == 0) & (N > 0))
    r = rn[idx >> 5]
    pa = np.float32(spec.add0) + np.float32(spec.add_r) * r
    if spec.add_fov:
        pa += np.float32(spec.add_fov) * ~fov[idx]
    sel = idx[fields.sample(1, idx) < pa]
    out[sel] = N[sel]
    # 3. confused blobs
    idx = np.flatnonzero(out)
    r = rn[idx >> 5]
    cextra = np.zeros(256, np.float32)
    for c, v in spec.conf_class.items():
        cextra[c] = v
    lab = out[idx]
    near = np.minimum(np.float32(1), np.float32(0.35) + np.float32(1.3) * r)
    pc = np.float32(spec.conf0) + np.float32(spec.conf_r) * r + cextra[lab] * near
    if spec.conf_fov:
        pc += np.float32(spec.conf_fov) * ~fov[idx]
    f = fields.sample(2, idx)
    first = np.zeros(256, np.uint8)
    second = np.zeros(256, np.uint8)
    for c, (a, b) in PARTNERS.items():
        first[c], second[c] = a, b
    conf = f < pc
    if draw_confused is not None:
        out[idx[conf]] = draw_confused(lab[conf], f[conf] / pc[conf])
        return out.reshape(P.shape)
    out[idx[conf]] = np.where(f[conf] < 0.5 * pc[conf], first[lab[conf]], second[lab[conf]])
    return out.reshape(P.shape)


def predict(spec: ModelSpec, truth: np.ndarray, vis: np.ndarray, fields: Fields) -> np.ndarray:
    """Prediction (train ids 0..19, uint8) of a simulated model for one scan.

    ``truth``: true train ids of the scan's grid (255 voxels, i.e. ignored classes, count as empty for the
    model); ``vis``: voxels in line of sight of this scan; ``fields``: :meth:`FieldCache.at` of the scan.
    """
    T = np.where(truth == 255, 0, truth).astype(np.uint8)
    P = _systematic(spec, T)
    return _viewpoint(spec, P, T, vis, fields)

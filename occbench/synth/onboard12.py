"""Generator 1.2's onboard error model (opt-in: ``MiniConfig(generator="1.2")`` or ``$OCCBENCH_GENERATOR=1.2``).

Generator 1.1 (:mod:`occbench.synth.onboard`) perturbs the complete true scene with errors whose rates depend only
on what a refiner can see (range, field of view, line of sight, class), with fixed systematic rules and a fixed
two-partner confusion table. A learned refiner can invert most of that. Generator 1.2 keeps 1.1's blob model (at
lower rates) and adds errors that cannot be inverted from the prediction alone, in this order:

1. **systematic rules drawn per sequence** (:func:`sequence_spec`): the rules of 1.1 with their thresholds and
   switches drawn once per (model, sequence), so that the rules learned on train sequences are not exactly those
   of val;
2. **whole-instance misses and relabels** (:meth:`Predictor12._instances`): connected components of the "thing"
   classes (vehicles, people, poles, trunks, signs) are dropped or relabelled as a whole, driven by a latent
   hardness fixed in the world (one draw per 4 m cell); a relabelled instance takes a class drawn from its
   confusion row (:func:`confusion_rows`);
3. **camera depth error** (:meth:`Predictor12._depth`): every predicted occupied voxel moves along its viewing ray
   by ``depth_sigma * (r / 51.2 m)^2`` times a unit-variance field value; the field is partly anchored in the
   world (``depth_world_share``), so other frames do not average it out;
4. **plausible wrong content where the scan sees nothing** (:meth:`Predictor12._fill_hidden`): in blobs of the
   voxels with no line of sight from the scan, the prediction is the scene shifted by a few voxels (visible
   surfaces extruded away from the sensor, or a patch from beside it) instead of the truth;
5. **1.1's blob errors** at ``blob_scale`` times their rates, with the confused label drawn from the class's
   confusion row instead of a fixed partner.

Two opt-in knobs of the far-range error (both off in :data:`MODELS12`; the candidates of docs/mini-vs-real.md and
generator 1.3's :data:`MODELS13` set them):

- ``world_share_r`` (:class:`RangeShareFields`): the world-anchored share of the blob fields grows with the range of
  the voxel from the scan's sensor, ``s = world_share + world_share_r * r / 51.2 m`` (clipped to [0, 1]), so that
  the errors of a place seen from far are mostly the same from every frame (averaging frames does not remove
  them) while those of a place seen near stay mostly viewpoint-dependent;
- whole-region relabels of the ground (:meth:`Predictor12._regions`, ``region_relabel0`` / ``region_relabel_r``):
  the ground-class voxels (road, parking, sidewalk, other-ground, terrain) of a world region of ``region_cell``
  metres take another ground class, drawn once per region from the class's confusion row restricted to the
  ground classes (:func:`ground_rows`), driven by a latent hardness fixed in the world: a plausible wrong layout
  (a sidewalk read as road over a whole block) rather than a blob inside an otherwise right region.

Every parameter is in :data:`MODELS12` and explained in docs/mini.md ("Generator 1.2"). Determinism: PCG64 draws,
IEEE +,-,*,/ and sqrt on per-voxel data, no BLAS.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import ndimage

from occbench.grid import KITTI
from occbench.synth import _kernels
from occbench.synth import onboard as O
from occbench.synth import world as Wd

GRID = KITTI.shape
THINGS = O.VEHICLES + O.SMALL_DYNAMIC + O.THIN
THING_LUT = O._lut(THINGS)

# Super-categories of the SemanticKITTI classes (train ids) and the pairs of categories real models confuse
CATEGORIES: dict[str, tuple[int, ...]] = {
    "vehicle": (Wd.CAR, Wd.BICYCLE, Wd.MOTORCYCLE, Wd.TRUCK, Wd.OTHER_VEHICLE),
    "human": (Wd.PERSON, Wd.BICYCLIST, Wd.MOTORCYCLIST),
    "ground": (Wd.ROAD, Wd.PARKING, Wd.SIDEWALK, Wd.OTHER_GROUND),
    "structure": (Wd.BUILDING, Wd.FENCE),
    "nature": (Wd.VEGETATION, Wd.TRUNK, Wd.TERRAIN),
    "object": (Wd.POLE, Wd.TRAFFIC_SIGN),
}
NEAR_CATEGORIES = {
    ("vehicle", "human"),
    ("vehicle", "structure"),
    ("ground", "nature"),
    ("structure", "nature"),
    ("object", "nature"),
    ("object", "structure"),
}
SAME, NEAR, FAR = 0.70, 0.25, 0.05  # share of a confusion row going to its own / the near / the other categories

CAMERA_IMAGE = (1220, 370)  # the image VoxFormer crops KITTI to, as the voting frustum (1.1 uses the full 1241 x 376)
HARD_STREAM, DEPTH_STREAM, FILL_STREAM, SYS_STREAM = 1_000_211, 1_000_223, 1_000_229, 1_000_231
REGION_STREAM = 1_000_237  # the latent hardness of the ground regions (only drawn when region relabels are on)
GROUND = (Wd.ROAD, Wd.PARKING, Wd.SIDEWALK, Wd.OTHER_GROUND, Wd.TERRAIN)  # what a region relabel changes, and into
GROUND_LUT = O._lut(GROUND)


@lru_cache(maxsize=1)
def confusion_rows() -> np.ndarray:
    """(20, 20) float64: row i = the probability that a voxel of class i, when confused, is labelled j.

    Row i gives :data:`SAME` of its mass to the other classes of i's category, :data:`NEAR` to the classes of the
    categories near it (:data:`NEAR_CATEGORIES`) and :data:`FAR` to all others; within each part, the classes share
    in proportion to their real SemanticKITTI voxel frequency (MonoScene's class frequencies). A confused car becomes
    mostly a truck or an other-vehicle, then a building or a person; terrain becomes vegetation or trunk, then a
    ground class. The OccFiner and VoxFormer papers publish per-class IoUs, not confusion matrices: the rows are a
    documented assumption, not a measurement.
    """
    from occbench.labels import load_label_map

    freq = np.asarray(load_label_map("semantickitti").voxel_frequencies, np.float64)
    cat = {c: k for k, cs in CATEGORIES.items() for c in cs}
    rows = np.zeros((20, 20))
    for i in range(1, 20):
        parts: dict[str, list[int]] = {"same": [], "near": [], "far": []}
        for j in range(1, 20):
            if j == i:
                continue
            a, b = cat[i], cat[j]
            parts[
                "same" if a == b else "near" if (a, b) in NEAR_CATEGORIES or (b, a) in NEAR_CATEGORIES else "far"
            ].append(j)
        for part, mass in (("same", SAME), ("near", NEAR), ("far", FAR)):
            js = parts[part]
            if js:
                rows[i, js] = mass * freq[js] / freq[js].sum()
        rows[i] /= rows[i].sum()
    return rows


@lru_cache(maxsize=1)
def _cumulative_rows() -> np.ndarray:
    c = np.cumsum(confusion_rows(), axis=1).astype(np.float32)
    c[1:, 19] = 1.0
    return c


def draw_from_rows(classes: np.ndarray, u: np.ndarray) -> np.ndarray:
    """For each (class, uniform u in [0, 1)), the class its confusion row gives at cumulative probability u."""
    cum = _cumulative_rows()[classes.astype(np.int64)]
    return np.minimum((cum <= u[:, None].astype(np.float32)).sum(axis=1), 19).astype(np.uint8)


@lru_cache(maxsize=1)
def ground_rows() -> np.ndarray:
    """(20, 20) float64: :func:`confusion_rows` restricted to the :data:`GROUND` classes and renormalised, for the
    rows of the ground classes (the other rows are 0): a relabelled road region becomes parking, sidewalk,
    other-ground or terrain, in proportion to its confusion row."""
    rows = np.zeros((20, 20))
    g = list(GROUND)
    base = confusion_rows()
    for i in g:
        rows[i, g] = base[i, g]
        rows[i] /= rows[i].sum()
    return rows


@lru_cache(maxsize=1)
def _cumulative_ground_rows() -> np.ndarray:
    c = np.cumsum(ground_rows(), axis=1).astype(np.float32)
    c[list(GROUND), 19] = 1.0
    return c


def draw_ground(classes: np.ndarray, u: np.ndarray) -> np.ndarray:
    """:func:`draw_from_rows` with :func:`ground_rows`: a ground class in, another ground class out."""
    cum = _cumulative_ground_rows()[classes.astype(np.int64)]
    return np.minimum((cum <= u[:, None].astype(np.float32)).sum(axis=1), 19).astype(np.uint8)


def blend_uniform_varying(u: np.ndarray, v: np.ndarray, share: np.ndarray) -> np.ndarray:
    """:func:`occbench.synth.onboard.blend_uniform` with one share per value (float64, in [0, 1]): the same
    arithmetic, so that a constant share gives the same bits as the scalar function."""
    share = np.asarray(share, np.float64)
    a = np.maximum(share, 1.0 - share).astype(np.float32)
    b = np.float32(1) - a
    s = share.astype(np.float32) * u + (1.0 - share).astype(np.float32) * v
    two_ab = np.float32(2) * a * b
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = s * s / two_ab
        mid = (s - b / np.float32(2)) / a
        hi = np.float32(1) - (np.float32(1) - s) * (np.float32(1) - s) / two_ab
    out = np.where(s < b, lo, np.where(s <= a, mid, hi))
    return np.where(share <= 0, v, np.where(share >= 1, u, out)).astype(np.float32)


def range_share(s12: "Spec12") -> np.ndarray:
    """(256 * 256,) float64: the world-anchored share of the blob fields per grid column,
    ``world_share + world_share_r * r`` clipped to [0, 1], r = the column's horizontal range / 51.2 m."""
    rn = O.grid_geometry()["rn"].reshape(-1).astype(np.float64)
    return np.clip(s12.world_share + s12.world_share_r * rn, 0.0, 1.0)


class RangeShareFields(O.Fields):
    """The blob fields of one scan with a world-anchored share that varies per grid column (``share``, from
    :func:`range_share`): ``F = CDF_s(s u + (1 - s) v)`` with u the world part and v the viewpoint part of
    ``fields`` (an :class:`occbench.synth.onboard.Fields` with its world part), s the share of the voxel's column.
    F is uniform at every s, so the error *rates* do not depend on the share."""

    def __init__(self, fields: O.Fields, share: np.ndarray):
        if fields.world is None:
            raise ValueError("RangeShareFields needs fields with a world-anchored part (world_share > 0)")
        super().__init__(fields.a, fields.b, fields.w, fields.lut)
        self.world: O.WorldSample = fields.world
        self.view = O.Fields(fields.a, fields.b, fields.w, fields.lut)  # the viewpoint part alone
        self.share = share

    def kernel_world_args(self, k: int) -> tuple:
        """:meth:`occbench.synth.onboard.WorldSample.kernel_args` with the share of every grid column."""
        return (*self.world.kernel_args(k)[:-1], self.share)

    def sample_numpy(self, k: int, idx: np.ndarray) -> np.ndarray:
        """The reference of :meth:`sample`, in numpy."""
        return blend_uniform_varying(self.world.sample(k, idx), self.view.sample_numpy(k, idx), self.share[idx >> 5])


@dataclass(frozen=True)
class Spec12:
    """Generator 1.2's additions to a 1.1 :class:`occbench.synth.onboard.ModelSpec` (docs/mini.md)."""

    blob_scale: float = 1.0  # multiplies 1.1's blob error rates (miss, add, confuse)
    world_share: float = 0.5  # world-anchored share of the blob fields (at the sensor when world_share_r != 0)
    world_share_r: float = 0.0  # added to world_share per 51.2 m of the voxel's range, clipped to [0, 1]
    key_every: int = 5  # scans between viewpoint field draws
    inst_miss0: float = 0.0  # probability that a thing instance is missed, at the sensor
    inst_miss_r: float = 0.0  # added per 51.2 m of range of the instance
    inst_miss_class: dict[int, float] = field(default_factory=dict)  # added per class
    inst_relabel0: float = 0.0  # probability that a thing instance is relabelled (confusion row)
    inst_relabel_r: float = 0.0
    hardness_cell: float = 4.0  # m: side of the world cells of the latent instance hardness
    depth_sigma: float = 0.0  # m: standard deviation of the depth error at 51.2 m (grows as r^2)
    depth_world_share: float = 0.5  # world-anchored share of the depth error field
    fill_hidden: float = 0.0  # blob probability that a voxel with no line of sight holds shifted content
    fill_shift: int = 4  # voxels: the shift of that content (extrusion away from the sensor / sideways)
    sys_random: bool = True  # systematic rules drawn per sequence
    region_relabel0: float = 0.0  # probability that the ground voxels of a world region take another ground class
    region_relabel_r: float = 0.0  # added per 51.2 m of the voxel column's range
    region_cell: float = 8.0  # m: side of the world regions of the ground relabels


MODELS12: dict[str, Spec12] = {
    "voxformer-sim": Spec12(
        blob_scale=0.75,
        world_share=0.5,
        inst_miss0=0.05,
        inst_miss_r=0.35,
        inst_miss_class={
            Wd.PERSON: 0.2,
            Wd.BICYCLIST: 0.2,
            Wd.MOTORCYCLIST: 0.3,
            Wd.BICYCLE: 0.2,
            Wd.MOTORCYCLE: 0.2,
            Wd.POLE: 0.15,
            Wd.TRAFFIC_SIGN: 0.2,
            Wd.TRUNK: 0.1,
        },
        inst_relabel0=0.05,
        inst_relabel_r=0.25,
        depth_sigma=1.5,
        depth_world_share=0.6,
        fill_hidden=0.35,
        fill_shift=4,
    ),
    "sscnet-sim": Spec12(
        blob_scale=0.8,
        world_share=0.5,
        inst_miss0=0.05,
        inst_miss_r=0.15,
        inst_miss_class={Wd.POLE: 0.1, Wd.TRAFFIC_SIGN: 0.1, Wd.TRUNK: 0.1},
        inst_relabel0=0.05,
        inst_relabel_r=0.15,
        depth_sigma=0.0,
        depth_world_share=0.5,
        fill_hidden=0.35,
        fill_shift=4,
    ),
}


# Generator 1.3 (opt-in): 1.2's world and error model with the parameters of the candidate chosen on held-out
# train data (docs/mini-vs-real.md, "Generator 1.2: candidates on held-out train data"); overrides of MODELS12 and
# of the 1.1 ModelSpec, as ``--set`` of benchmarks/calibrate_generator.py
MODELS13: dict[str, dict] = {
    "voxformer-sim": {  # candidate c18-ws0.65-wsr0.5-miss_r0.1
        "depth_sigma": 0.8,
        "blob_scale": 0.85,
        "depth_world_share": 0.8,
        "miss_r": 0.1,
        "conf_r": 0.3,
        "miss0": 0.06,
        "inst_miss_r": 0,
        "inst_relabel_r": 0,
        "world_share": 0.65,
        "world_share_r": 0.5,
    },
    "sscnet-sim": {"miss0": 0.36},  # candidate s1-miss0.36
}


def sequence_spec(base: O.ModelSpec, rng: np.random.Generator) -> O.ModelSpec:
    """``base``'s systematic rules with thresholds and switches drawn for one sequence (a rule a model has stays
    on, with a drawn strength; a camera model may or may not confuse other-ground with sidewalk)."""
    kw: dict = {}
    u = rng.random(8)
    if base.sys_parking_to_road > 0:
        kw["sys_parking_to_road"] = round(0.4 + 1.2 * float(u[0]), 3)
    if base.modality == "camera":
        kw["sys_otherground_to_sidewalk"] = bool(u[1] < 0.6)
    kw["sys_lowveg_to_terrain"] = bool(u[2] < 0.7)
    if base.sys_trunk_top < 99:
        kw["sys_trunk_top"] = round(1.2 + 1.4 * float(u[3]), 3)
    kw["sys_sign_to_pole"] = base.sys_sign_to_pole or bool(u[4] < 0.25)
    if base.sys_thicken_from < 99:
        kw["sys_thicken_from"] = round(18.0 + 18.0 * float(u[5]), 3)
    if base.sys_smear > 0:
        kw["sys_smear"] = int(u[6] * 3)  # 0, 1 or 2 voxels
    return dataclasses.replace(base, **kw)


def _scaled(base: O.ModelSpec, s: Spec12) -> O.ModelSpec:
    k = float(s.blob_scale)
    scale = {
        n: round(getattr(base, n) * k, 6)
        for n in (
            "miss0",
            "miss_r",
            "miss_fov",
            "miss_hidden",
            "miss_hidden_r",
            "add0",
            "add_r",
            "add_fov",
            "conf0",
            "conf_r",
            "conf_fov",
        )
    }
    return dataclasses.replace(
        base,
        **scale,
        miss_class={c: round(v * k, 6) for c, v in base.miss_class.items()},
        conf_class={c: round(v * k, 6) for c, v in base.conf_class.items()},
        world_share=s.world_share,
        key_every=s.key_every,
        image_size=CAMERA_IMAGE,
    )


@lru_cache(maxsize=1)
def _voxel_xyz() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """LiDAR-frame centre (x, y, z) of every voxel (flat, float32) and its distance to the sensor."""
    x = np.float32(0.2) * (np.arange(GRID[0], dtype=np.float32) + np.float32(0.5))
    y = np.float32(-25.6) + np.float32(0.2) * (np.arange(GRID[1], dtype=np.float32) + np.float32(0.5))
    z = np.float32(-2.0) + np.float32(0.2) * (np.arange(GRID[2], dtype=np.float32) + np.float32(0.5))
    X, Y, Z = (a.reshape(-1) for a in np.meshgrid(x, y, z, indexing="ij"))
    R = np.sqrt(X * X + Y * Y + Z * Z)
    return X, Y, Z, R


class Predictor12:
    """``predictor(t, truth, vis)``: generator 1.2's prediction of one onboard model for scan t of a sequence."""

    def __init__(self, seed: int, seq: str, model: str, world: Wd.World, overrides: dict | None = None):
        overrides = dict(overrides or {})
        s12 = MODELS12[model]
        s12 = dataclasses.replace(s12, **{k: v for k, v in overrides.items() if k in Spec12.__dataclass_fields__})
        base_over = {k: v for k, v in overrides.items() if k not in Spec12.__dataclass_fields__}
        if "blob" in base_over:  # a JSON list from the command line; the field cache keys on the tuple
            base_over["blob"] = tuple(int(c) for c in base_over["blob"])
        base = dataclasses.replace(O.MODELS[model], **base_over)
        entropy = [int(seed), 7_130_112, int(seq), O.MODEL_IDS[model], 12]
        if s12.sys_random:
            base = sequence_spec(base, np.random.default_rng(entropy + [SYS_STREAM]))
        self.s12, self.spec, self.world = s12, _scaled(base, s12), world
        self.fields = O.FieldCache(entropy, self.spec, n_fields=3, world=world)
        self.fill = O.FieldCache(entropy + [FILL_STREAM], self.spec, n_fields=2, world=world)
        self.depth = O.FieldCache(
            entropy + [DEPTH_STREAM],
            dataclasses.replace(self.spec, world_share=s12.depth_world_share),
            n_fields=1,
            world=world,
        )
        cell = max(1, int(round(s12.hardness_cell / Wd.CELL)))
        nx, ny = world.shape
        rng = np.random.default_rng(entropy + [HARD_STREAM])
        self.hard_cell = cell
        self.hardness = rng.random((nx // cell + 2, ny // cell + 2, 2))  # (miss-or-relabel, which class)
        if s12.world_share_r != 0 and s12.world_share <= 0:
            raise ValueError(
                f"{model}: world_share_r = {s12.world_share_r} needs world_share > 0 (the world-anchored fields)"
            )
        self.share: np.ndarray | None = range_share(s12) if s12.world_share_r != 0 else None
        self.region_cell = max(1, int(round(s12.region_cell / Wd.CELL)))
        self.regions: np.ndarray | None = None
        if s12.region_relabel0 + s12.region_relabel_r > 0:
            rr = np.random.default_rng(entropy + [REGION_STREAM])
            self.regions = rr.random((nx // self.region_cell + 2, ny // self.region_cell + 2, 2))

    def __call__(self, t: int, truth: np.ndarray, vis: np.ndarray) -> np.ndarray:
        T = np.where(truth == 255, 0, truth).astype(np.uint8)
        P = O._systematic(self.spec, T)
        P = self._instances(t, P)
        if self.regions is not None:
            P = self._regions(t, P)
        if self.s12.depth_sigma > 0:
            P = self._depth(t, P)
        if self.s12.fill_hidden > 0:
            P = self._fill_hidden(t, P, vis)
        fields = self.fields.at(t)
        if self.share is not None:
            fields = RangeShareFields(fields, self.share)  # the share grows with range
        return O._viewpoint(self.spec, P, T, vis, fields, draw_confused=draw_from_rows)

    def _regions(self, t: int, P: np.ndarray) -> np.ndarray:
        """Whole-region relabels of the ground: every ground-class voxel of a world region whose latent hardness
        is below ``region_relabel0 + region_relabel_r * r`` (r: the voxel column's range / 51.2 m) takes the
        ground class that the region's second draw gives in its class's :func:`ground_rows`."""
        from occbench.synth.columns import columns

        R = self.regions
        Pf = P.reshape(-1)
        idx = np.flatnonzero(GROUND_LUT[Pf])
        if R is None or idx.size == 0:
            return P
        cols = columns()
        col = idx >> 5
        fx, fy = self.world.cell_coords(tuple(self.world.poses[t]), cols["GU"], cols["GV"])
        hi = np.clip(np.floor(fx / self.region_cell).astype(np.int64), 0, R.shape[0] - 1)[col]
        hj = np.clip(np.floor(fy / self.region_cell).astype(np.int64), 0, R.shape[1] - 1)[col]
        rn = O.grid_geometry()["rn"].reshape(-1)[col].astype(np.float64)
        hit = R[hi, hj, 0] < self.s12.region_relabel0 + self.s12.region_relabel_r * rn
        out = Pf.copy()
        sel = idx[hit]
        out[sel] = draw_ground(Pf[sel], R[hi[hit], hj[hit], 1].astype(np.float32))
        return out.reshape(P.shape)

    def _instances(self, t: int, P: np.ndarray) -> np.ndarray:
        s = self.s12
        if s.inst_miss0 + s.inst_miss_r + s.inst_relabel0 + s.inst_relabel_r <= 0 and not s.inst_miss_class:
            return P
        comp, n = ndimage.label(THING_LUT[P])
        if n == 0:
            return P
        flat = comp.reshape(-1)
        idx = np.flatnonzero(flat)
        ids = flat[idx] - 1
        cnt = np.bincount(ids, minlength=n).astype(np.float64)
        ix, iy = (idx >> 5) // GRID[1], (idx >> 5) % GRID[1]
        cx = np.bincount(ids, weights=ix, minlength=n) / cnt
        cy = np.bincount(ids, weights=iy, minlength=n) / cnt
        first = np.full(n, idx.size, np.int64)
        np.minimum.at(first, ids, np.arange(idx.size))
        cls = P.reshape(-1)[idx[first]]
        u = np.float32(0.2) * (cx.astype(np.float32) + np.float32(0.5))  # LiDAR frame (grid origin x = 0)
        v = np.float32(-25.6) + np.float32(0.2) * (cy.astype(np.float32) + np.float32(0.5))
        fx, fy = self.world.cell_coords(tuple(self.world.poses[t]), u.astype(np.float64), v.astype(np.float64))
        H = self.hardness
        hi = np.clip(np.floor(fx / self.hard_cell).astype(np.int64), 0, H.shape[0] - 1)
        hj = np.clip(np.floor(fy / self.hard_cell).astype(np.int64), 0, H.shape[1] - 1)
        h, which = H[hi, hj, 0], H[hi, hj, 1]
        r = np.sqrt(u.astype(np.float64) ** 2 + v.astype(np.float64) ** 2) / 51.2
        extra = np.zeros(256)
        for c, p in s.inst_miss_class.items():
            extra[c] = p
        pm = s.inst_miss0 + s.inst_miss_r * r + extra[cls]
        pr = s.inst_relabel0 + s.inst_relabel_r * r
        new = np.where(h < pm, 0, np.where(h < pm + pr, draw_from_rows(cls, which.astype(np.float32)), cls))
        lut = np.concatenate([[0], new]).astype(np.uint8)
        out = P.reshape(-1).copy()
        out[idx] = lut[flat[idx]]
        return out.reshape(P.shape)

    def _depth(self, t: int, P: np.ndarray) -> np.ndarray:
        """Every occupied voxel moved along its viewing ray by the depth error (see the module docstring): the
        compiled kernel when numba is present, else :func:`_depth_numpy` (the same labels)."""
        idx = np.flatnonzero(P.reshape(-1))
        u = self.depth.at(t).sample(0, idx)
        if not _kernels.AVAILABLE:
            return _depth_numpy(P, idx, u, self.s12.depth_sigma)
        return _kernels.depth_move(P, idx, u, _voxel_xyz(), self.s12.depth_sigma)

    def _fill_hidden(self, t: int, P: np.ndarray, vis: np.ndarray) -> np.ndarray:
        """Blobs of the voxels with no line of sight take the content ``fill_shift`` voxels away (see the module
        docstring): the compiled kernel when numba is present, else :func:`_fill_shifted_numpy`."""
        f = self.fill.at(t)
        hid = np.flatnonzero(~vis.reshape(-1))
        sel = hid[f.sample(0, hid) < np.float32(self.s12.fill_hidden)]
        if sel.size == 0:
            return P
        # along the ray (which = 0), to the left (1) or to the right (2), one third each
        which = np.minimum((f.sample(1, sel) * np.float32(3)).astype(np.int64), 2)
        k = self.s12.fill_shift
        if not _kernels.AVAILABLE:
            return _fill_shifted_numpy(P, sel, which, k)
        xdom, ypos = _ray_axes()
        return _kernels.fill_shifted(P, sel, which, xdom, ypos, k)


def _depth_numpy(P: np.ndarray, idx: np.ndarray, u: np.ndarray, sigma: float) -> np.ndarray:
    """The reference of :meth:`Predictor12._depth`, in numpy: the occupied voxels ``idx`` of ``P`` with depth field
    values ``u``."""
    X, Y, Z, R = _voxel_xyz()
    Pf = P.reshape(-1)
    rn = R[idx] / np.float32(51.2)
    # unit-variance uniform error (centred uniform times sqrt 12), sigma growing as r^2, in metres along the ray
    d = (u - np.float32(0.5)) * np.float32(3.4641016) * np.float32(sigma) * rn * rn
    k = d / R[idx]
    nx = np.floor((X[idx] * (np.float32(1) + k)) / np.float32(0.2)).astype(np.int64)
    ny = np.floor((Y[idx] * (np.float32(1) + k) + np.float32(25.6)) / np.float32(0.2)).astype(np.int64)
    nz = np.floor((Z[idx] * (np.float32(1) + k) + np.float32(2.0)) / np.float32(0.2)).astype(np.int64)
    ok = (nx >= 0) & (nx < GRID[0]) & (ny >= 0) & (ny < GRID[1]) & (nz >= 0) & (nz < GRID[2])
    out = np.zeros_like(Pf)
    # farther voxels first, so that a nearer surface wins a collision (the camera sees the nearer one)
    order = np.argsort(-R[idx][ok], kind="stable")
    dst = ((nx * GRID[1] + ny) * GRID[2] + nz)[ok][order]
    out[dst] = Pf[idx[ok][order]]
    return out.reshape(P.shape)


@lru_cache(maxsize=1)
def _ray_axes() -> tuple[np.ndarray, np.ndarray]:
    """Per grid column: whether the ray from the sensor runs mostly along x (else y), and whether y > 0."""
    geo = O.grid_geometry()
    return np.abs(geo["X"]) >= np.abs(geo["Y"]), geo["Y"] > 0


def _fill_shifted_numpy(P: np.ndarray, sel: np.ndarray, which: np.ndarray, k: int) -> np.ndarray:
    """The reference of :meth:`Predictor12._fill_hidden`'s kernel, in numpy: ``P`` with the voxels ``sel`` taking
    the content ``k`` voxels along the ray (``which`` 0), to the left (1) or to the right (2)."""
    xdom, ypos = (a[:, :, None] for a in _ray_axes())
    # along the ray (away from the sensor): the voxel k closer to the sensor; sideways: k to the left / right
    along = np.where(xdom, O._shift(P, 0, k), np.where(ypos, O._shift(P, 1, k), O._shift(P, 1, -k)))
    left = np.where(xdom, O._shift(P, 1, k), O._shift(P, 0, k))
    right = np.where(xdom, O._shift(P, 1, -k), O._shift(P, 0, -k))
    cand = np.stack([along.reshape(-1)[sel], left.reshape(-1)[sel], right.reshape(-1)[sel]])
    out = P.reshape(-1).copy()
    out[sel] = cand[which, np.arange(sel.size)]
    return out.reshape(P.shape)

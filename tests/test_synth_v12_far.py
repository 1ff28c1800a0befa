"""Generator 1.2's opt-in far-range error knobs: a world-anchored share that grows with range, and whole-region
relabels of the ground (occbench/synth/onboard12.py; docs/mini.md, "Generator 1.2")."""

from __future__ import annotations

import numpy as np
import pytest
from test_synth_v12 import MICRO12

from occbench.synth import onboard as O
from occbench.synth import world as Wd

ONLY_BLOBS = dict(  # 1.2 without its other error sources, so that what a test sees comes from the blob fields
    inst_miss0=0.0,
    inst_miss_r=0.0,
    inst_miss_class={},
    inst_relabel0=0.0,
    inst_relabel_r=0.0,
    fill_hidden=0.0,
    depth_sigma=0.0,
    sys_random=False,
)


@pytest.fixture(scope="module")
def world() -> Wd.World:
    from occbench.synth.generate import get_world

    return get_world(MICRO12, "08")


def _scan(w: Wd.World, t: int) -> tuple[np.ndarray, np.ndarray]:
    from occbench.synth.generate import grid_codes, line_of_sight

    codes = grid_codes(w, t)
    return Wd.CODE_TO_TRAIN[codes], line_of_sight(codes)


def test_varying_blend_is_uniform_and_equals_the_scalar_blend_at_a_constant_share() -> None:
    from occbench.synth.onboard12 import blend_uniform_varying

    rng = np.random.default_rng(5)
    u, v = rng.random(200_000, dtype=np.float32), rng.random(200_000, dtype=np.float32)
    for s in (0.0, 0.3, 0.5, 0.7, 1.0):
        assert np.array_equal(blend_uniform_varying(u, v, np.full(u.size, s)), O.blend_uniform(u, v, s))
    # with a share that changes from value to value the result is still uniform (rates do not depend on the share)
    share = rng.random(u.size)
    f = blend_uniform_varying(u, v, share)
    assert np.all((f >= 0) & (f <= 1))
    hist = np.histogram(f, bins=10, range=(0, 1))[0] / f.size
    assert np.abs(hist - 0.1).max() < 0.005
    # at share 1 the value is the world part, at 0 the viewpoint part
    ends = blend_uniform_varying(u, v, np.r_[np.zeros(10), np.ones(10), np.full(u.size - 20, 0.5)])
    assert np.array_equal(ends[:10], v[:10]) and np.array_equal(ends[10:20], u[10:20])


def test_world_share_r_zero_is_the_fixed_share_model(world: Wd.World) -> None:
    from occbench.synth.onboard12 import Predictor12

    truth, vis = _scan(world, 2)
    fixed = Predictor12(MICRO12.seed, "08", "voxformer-sim", world, {"world_share": 0.7})
    assert fixed.share is None  # the 1.2 default path is untouched
    # a range-growing share whose growth is 0 goes through RangeShareFields and gives the same bits
    flat = Predictor12(MICRO12.seed, "08", "voxformer-sim", world, {"world_share": 0.7})
    flat.share = np.full(256 * 256, 0.7)
    assert np.array_equal(fixed(2, truth, vis), flat(2, truth, vis))
    with pytest.raises(ValueError, match="world_share_r"):
        Predictor12(MICRO12.seed, "08", "voxformer-sim", world, {"world_share": 0.0, "world_share_r": 0.5})


def _place_values(p, w: Wd.World, t: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The blob field k of scan t at every voxel of z level 8, with the world cell each column falls in and the
    column's range / 51.2 m."""
    from occbench.synth.columns import columns
    from occbench.synth.onboard12 import RangeShareFields

    f = p.fields.at(t)
    if p.share is not None:
        f = RangeShareFields(f, p.share)
    idx = np.arange(256 * 256, dtype=np.int64) * 32 + 8
    fx, fy = w.cell_coords(tuple(w.poses[t]), columns()["GU"], columns()["GV"])
    cell = np.floor(fx).astype(np.int64) * 100_000 + np.floor(fy).astype(np.int64)
    return f.sample(0, idx), cell, O.grid_geometry()["rn"].reshape(-1)


def _agreement(p, w: Wd.World, t0: int, t1: int) -> tuple[float, float]:
    """Correlation of field 0 at the same world cells seen from scans t0 and t1 (different viewpoint keys),
    for cells within 10 m of both scans' sensors and beyond 30 m of both."""
    a, ca, ra = _place_values(p, w, t0, 0)
    b, cb, rb = _place_values(p, w, t1, 0)
    _, ia, ib = np.intersect1d(ca, cb, return_indices=True)
    near = (ra[ia] < 10 / 51.2) & (rb[ib] < 10 / 51.2)
    far = (ra[ia] > 30 / 51.2) & (rb[ib] > 30 / 51.2)
    assert near.sum() > 500 and far.sum() > 500
    return (
        float(np.corrcoef(a[ia][near], b[ib][near])[0, 1]),
        float(np.corrcoef(a[ia][far], b[ib][far])[0, 1]),
    )


def test_share_grows_with_range_and_far_errors_are_the_same_from_every_frame(world: Wd.World) -> None:
    from occbench.synth.onboard12 import Predictor12, range_share

    grow = Predictor12(MICRO12.seed, "08", "voxformer-sim", world, {"world_share": 0.5, "world_share_r": 1.0})
    share = range_share(grow.s12).reshape(256, 256)
    assert share[0, 128] == pytest.approx(0.5, abs=0.01) and share[255, 128] == 1.0  # sensor side / 51.2 m ahead
    assert np.all(np.diff(share[:, 128]) >= 0)
    # scans 0 and 5 have independent viewpoint fields (key_every 5). Within 10 m the share is 0.5-0.7
    # (correlation of the two scans' values about s^2 / (s^2 + (1 - s)^2): 0.5-0.84); from 30 m on it is 1 and
    # the same world place has (nearly: sampled at other points of its cell) the same value in both scans. With
    # the fixed share 0.5 both ranges agree about as much as that
    from occbench.synth.onboard12 import RangeShareFields

    f = RangeShareFields(grow.fields.at(3), grow.share)
    idx = np.arange(0, 256 * 256 * 32, 7, dtype=np.int64)
    assert np.array_equal(f.sample(1, idx), f.sample_numpy(1, idx))  # compiled kernel (when present) == numpy
    g_near, g_far = _agreement(grow, world, 0, 5)
    fixed = Predictor12(MICRO12.seed, "08", "voxformer-sim", world, {"world_share": 0.5})
    f_near, f_far = _agreement(fixed, world, 0, 5)
    assert g_far > 0.9 and g_far > f_far + 0.25
    assert g_near < g_far - 0.1 and abs(f_near - f_far) < 0.2


def test_region_relabels_are_whole_regions_of_ground_fixed_in_the_world(world: Wd.World) -> None:
    from occbench.synth.onboard12 import GROUND, Predictor12, ground_rows

    rows = ground_rows()
    for i in GROUND:
        assert rows[i].sum() == pytest.approx(1.0) and rows[i, i] == 0
        assert set(np.flatnonzero(rows[i])) <= set(GROUND)
    over = {**ONLY_BLOBS, "blob_scale": 0.0, "region_relabel0": 0.5, "region_cell": 8.0}
    p = Predictor12(MICRO12.seed, "08", "voxformer-sim", world, over)
    none = Predictor12(MICRO12.seed, "08", "voxformer-sim", world, {**over, "region_relabel0": 0.0})
    assert none.regions is None
    labels = {}
    for t in (0, 6):
        truth, vis = _scan(world, t)
        a, b = p(t, truth, vis), none(t, truth, vis)
        changed = a != b
        # only ground voxels change, into another ground class
        assert changed.any()
        assert np.isin(b[changed], GROUND).all() and np.isin(a[changed], GROUND).all()
        assert (a[changed] != b[changed]).all()
        # about half of the ground is relabelled (one draw per region), things and structures never are
        ground = np.isin(b, GROUND)
        assert 0.2 < changed.sum() / ground.sum() < 0.8
        labels[t] = (a, b)
    # fixed in the world: a world voxel seen from scans 0 and 6 gets the same label from both
    from occbench.synth.columns import columns

    key = {}
    for t, (a, b) in labels.items():
        fx, fy = world.cell_coords(tuple(world.poses[t]), columns()["GU"], columns()["GV"])
        cell = np.floor(fx).astype(np.int64) * 100_000 + np.floor(fy).astype(np.int64)
        top = np.where(np.isin(b, GROUND), np.arange(32)[None, None, :], -1).max(axis=2).reshape(-1)
        has = top >= 0
        lab = np.where(has, a.reshape(-1, 32)[np.arange(256 * 256), np.maximum(top, 0)], 255)
        key[t] = (cell[has], lab[has], b.reshape(-1, 32)[np.arange(256 * 256), np.maximum(top, 0)][has])
    (c0, l0, t0), (c6, l6, t6) = key[0], key[6]
    _, i0, i6 = np.intersect1d(c0, c6, return_indices=True)
    same_truth = t0[i0] == t6[i6]
    assert same_truth.sum() > 1000
    assert (l0[i0][same_truth] == l6[i6][same_truth]).mean() > 0.97


def test_generator_1_3_is_1_2_with_the_calibrated_parameters(world: Wd.World) -> None:
    import dataclasses

    from occbench.synth.generate import get_world, onboard_predictor
    from occbench.synth.onboard12 import MODELS13

    cfg13 = dataclasses.replace(MICRO12, generator="1.3")
    w13 = get_world(cfg13, "08")
    assert np.array_equal(w13.W, world.W) and w13.agents == world.agents  # 1.2's world (stopped agents)
    truth, vis = _scan(world, 1)
    for model in ("voxformer-sim", "sscnet-sim"):
        p13 = onboard_predictor(cfg13, "08", model, w13)(1, truth, vis)
        assert np.array_equal(p13, onboard_predictor(MICRO12, "08", model, world, MODELS13[model])(1, truth, vis))
        assert not np.array_equal(p13, onboard_predictor(MICRO12, "08", model, world)(1, truth, vis))

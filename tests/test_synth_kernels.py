"""The generator's compiled kernels give the bits of the numpy code they replace."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from occbench.synth import _kernels
from occbench.synth import world as W
from occbench.synth.onboard import MODELS, FieldCache
from occbench.synth.sensor import Visibility


def test_the_compiled_kernels_are_available() -> None:
    assert _kernels.AVAILABLE  # numba is a declared dependency: without it every test here would test numpy twice


def test_line_of_sight_kernel_equals_the_shell_pass() -> None:
    vis = Visibility.build((0.0, 12.8), (-6.4, 6.4), max_range=20.0)
    assert vis.parents_first
    rng = np.random.default_rng(0)
    for density in (0.0, 0.02, 0.2):
        occ = rng.random(vis.shape) < density
        occ[:, :, :2] = True  # ground
        a, b = vis.visible(occ), vis.visible_numpy(occ)
        assert a.dtype == b.dtype == bool and np.array_equal(a, b)


def test_the_generator_volumes_visit_parents_first() -> None:
    from occbench.synth.generate import _big_visibility, _grid_visibility

    assert _grid_visibility().parents_first and _big_visibility().parents_first


@pytest.mark.parametrize("share", [0.5, 0.0, 0.8])
def test_field_kernel_equals_numpy(share: float) -> None:
    w = W.build_world([2, 7_130_111, 8], 12, 0)
    spec = dataclasses.replace(MODELS["voxformer-sim"], world_share=share)
    fc = FieldCache([2, 7_130_112, 8, 1], spec, world=w)
    rng = np.random.default_rng(1)
    for t in (0, 3, 11):
        f = fc.at(t)
        for k in range(3):
            idx = np.sort(rng.choice(256 * 256 * 32, 200_000, replace=False))
            a, b = f.sample(k, idx), f.sample_numpy(k, idx)
            assert a.dtype == b.dtype == np.float32
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("cell", [(8, 8, 4), (4, 16, 2)])
def test_smooth_field_kernel_equals_numpy(cell: tuple[int, int, int]) -> None:
    from occbench.synth.onboard import _interpolate_numpy, smooth_field

    a = smooth_field(np.random.default_rng(6), cell)
    rng = np.random.default_rng(6)
    lattice = rng.random(tuple(n // c + 2 for n, c in zip((256, 256, 32), cell)), dtype=np.float32)
    steps = []
    for n, c in zip((256, 256, 32), cell):
        pos = (np.arange(n) + 0.5) / c + 0.5
        i0 = np.floor(pos).astype(np.int64)
        steps.append((i0, (pos - i0).astype(np.float32)))
    b = _interpolate_numpy(lattice, steps)
    assert a.dtype == b.dtype == np.float32 and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_field_kernel_with_a_share_per_column_equals_numpy() -> None:
    from occbench.synth.onboard12 import RangeShareFields

    w = W.build_world([2, 7_130_111, 8], 12, 0)
    fc = FieldCache([2, 7_130_112, 8, 1], MODELS["voxformer-sim"], world=w)
    rng = np.random.default_rng(4)
    share = rng.random(256 * 256)
    share[rng.random(share.size) < 0.2] = 0.0  # the viewpoint part alone
    share[rng.random(share.size) < 0.2] = 1.0  # the world part alone
    f = RangeShareFields(fc.at(7), share)
    for k in range(3):
        idx = np.sort(rng.choice(256 * 256 * 32, 200_000, replace=False))
        a, b = f.sample(k, idx), f.sample_numpy(k, idx)
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("model", sorted(MODELS))
def test_systematic_and_neighbour_label_kernels_equal_numpy(model: str) -> None:
    from occbench.synth.generate import grid_codes
    from occbench.synth.onboard import _dilate_labels, _dilate_labels_numpy, _systematic, _systematic_numpy

    w = W.build_world([4, 7_130_111, 8], 40, 0)
    rng = np.random.default_rng(2)
    specs = [
        MODELS[model],
        dataclasses.replace(
            MODELS[model],
            sys_parking_to_road=0.0,
            sys_smear=0,
            sys_thicken_from=99.0,
            sys_otherground_to_sidewalk=True,
            sys_sign_to_pole=True,
            sys_small_to=1,
            sys_trunk_top=1.0,
        ),
    ]
    for t in (0, 17, 39):
        undo = w.stamp_agents(t)
        codes = grid_codes(w, t)
        w.unstamp(undo)
        truth = W.CODE_TO_TRAIN[codes]
        T = np.where(truth == 255, 0, truth).astype(np.uint8)
        noisy = np.where(rng.random(T.shape) < 0.02, rng.integers(0, 20, T.shape), T).astype(np.uint8)
        for P in (T, noisy):
            for spec in specs:
                assert np.array_equal(_systematic(spec, P), _systematic_numpy(spec, P))
            assert np.array_equal(_dilate_labels(P), _dilate_labels_numpy(P))


@pytest.mark.parametrize("sigma", [0.8, 6.0])
def test_depth_and_hidden_fill_kernels_equal_numpy(sigma: float) -> None:
    from occbench.synth.generate import grid_codes, line_of_sight
    from occbench.synth.onboard12 import _depth_numpy, _fill_shifted_numpy, _ray_axes, _voxel_xyz

    w = W.build_world([5, 7_130_111, 8], 40, 0)
    rng = np.random.default_rng(3)
    for t in (0, 21):
        undo = w.stamp_agents(t)
        codes = grid_codes(w, t)
        w.unstamp(undo)
        P = np.where(codes > 0, W.CODE_TO_TRAIN[codes] % 20, 0).astype(np.uint8)
        idx = np.flatnonzero(P)
        u = rng.random(idx.size, dtype=np.float32)  # sigma 6: many voxels collide, or leave the grid
        assert np.array_equal(_kernels.depth_move(P, idx, u, _voxel_xyz(), sigma), _depth_numpy(P, idx, u, sigma))
        hid = np.flatnonzero(~line_of_sight(codes).reshape(-1))
        sel = np.sort(rng.choice(hid, hid.size // 3, replace=False))
        which = rng.integers(0, 3, sel.size)
        for k in (1, 4, 300):  # 300: every shifted voxel lies outside the grid
            got = _kernels.fill_shifted(P, sel, which, *_ray_axes(), k)
            assert np.array_equal(got, _fill_shifted_numpy(P, sel, which, k))

"""One Grid: the KITTI grid's numbers in one place, and another grid described without touching other modules."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from occbench.errors import FormatError
from occbench.grid import KITTI, Grid
from occbench.labels import load_label_map
from occbench.metrics import PROTOCOLS, FrameArrays
from occbench.metrics.ssc import Layout, SSCMetric

# Occ3D-nuScenes: 200 x 200 x 16 voxels of 0.4 m around the ego vehicle, x, y in [-40, 40), z in [-1, 5.4)
OCC3D = Grid(
    name="occ3d",
    shape=(200, 200, 16),
    voxel_size=0.4,
    origin=(-40.0, -40.0, -1.0),
    ranges=(20.0, 40.0, 80.0),
    crop="around",
)


def test_kitti_grid_is_the_semantic_kitti_voxelizers():
    """The numbers of the SemanticKITTI SSC grid as its sources state them: ``VOXEL_DIMS = (256, 256, 32)``
    (semantic-kitti-api ``auxiliary/SSCDataset.py``); voxel size 0.2 m and extents [0, -25.6, -2] .. [51.2, 25.6, 4.4]
    (jbehley/voxelizer ``assets/semantic_kitti.cfg``; VoxFormer ``point_cloud_range``; MonoScene ``vox_origin``);
    voxel ``(i, j, k)`` holds the points with ``floor((p - origin) / 0.2) == (i, j, k)`` (voxelizer
    ``VoxelGrid::insert``);
    a ``.label`` file is 4,194,304 bytes, a bit-packed ``.invalid`` 262,144."""
    from occbench import geometry
    from occbench.io import voxels

    assert KITTI.shape == (256, 256, 32) and KITTI.num_voxels == 2_097_152
    assert KITTI.voxel_size == 0.2 and KITTI.origin == (0.0, -25.6, -2.0)
    np.testing.assert_allclose(
        np.array(KITTI.origin) + 0.2 * np.array(KITTI.shape), (51.2, 25.6, 4.4), rtol=0, atol=1e-12
    )
    assert (voxels.LABEL_BYTES, voxels.PACKED_BYTES) == (4_194_304, 262_144)
    rng = np.random.default_rng(0)
    idx = np.concatenate([[[0, 0, 0], [255, 255, 31], [0, 128, 10]], rng.integers(0, (256, 256, 32), (50, 3))])
    inner = rng.uniform(0.01, 0.19, idx.shape)  # a point strictly inside each voxel
    points = np.array([0.0, -25.6, -2.0]) + 0.2 * idx + inner
    got, inside = geometry.voxelize(points)
    assert inside.all() and np.array_equal(got, idx)
    np.testing.assert_allclose(geometry.voxel_centres(idx), np.array([0.0, -25.6, -2.0]) + 0.2 * idx + 0.1, atol=1e-12)
    outside = np.array([[-0.01, 0.0, 0.0], [51.21, 0.0, 0.0], [10.0, 25.61, 0.0], [10.0, 0.0, 4.41]])
    assert not geometry.voxelize(outside)[1].any()
    for p in PROTOCOLS.values():  # every shipped protocol scores that grid
        assert p.grid.shape == (256, 256, 32) and p.grid.voxel_size == 0.2 and p.grid.origin == (0.0, -25.6, -2.0)


def test_occ3d_range_crops_are_centred_on_the_ego_vehicle():
    assert OCC3D.range_keys == ("20.0", "40.0", "80.0") and OCC3D.full_range_key == "80.0"
    assert OCC3D.range_slices(20.0) == (slice(75, 125), slice(75, 125))
    assert OCC3D.range_slices(80.0) == (slice(0, 200), slice(0, 200))
    lv = OCC3D.range_levels()
    assert lv.shape == (200, 200) and lv[100, 100] == 0 and lv[60, 100] == 1 and lv[0, 0] == 2
    assert np.bincount(lv.ravel()).tolist() == [50 * 50, 100 * 100 - 50 * 50, 200 * 200 - 100 * 100]
    with pytest.raises(ValueError, match=r"multiple of 0.8 m in \(0, 80\]"):
        OCC3D.check_ranges((20.0, 90.0))


def _occ3d_frame(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random (pred, gt, invalid) frame on the Occ3D grid: 20 classes, 255 = ignore in the ground truth."""
    rng = np.random.default_rng(seed)
    shape = (200, 200, 16)
    gt = rng.integers(0, 20, shape).astype(np.uint8)
    u = rng.random(shape)
    gt[u < 0.5] = 0
    gt[u > 0.85] = 255
    pred = rng.integers(0, 20, shape).astype(np.uint8)
    pred[rng.random(shape) < 0.6] = 0
    return pred, gt, rng.random(shape) < 0.2


def _occ3d_brute_force(pred, gt, inv, r: float, dist_lo: float = 0.0, dist_hi: float = np.inf) -> np.ndarray:
    """(C, C) confusion (rows = prediction) of the voxels whose column centre lies in the square of side ``r``
    around the ego vehicle (and at a horizontal distance in [dist_lo, dist_hi)), from the grid's numbers only:
    centre of index i is -40 + 0.4 (i + 0.5) m."""
    c = -40.0 + 0.4 * (np.arange(200) + 0.5)
    xc, yc = c[:, None], c[None, :]
    d = np.hypot(xc, yc)
    col = (np.abs(xc) < r / 2) & (np.abs(yc) < r / 2) & (d >= dist_lo) & (d < dist_hi)
    sel = col[:, :, None] & (gt != 255) & ~inv
    cm = np.zeros((20, 20), np.int64)
    np.add.at(cm, (pred[sel].astype(int), gt[sel].astype(int)), 1)
    return cm


@pytest.mark.parametrize("compiled", [True, False])
def test_occ3d_cell_layout_of_the_ssc_metric(compiled):
    """The SSC metric's per-column cells (range level x distance bin) come from the grid alone, and a frame is
    counted in the cells of its columns."""
    lay = Layout(OCC3D.ranges, 1.6, OCC3D)
    assert lay.code.size == 200 * 200 and lay.n_levels == 3
    assert lay.columns_per_cell.sum() == 200 * 200
    # distance bins measured from the ego vehicle at the grid's centre: the corner column is ~56 m away
    assert lay.n_bins == int(np.hypot(39.8, 39.8) // 1.6) + 1
    kitti = Layout(KITTI.ranges, 1.6)
    assert kitti.n_levels == 3 and kitti.code.size == 256 * 256
    p = dataclasses.replace(PROTOCOLS["semantickitti-ssc"], grid=OCC3D, ranges=OCC3D.ranges)
    m = SSCMetric(p)
    m.use_compiled = compiled  # the compiled kernel (columns of 16 voxels) and the numpy one
    pred, gt, inv = _occ3d_frame(5)
    m.update_frame(pred, FrameArrays(gt, inv))
    curve = m.distance_curve(40.0)
    edges = curve["bin_edges_m"]
    for k in (0, 3, 12):
        cm = _occ3d_brute_force(pred, gt, inv, 40.0, edges[k], edges[k + 1])
        assert curve["n_evaluated"][k] == cm.sum() > 0
        tp = np.diag(cm)
        assert curve["miou"][k] == pytest.approx((tp / (cm.sum(0) + cm.sum(1) - tp + 1e-15))[1:].mean(), rel=1e-14)


@pytest.mark.parametrize("compiled", [True, False])
def test_a_protocol_carries_its_grid_and_checks_ranges_against_it(compiled):
    p = dataclasses.replace(PROTOCOLS["semantickitti-ssc"], grid=OCC3D, ranges=OCC3D.ranges)
    assert p.range_keys == OCC3D.range_keys
    assert "grid" not in p.header()  # results headers stay as they were
    # the crops in words, from the grid: the ego vehicle at column (100, 100), crops of r / 0.4 columns across
    assert p.header()["range_definition"] == (
        "box crop: voxel (i, j, k) is within range r iff |i - 100| < r/0.8 (i in [100 - r/0.8, 100 + r/0.8)) and "
        "|j - 100| < r/0.8 (j in [100 - r/0.8, 100 + r/0.8)), all k"
    )
    assert PROTOCOLS["semantickitti-ssc"].header()["range_definition"] == (
        "box crop: voxel (i, j, k) is within range r iff i < r/0.2 and |j - 128| < r/0.4 "
        "(j in [128 - r/0.4, 128 + r/0.4)), all k"
    )
    with pytest.raises(ValueError, match="multiple of 0.4 m"):
        dataclasses.replace(PROTOCOLS["semantickitti-ssc"], ranges=(12.8, 60.0))
    m = SSCMetric(p)
    m.use_compiled = compiled
    assert m.layout.grid == OCC3D and m.ranges == OCC3D.ranges
    frames = [_occ3d_frame(1), _occ3d_frame(2), _occ3d_frame(3)]
    m.update_frame(frames[0][0], FrameArrays(frames[0][1], frames[0][2]))  # one flag per voxel
    m.update_frame(frames[1][0], FrameArrays(frames[1][1], np.packbits(frames[1][2].reshape(-1))))  # bit-packed
    lm = load_label_map(p.label_map)  # raw label ids, mapped by the protocol's label map inside the metric
    pred, gt, inv = frames[2]
    raw_gt = lm.inv_lut[np.where(gt == 255, 0, gt)].astype(np.uint16)
    raw_gt[gt == 255] = 52  # a raw id the label map sends to ignore
    m.update_frame(lm.inv_lut[pred].astype(np.uint16), FrameArrays(raw_gt, inv, labels="raw"))
    with pytest.raises(FormatError, match=r"a grid \(200, 200, 16\)"):  # KITTI's grid is not this protocol's
        m.update_frame(np.zeros((256, 256, 32), np.uint8), FrameArrays(np.zeros((256, 256, 32), np.uint8)))
    assert m.n_frames == 3
    res = m.compute()
    for r in OCC3D.ranges:
        cm = sum(_occ3d_brute_force(*f, r) for f in frames)
        np.testing.assert_array_equal(m.confusion(r), cm)
        tp = np.diag(cm)
        iou_c = tp / (cm.sum(0) + cm.sum(1) - tp + 1e-15)
        occ_tp = cm[1:, 1:].sum()
        assert res[f"{r:.1f}"]["miou"] == pytest.approx(iou_c[1:].mean(), rel=1e-14)
        assert res[f"{r:.1f}"]["iou"] == pytest.approx(occ_tp / (cm.sum() - cm[0, 0]), rel=1e-14)
        assert res[f"{r:.1f}"]["n_evaluated"] == cm.sum()

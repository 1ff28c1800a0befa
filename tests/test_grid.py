"""One Grid: the KITTI grid's numbers in one place, and another grid described without touching other modules."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from occbench.grid import KITTI, Grid
from occbench.metrics import PROTOCOLS
from occbench.metrics.ssc import Layout, SSCMetric

# Occ3D-nuScenes: 200 x 200 x 16 voxels of 0.4 m around the ego vehicle, x, y in [-40, 40), z in [-1, 5.4)
OCC3D = Grid(name="occ3d", shape=(200, 200, 16), voxel_size=0.4, origin=(-40.0, -40.0, -1.0),
             ranges=(20.0, 40.0, 80.0), crop="around")


def test_kitti_grid_is_the_one_every_module_uses():
    from occbench import geometry
    from occbench.io import voxels

    assert geometry.GRID_SHAPE == voxels.GRID_SHAPE == KITTI.shape == (256, 256, 32)
    assert voxels.NUM_VOXELS == KITTI.num_voxels == 256 * 256 * 32
    assert geometry.VOXEL_SIZE == KITTI.voxel_size and tuple(geometry.ORIGIN) == KITTI.origin
    assert all(p.grid == KITTI and p.range_keys == KITTI.range_keys for p in PROTOCOLS.values())


def test_occ3d_range_crops_are_centred_on_the_ego_vehicle():
    assert OCC3D.range_keys == ("20.0", "40.0", "80.0") and OCC3D.full_range_key == "80.0"
    assert OCC3D.range_slices(20.0) == (slice(75, 125), slice(75, 125))
    assert OCC3D.range_slices(80.0) == (slice(0, 200), slice(0, 200))
    lv = OCC3D.range_levels()
    assert lv.shape == (200, 200) and lv[100, 100] == 0 and lv[60, 100] == 1 and lv[0, 0] == 2
    assert np.bincount(lv.ravel()).tolist() == [50 * 50, 100 * 100 - 50 * 50, 200 * 200 - 100 * 100]
    with pytest.raises(ValueError, match=r"multiple of 0.8 m in \(0, 80\]"):
        OCC3D.check_ranges((20.0, 90.0))


def test_occ3d_cell_layout_of_the_ssc_metric():
    """The SSC metric's per-column cells (range level x distance bin) come from the grid alone."""
    lay = Layout(OCC3D.ranges, 1.6, OCC3D)
    assert lay.code.size == 200 * 200 and lay.n_levels == 3
    assert lay.columns_per_cell.sum() == 200 * 200
    # distance bins measured from the ego vehicle at the grid's centre: the corner column is ~56 m away
    assert lay.n_bins == int(np.hypot(39.8, 39.8) // 1.6) + 1
    kitti = Layout(KITTI.ranges, 1.6)
    assert kitti.n_levels == 3 and kitti.code.size == 256 * 256


def test_a_protocol_carries_its_grid_and_checks_ranges_against_it():
    p = dataclasses.replace(PROTOCOLS["semantickitti-ssc"], grid=OCC3D, ranges=OCC3D.ranges)
    assert p.range_keys == OCC3D.range_keys
    assert "grid" not in p.header()  # results headers stay as they were
    with pytest.raises(ValueError, match="multiple of 0.4 m"):
        dataclasses.replace(PROTOCOLS["semantickitti-ssc"], ranges=(12.8, 60.0))
    m = SSCMetric(p)
    assert m.layout.grid == OCC3D and m.ranges == OCC3D.ranges

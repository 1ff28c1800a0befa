"""Column centres (x, y in the scan's LiDAR frame) of the generator's big volume and of the SSC grid."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from occbench.geometry import ORIGIN, VOXEL_SIZE
from occbench.grid import KITTI

BIG = ((-60.0, 60.0), (-60.0, 60.0))  # the big volume around the scan (x, y extents, metres)
BIG_N = 600  # its columns per side, of VOXEL_SIZE


@lru_cache(maxsize=1)
def columns() -> dict[str, np.ndarray]:
    """Flat column centres: ``U``, ``V`` of the big volume, ``GU``, ``GV`` of the SSC grid (C order)."""
    c = BIG[0][0] + VOXEL_SIZE * (np.arange(BIG_N) + 0.5)
    U, V = np.meshgrid(c, c, indexing="ij")
    gx = ORIGIN[0] + VOXEL_SIZE * (np.arange(KITTI.shape[0]) + 0.5)
    gy = ORIGIN[1] + VOXEL_SIZE * (np.arange(KITTI.shape[1]) + 0.5)
    GU, GV = np.meshgrid(gx, gy, indexing="ij")
    return {"U": U.ravel(), "V": V.ravel(), "GU": GU.ravel(), "GV": GV.ravel()}

"""Synthetic world-frame scenes seen from real poses, for tests and benchmarks of voting.

A deterministic procedural scene is defined in the world frame (the LiDAR frame of scan 0): a
0.4 m ground slab (road / sidewalk checkerboard), 1.6 m blocks of objects and 0.2 m poles. Scan
``s`` sees it by labelling its voxel centres ``T_s @ c``. ``noisy`` simulates an onboard model whose
errors grow with range (occupied voxels dropped or relabelled, phantom voxels added).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from occbench.geometry import grid_centres
from occbench.grid import KITTI

_OBJ_CLASSES = np.array([1, 13, 15, 14, 4, 17, 16], np.uint8)


def _hash01(cells: np.ndarray, seed: int) -> np.ndarray:
    """Uniform [0, 1) hash of integer cells (N, 3)."""
    c = cells.astype(np.uint64)
    h = (
        (c[:, 0] * np.uint64(0x9E3779B97F4A7C15))
        ^ (c[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F))
        ^ (c[:, 2] * np.uint64(0x165667B19E3779F9))
    )
    h ^= np.uint64(seed) * np.uint64(0x27D4EB2F165667C5)
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def scene_labels(points_world: np.ndarray, seed: int = 0) -> np.ndarray:
    """Train ids (N,) uint8 of world points (N, 3)."""
    p = np.asarray(points_world, np.float64)
    out = np.zeros(len(p), np.uint8)
    ground = (p[:, 2] >= -2.0) & (p[:, 2] < -1.6)
    checker = (np.floor(p[:, 0] / 6.0) + np.floor(p[:, 1] / 6.0)).astype(np.int64) % 2
    out[ground] = np.where(checker[ground] == 0, 9, 11)
    above = (p[:, 2] >= -1.6) & (p[:, 2] < 2.4)
    blk = np.floor(p / 1.6).astype(np.int64)
    r = _hash01(blk, seed)
    solid = above & (r < 0.05)
    out[solid] = _OBJ_CLASSES[(r[solid] * 1e6).astype(np.int64) % len(_OBJ_CLASSES)]
    pole_cells = np.floor(p[:, :2] / 0.4).astype(np.int64)
    pr = _hash01(np.c_[pole_cells, np.zeros(len(p), np.int64)], seed + 1)
    pole = above & (p[:, 2] < 3.0) & (pr < 0.004) & (out == 0)
    out[pole] = 18
    return out


@dataclass
class SyntheticSequence:
    """Ground truth and noisy predictions of a synthetic scene seen from ``poses`` (LiDAR, (N,4,4))."""

    poses: np.ndarray
    seed: int = 0
    noise_near: float = 0.05
    noise_far: float = 0.5
    phantom: float = 0.01
    shape: tuple[int, int, int] = KITTI.shape

    def __post_init__(self) -> None:
        self._rel = np.linalg.inv(self.poses[0]) @ np.asarray(self.poses, np.float64)
        self._c = grid_centres(self.shape).reshape(-1, 3)
        self._range = np.linalg.norm(self._c[:, :2], axis=1)

    def __len__(self) -> int:
        return len(self.poses)

    def gt(self, s: int) -> np.ndarray:
        T = self._rel[s]
        return scene_labels(self._c @ T[:3, :3].T + T[:3, 3], self.seed).reshape(self.shape)

    def noisy(self, s: int) -> np.ndarray:
        """Onboard-like prediction: per-voxel error probability grows linearly with range."""
        g = self.gt(s).reshape(-1).copy()
        rng = np.random.default_rng((self.seed, s))
        p_err = self.noise_near + (self.noise_far - self.noise_near) * np.clip(self._range / 51.2, 0, 1)
        u = rng.random(g.size)
        occ = g > 0
        drop = occ & (u < p_err * 0.5)
        relabel = occ & (u >= p_err * 0.5) & (u < p_err)
        g[relabel] = rng.integers(1, 20, int(relabel.sum()), dtype=np.uint8)
        g[drop] = 0
        ph = (~occ) & (u < self.phantom * p_err / self.noise_far)
        g[ph] = rng.integers(1, 20, int(ph.sum()), dtype=np.uint8)
        return g.reshape(self.shape)

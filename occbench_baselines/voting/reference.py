"""Reference vanilla / sensor-aware registration (eqs. 7-9, 11-12): one target at a time, per source voxel.

Cost O(window x voxels) per target; meant for tests and as the definition the engines are held to (the exact
engine label for label; the lattice engine within a measured bound). The arithmetic of a voxel's destination
cell is fixed in :mod:`occbench.registration`; votes are integer multiples of the weight quantum, so their
sums are exact and do not depend on the order of accumulation; ties go to the lowest train id (``decide_labels``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from occbench.io.kitti import Calibration
from occbench.registration import affine, cells, inside, pair_transform

from .config import VotingConfig, VotingConfigError, grid_dims, posed_scans, posed_window
from .weights import decide_labels, weight_grids

FrameSource = Callable[[int], np.ndarray]


def window(target: int, n: int, num_frames: int) -> range:
    """Source scans voting for ``target``: ``max(0, t-n) .. min(N-1, t+n)``."""
    if not 0 <= target < num_frames:
        raise VotingConfigError(f"target frame {target} outside the sequence (0..{num_frames - 1})")
    return range(max(0, target - n), min(num_frames - 1, target + n) + 1)


def check_frame(grid: np.ndarray, index: int, cfg: VotingConfig) -> np.ndarray:
    g = np.asarray(grid)
    if g.shape != tuple(cfg.grid_shape):
        raise VotingConfigError(f"frame {index}: grid shape {g.shape}, expected {tuple(cfg.grid_shape)}")
    if g.dtype != np.uint8:
        raise VotingConfigError(f"frame {index}: dtype {g.dtype}, expected uint8 train ids")
    if g.size and int(g.max()) >= cfg.num_classes:
        raise VotingConfigError(f"frame {index}: train id {int(g.max())} >= num_classes={cfg.num_classes}")
    return g


def vote_frame_reference(
    target: int,
    frames: FrameSource,
    poses_lidar: np.ndarray,
    calib: Calibration | None,
    cfg: VotingConfig,
    *,
    return_votes: bool = False,
    pose_valid: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Refined train-id grid of scan ``target``.

    Every voting voxel ``(i, j, k)`` of every source scan ``s`` in the window (all voxels when empty
    votes, occupied ones otherwise) is devoxelised to its centre (eq. 7), moved with
    ``inv(T_target) @ T_s`` (eq. 8), voxelised with the floor rule (arithmetic fixed in
    :mod:`occbench.registration`) and adds its integer weight to its class (eq. 9); the decision
    rule is ``cfg.empty_policy``. With ``return_votes`` the (X, Y, Z, C) int64 vote tensor is returned too.
    ``pose_valid`` (None: all): scans without a pose are left out of the window; the target must have one.
    """
    poses, valid = posed_scans(np.asarray(poses_lidar, np.float64), pose_valid)
    shape = grid_dims(cfg)
    C = cfg.num_classes
    nvox = int(np.prod(shape))
    w_occ, w_emp = weight_grids(cfg, calib)
    votes: np.ndarray = np.zeros(nvox * C, np.int64)
    keys: list[np.ndarray] = []
    wts: list[np.ndarray] = []

    def flush() -> None:
        # integer weights summed in float64 are exact below 2**53
        if keys:
            votes[:] += np.rint(
                np.bincount(np.concatenate(keys), weights=np.concatenate(wts), minlength=nvox * C)
            ).astype(np.int64)
            keys.clear()
            wts.clear()

    for s in posed_window(window(target, cfg.n, len(poses)), valid, target):
        grid = check_frame(frames(s), s, cfg)
        mask = np.ones(shape, bool) if cfg.empty_votes else grid > 0
        idx = np.argwhere(mask)
        cls = grid[mask].astype(np.int64)
        w = np.where(cls > 0, w_occ[mask], w_emp[mask])
        tidx = cells(*affine(pair_transform(poses, s, target), shape), idx)
        ok = inside(tidx, shape)
        keys.append(np.ravel_multi_index(tidx[ok].T, shape) * C + cls[ok])
        wts.append(w[ok].astype(np.float64))
        if len(keys) == 8:
            flush()
    flush()
    votes = votes.reshape(nvox, C)
    labels = decide_labels(votes, cfg.empty_policy).reshape(shape)
    if return_votes:
        return labels, votes.reshape(*shape, C)
    return labels

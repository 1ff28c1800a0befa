"""Choosing a voting engine: ``exact`` (default), ``lattice`` (approximate, fast) or ``reference`` (slow definition).

All three share one interface: ``vote(t, empty_policy=None) -> (X, Y, Z) uint8``, ``votes(t) -> (V, C) torch
tensor`` (column 0: empty votes) and ``run(targets)``. ``exact`` and ``reference`` give identical labels and votes
(tested on real poses); ``lattice`` reads a world-lattice vote map and differs from them on rotated poses
(``docs/baselines/voting.md``). Method options: ``-O engine=exact|lattice|reference``, ``-O device=...``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from occbench.io.kitti import Calibration

from .config import VotingConfig, VotingConfigError, posed_scans, run_targets
from .exact import VotingEngine, check_policy
from .lattice import LatticeVotingEngine
from .reference import FrameSource, vote_frame_reference
from .weights import decide_labels

ENGINES: tuple[str, ...] = ("exact", "lattice", "reference")
EXACT_ENGINES: tuple[str, ...] = ("exact", "reference")


class ReferenceVotingEngine:
    """:func:`vote_frame_reference` behind the engine interface (``-O engine=reference``; ~100x slower)."""

    exact = True
    reads_frames_once = False  # every target reads its whole window

    def __init__(
        self,
        frames: FrameSource,
        poses_lidar: np.ndarray,
        calib: Calibration | None,
        cfg: VotingConfig,
        device: str | torch.device | None = None,
        backend: str = "auto",
        pose_valid: np.ndarray | None = None,
    ) -> None:
        self.frames, self.calib, self.cfg = frames, calib, cfg
        self.poses, self.pose_valid = posed_scans(np.asarray(poses_lidar, np.float64), pose_valid)
        self.device = torch.device("cpu")
        self.backend = "numpy"
        self._held: tuple[int, np.ndarray] | None = None

    def _votes(self, target: int) -> np.ndarray:
        if self._held is None or self._held[0] != target:
            _, v = vote_frame_reference(
                target, self.frames, self.poses, self.calib, self.cfg, return_votes=True, pose_valid=self.pose_valid
            )
            self._held = (target, v.reshape(-1, self.cfg.num_classes))
        return self._held[1]

    def vote(self, target: int, empty_policy: str | None = None) -> np.ndarray:
        policy = self.cfg.empty_policy if empty_policy is None else empty_policy
        check_policy(policy, self.cfg.empty_votes)
        return decide_labels(self._votes(target), policy).reshape(self.cfg.grid_shape)

    def votes(self, target: int) -> torch.Tensor:
        return torch.from_numpy(self._votes(target).copy())

    def run(self, targets: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        return run_targets(self.vote, targets)


def make_engine(
    engine: str,
    frames: FrameSource,
    poses_lidar: np.ndarray,
    calib: Calibration | None,
    cfg: VotingConfig,
    device: str | torch.device | None = None,
    backend: str = "auto",
    pose_valid: np.ndarray | None = None,
):
    """The voting engine named ``engine`` (``ENGINES``) over one sequence (``pose_valid``: which scans have a pose;
    None: all; the others are left out of every window)."""
    classes = {"exact": VotingEngine, "lattice": LatticeVotingEngine, "reference": ReferenceVotingEngine}
    if engine not in classes:
        raise VotingConfigError(f"engine must be one of {ENGINES}, got {engine!r}")
    return classes[engine](frames, poses_lidar, calib, cfg, device=device, backend=backend, pose_valid=pose_valid)

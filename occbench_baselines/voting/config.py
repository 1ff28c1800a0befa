"""Configuration of region-centric voting (OccFiner §3.3, eqs. 7-12; Average Fusion)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal, TypeGuard

import numpy as np

from occbench.errors import OccbenchError
from occbench.grid import KITTI

SensorKind = Literal["none", "camera", "lidar"]
EmptyPolicy = Literal["vote", "occupancy", "ignore"]

SENSOR_KINDS: tuple[str, ...] = ("none", "camera", "lidar")
EMPTY_POLICIES: tuple[str, ...] = ("vote", "occupancy", "ignore")


class VotingConfigError(OccbenchError, ValueError):
    """An invalid voting configuration."""


def is_empty_policy(value: object) -> TypeGuard[EmptyPolicy]:
    """Whether ``value`` is one of ``EMPTY_POLICIES``."""
    return value in EMPTY_POLICIES


def grid_dims(cfg: VotingConfig) -> tuple[int, int, int]:
    """``cfg.grid_shape`` as three ints."""
    x, y, z = cfg.grid_shape
    return int(x), int(y), int(z)


def is_sensor_kind(value: object) -> TypeGuard[SensorKind]:
    """Whether ``value`` is one of ``SENSOR_KINDS``."""
    return value in SENSOR_KINDS


def sensor_kind_of(value: object) -> SensorKind:
    """``value`` as a :data:`SensorKind`; :class:`VotingConfigError` when it is not one of ``SENSOR_KINDS``."""
    if is_sensor_kind(value):
        return value
    raise VotingConfigError(f"SensorWeights.kind must be one of {SENSOR_KINDS}, got {value!r}")


def run_targets(vote: Callable[[int], np.ndarray], targets: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """``(target, vote(target))`` for sorted, distinct ``targets`` (every engine's ``run``)."""
    prev = -1
    for t in targets:
        t = int(t)
        if t <= prev:
            raise VotingConfigError(f"targets must be sorted and distinct; got {t} after {prev}")
        prev = t
        yield t, vote(t)


@dataclass(frozen=True)
class SensorWeights:
    """Per-source-voxel voting weights (eqs. 10-12), computed in the source scan's own LiDAR frame.

    ``kind="none"``: every voxel weighs 1 (vanilla registration, Average Fusion).
    ``kind="camera"`` (eqs. 10-11): ``w_high`` inside the camera frustum and inside box B,
    ``w_med`` inside the frustum and outside B, ``w_low`` outside the frustum. The frustum is the
    set of voxel centres with depth > 0 that project (K of P2, ``Calibration.T_cam2_velo``) into
    ``[0, W) x [0, H)`` with ``image_size = (W, H)`` (MonoScene ``vox2pix``). Box B is
    ``x in [0, bx)``, ``y in [-by/2, by/2)``, ``z in [z0, z0 + bz)`` of the LiDAR frame with
    ``box = (bx, by, bz)`` and ``z0`` the grid floor (-2 m): the default is the 25.6 m range crop.
    ``kind="lidar"`` (eq. 12): ``w_max - (w_max - w_min) * min(r / max_range, 1)`` with ``r`` the
    3-D distance of the voxel centre from the LiDAR origin.
    Defaults are the paper's appendix D.2 values (``max_range``: not given there; 51.2 m, the benchmark's
    range, is the ``paper`` preset's value; the methods' ``occbench`` preset uses 25.6 m, selected on
    occbench-mini train).
    """

    kind: SensorKind = "none"
    w_high: float = 1.0
    w_med: float = 0.1
    w_low: float = 0.01
    box: tuple[float, float, float] = (25.6, 25.6, 6.4)
    image_size: tuple[int, int] = (1220, 370)
    w_max: float = 10.0
    w_min: float = 0.1
    max_range: float = 51.2

    def __post_init__(self) -> None:
        sensor_kind_of(self.kind)
        # any sequence given (a list from JSON, a sequence's image size) is held as a tuple
        object.__setattr__(self, "box", tuple(self.box))
        object.__setattr__(self, "image_size", tuple(self.image_size))
        for name in ("w_high", "w_med", "w_low", "w_max", "w_min"):
            v = getattr(self, name)
            if not (v >= 0 and v < float("inf")):
                raise VotingConfigError(f"SensorWeights.{name} must be a finite weight >= 0, got {v!r}")
        if len(self.box) != 3 or any(not (b > 0) for b in self.box):
            raise VotingConfigError(f"SensorWeights.box must be 3 positive lengths (m), got {self.box!r}")
        if len(self.image_size) != 2 or any(int(s) <= 0 for s in self.image_size):
            raise VotingConfigError(f"SensorWeights.image_size must be (W, H) > 0, got {self.image_size!r}")
        if not (self.max_range > 0):
            raise VotingConfigError(f"SensorWeights.max_range must be > 0, got {self.max_range!r}")


@dataclass(frozen=True)
class VotingConfig:
    """Window, empty-class policy and weights of the vote.

    ``n``: window radius; target ``t`` is voted by the predictions of scans
    ``max(0, t-n) .. min(N-1, t+n)`` (clipped at sequence ends; the target always votes for itself).

    ``empty_policy`` (how class 0 takes part; the paper leaves it open):

    * ``"vote"``: empty is a class like the others; label = argmax over all classes (eq. 9 read
      literally: every voxel of every source, empty ones included, is a point of P_cur).
    * ``"occupancy"`` (default of the methods' ``occbench`` preset, selected on occbench-mini train; protocol
      and numbers in docs/baselines/voting.md): geometry first. A voxel is occupied iff the summed weight of
      occupied votes
      exceeds the empty votes (times ``empty_weight``); an occupied voxel takes the argmax over
      the occupied classes. Differs from ``"vote"`` when occupied votes are split between classes.
    * ``"ignore"``: only occupied voxels vote; a voxel is occupied iff it received any occupied
      vote (union of the window's geometry).

    ``empty_weight`` scales the weight of empty votes (``"vote"``/``"occupancy"``).
    Ties go to the lowest train id (empty first). Weights are quantised to integer multiples of
    ``weight_quantum`` so vote sums are exact and independent of summation order (the reference and the exact
    engine accumulate in different orders and agree bit for bit).
    """

    n: int = 25
    empty_policy: EmptyPolicy = "occupancy"
    weights: SensorWeights = field(default_factory=SensorWeights)
    num_classes: int = 20
    empty_weight: float = 1.0
    weight_quantum: float = 1e-3
    grid_shape: tuple[int, int, int] = KITTI.shape

    def __post_init__(self) -> None:
        if int(self.n) != self.n or self.n < 0:
            raise VotingConfigError(f"VotingConfig.n must be an integer >= 0, got {self.n!r}")
        if self.empty_policy not in EMPTY_POLICIES:
            raise VotingConfigError(
                f"VotingConfig.empty_policy must be one of {EMPTY_POLICIES}, got {self.empty_policy!r}"
            )
        if not isinstance(self.weights, SensorWeights):
            raise VotingConfigError(f"VotingConfig.weights must be a SensorWeights, got {type(self.weights).__name__}")
        if not (2 <= self.num_classes <= 256):
            raise VotingConfigError(f"VotingConfig.num_classes must be in 2..256, got {self.num_classes!r}")
        if not (self.empty_weight >= 0 and self.empty_weight < float("inf")):
            raise VotingConfigError(f"VotingConfig.empty_weight must be finite and >= 0, got {self.empty_weight!r}")
        if not (0 < self.weight_quantum <= 1):
            raise VotingConfigError(f"VotingConfig.weight_quantum must be in (0, 1], got {self.weight_quantum!r}")
        if len(self.grid_shape) != 3 or any(int(s) <= 0 for s in self.grid_shape):
            raise VotingConfigError(f"VotingConfig.grid_shape must be 3 positive sizes, got {self.grid_shape!r}")

    @property
    def empty_votes(self) -> bool:
        """Whether empty source voxels cast votes (decides which source voxels are registered)."""
        return self.empty_policy != "ignore" and self.empty_weight > 0


def check_poses(poses_lidar) -> np.ndarray:
    """``poses_lidar`` as float64 ``(N, 4, 4)`` with N >= 1, else a :class:`VotingConfigError`."""
    poses = np.asarray(poses_lidar, np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or len(poses) == 0:
        raise VotingConfigError(f"poses_lidar must be (N, 4, 4) with N >= 1, got {poses.shape}")
    return poses


def posed_scans(poses: np.ndarray, pose_valid=None) -> tuple[np.ndarray, np.ndarray]:
    """The pose-valid rule of every engine: ``(poses, valid)`` where ``valid`` (N,) bool says which scans have a pose
    (``pose_valid``; None: all) and the rows of the others are replaced by the identity, so that no arithmetic ever
    sees them. A scan without a pose is left out of every window; a target without one is an error
    (:func:`posed_window`). A scan marked valid must have a finite pose."""
    N = len(poses)
    valid = np.ones(N, bool) if pose_valid is None else np.asarray(pose_valid, bool)
    if valid.shape != (N,):
        raise VotingConfigError(f"pose_valid must be ({N},) bools, got shape {valid.shape}")
    finite = np.isfinite(poses).all(axis=(1, 2))
    if (valid & ~finite).any():
        s = int(np.flatnonzero(valid & ~finite)[0])
        raise VotingConfigError(f"the pose of scan {s} is not finite but the scan is marked as having a pose")
    if valid.all():
        return poses, valid
    out = poses.copy()
    out[~valid] = np.eye(4)
    return out, valid


def posed_window(window: range, valid: np.ndarray, target: int) -> list[int]:
    """The scans of ``window`` that have a pose; ``target`` must have one."""
    if not valid[target]:
        raise VotingConfigError(f"target scan {target} has no pose: it cannot be registered with the scans around it")
    return [s for s in window if valid[s]]

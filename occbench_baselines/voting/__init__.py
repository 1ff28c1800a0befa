"""Region-centric global propagation (OccFiner §3.3): vanilla registration and sensor-aware voting.

``vote_frame_reference`` is the per-voxel definition (eqs. 7-9, arithmetic fixed in ``occbench.registration``);
``VotingEngine`` is the exact engine (the default: the reference's labels at engine speed; numba on CPU, torch
on CUDA); ``LatticeVotingEngine`` is a faster approximation; ``make_engine(name, ...)`` picks one of
``ENGINES``. See ``docs/baselines/voting.md``.
"""

from .config import (
    EMPTY_POLICIES,
    SENSOR_KINDS,
    EmptyPolicy,
    SensorKind,
    SensorWeights,
    VotingConfig,
    VotingConfigError,
)
from .engines import ENGINES, EXACT_ENGINES, ReferenceVotingEngine, make_engine
from .exact import VotingEngine, decide_labels_torch, default_device
from .lattice import LatticeVotingEngine
from .reference import vote_frame_reference, window
from .weights import box_mask, camera_weights, decide_labels, frustum_mask, lidar_weights, sensor_weights, weight_grids

__all__ = [
    "EMPTY_POLICIES",
    "SENSOR_KINDS",
    "EmptyPolicy",
    "SensorKind",
    "SensorWeights",
    "VotingConfig",
    "VotingConfigError",
    "ENGINES",
    "EXACT_ENGINES",
    "ReferenceVotingEngine",
    "make_engine",
    "VotingEngine",
    "LatticeVotingEngine",
    "decide_labels_torch",
    "default_device",
    "vote_frame_reference",
    "window",
    "box_mask",
    "camera_weights",
    "decide_labels",
    "frustum_mask",
    "lidar_weights",
    "sensor_weights",
    "weight_grids",
]

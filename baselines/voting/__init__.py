"""Region-centric global propagation (OccFiner §3.3): vanilla registration and sensor-aware voting.

``vote_frame_reference`` is the simple per-voxel definition (tests); ``VotingEngine`` is the fast
sliding-window implementation (torch; CUDA when available). See ``docs/baselines/voting.md``.
"""
from .config import EMPTY_POLICIES, SENSOR_KINDS, EmptyPolicy, SensorKind, SensorWeights, VotingConfig, VotingConfigError
from .engine import VotingEngine, decide_labels_torch, default_device
from .reference import vote_frame_reference, window
from .weights import box_mask, camera_weights, decide_labels, frustum_mask, lidar_weights, sensor_weights, weight_grids

__all__ = [
    "EMPTY_POLICIES", "SENSOR_KINDS", "EmptyPolicy", "SensorKind", "SensorWeights", "VotingConfig", "VotingConfigError",
    "VotingEngine", "decide_labels_torch", "default_device", "vote_frame_reference", "window",
    "box_mask", "camera_weights", "decide_labels", "frustum_mask", "lidar_weights", "sensor_weights", "weight_grids",
]

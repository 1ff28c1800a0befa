"""``occfiner-voting``: OccFiner stage 2 alone — registration with sensor-aware weights (eqs. 10-12)."""

from __future__ import annotations

from dataclasses import dataclass

from occbench.methods import OnboardSequence
from occbench_baselines.voting import SensorKind, SensorWeights, VotingConfig
from occbench_baselines.voting.config import is_sensor_kind, sensor_kind_of
from occbench_baselines.voting.method import VotingMethod
from occbench_baselines.voting.options import PRESET_VALUES, VotingOptions

_PAPER = SensorWeights()  # appendix D.2


@dataclass(frozen=True)
class OccFinerVotingOptions(VotingOptions):
    """``VotingOptions`` (preset, n, empty_policy, engine, device) plus the sensor weights (eqs. 10-12):
    ``sensor`` auto (the onboard model's modality), camera, lidar or none; camera ``w_high``, ``w_med``, ``w_low``,
    ``box``; LiDAR ``w_max``, ``w_min``, ``max_range`` (None: the preset's value; the paper does not give it)."""

    sensor: str = "auto"
    w_high: float = _PAPER.w_high
    w_med: float = _PAPER.w_med
    w_low: float = _PAPER.w_low
    box: tuple[float, float, float] = _PAPER.box
    w_max: float = _PAPER.w_max
    w_min: float = _PAPER.w_min
    max_range: float | None = None

    @property
    def lidar_max_range(self) -> float:
        """``max_range`` with the preset applied (the field is filled from the preset on construction)."""
        return float(PRESET_VALUES[self.preset]["max_range"] if self.max_range is None else self.max_range)


def sensor_kind(option: str, sequence: OnboardSequence) -> SensorKind:
    if option != "auto":
        return sensor_kind_of(option)
    if not is_sensor_kind(sequence.sensor) or sequence.sensor == "none":
        raise ValueError(
            f"sequence {sequence.name}: the onboard model's sensor is unknown; "
            f"pass --option sensor=camera or sensor=lidar"
        )
    return sequence.sensor


def voting_config(o: OccFinerVotingOptions, sequence: OnboardSequence) -> VotingConfig:
    w = SensorWeights(
        kind=sensor_kind(o.sensor, sequence),
        w_high=o.w_high,
        w_med=o.w_med,
        w_low=o.w_low,
        box=o.box,
        image_size=sequence.image_size,
        w_max=o.w_max,
        w_min=o.w_min,
        max_range=o.lidar_max_range,
    )
    s = o.settings
    return VotingConfig(n=s.n, empty_policy=s.empty_policy, weights=w, num_classes=sequence.label_map.num_classes)


class OccFinerVoting(VotingMethod):
    name = "occfiner-voting"
    worker_memory_gb = 1.5  # measured peak 1.04 GB, evaluate -j1 on tiny mini val (whole process)
    description = (
        "OccFiner stage 2: region-centric registration of 2n+1 scans with sensor-aware (frustum/box or range) weights."
    )
    Options = OccFinerVotingOptions
    options: OccFinerVotingOptions

    def voting_config(self, sequence: OnboardSequence) -> VotingConfig:
        return voting_config(self.options, sequence)

"""``average-fusion``: the paper's learning-free offboard baseline (vanilla registration, eqs. 7-9, no weights)."""

from __future__ import annotations

from dataclasses import dataclass

from occbench.methods import OnboardSequence
from occbench_baselines.voting import SensorWeights, VotingConfig
from occbench_baselines.voting.method import VotingMethod
from occbench_baselines.voting.options import VotingOptions


@dataclass(frozen=True)
class AverageFusionOptions(VotingOptions):
    """``VotingOptions``: preset, n (window radius), empty_policy, engine, device."""


class AverageFusion(VotingMethod):
    name = "average-fusion"
    worker_memory_gb = 1.5  # measured peak 1.04 GB, evaluate -j1 on tiny mini val (whole process)
    description = (
        "Vanilla registration of the onboard predictions of 2n+1 scans and an unweighted vote (paper's baseline)."
    )
    Options = AverageFusionOptions

    def voting_config(self, sequence: OnboardSequence) -> VotingConfig:
        s = self.options.settings
        return VotingConfig(
            n=s.n,
            empty_policy=s.empty_policy,
            weights=SensorWeights(kind="none"),
            num_classes=sequence.label_map.num_classes,
        )

"""``average-fusion``: the paper's learning-free offboard baseline (vanilla registration, eqs. 7-9, no weights)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from occbench.methods import OffboardMethod, OnboardSequence
from occbench_baselines.voting import SensorWeights, VotingConfig
from occbench_baselines.voting.options import RegistrationNote, VotingOptions, voting_engine
from occbench_baselines.voting.top2 import Top2, engine_top2


@dataclass(frozen=True)
class AverageFusionOptions(VotingOptions):
    """``VotingOptions``: preset, n (window radius), empty_policy, engine, device."""


class AverageFusion(RegistrationNote, OffboardMethod):
    name = "average-fusion"
    worker_memory_gb = 1.5  # measured peak 1.04 GB, evaluate -j1 on tiny mini val (whole process)
    description = (
        "Vanilla registration of the onboard predictions of 2n+1 scans and an unweighted vote (paper's baseline)."
    )
    Options = AverageFusionOptions

    def voting_config(self, sequence: OnboardSequence) -> VotingConfig:
        o = self.options
        return VotingConfig(
            n=o.n,
            empty_policy=o.empty_policy,
            weights=SensorWeights(kind="none"),  # type: ignore[arg-type]
            num_classes=sequence.label_map.num_classes,
        )

    def engine(self, sequence: OnboardSequence):
        """The voting engine the options name over ``sequence``."""
        return voting_engine(self.options, sequence, self.voting_config(sequence))

    def refine(self, sequence: OnboardSequence, targets: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        yield from self.engine(sequence).run(sorted(targets))

    def refine_top2(self, sequence: OnboardSequence, targets: Sequence[int]) -> Iterator[Top2]:
        """Scores for top-2 pseudo-labels: the decision of ``refine``, the best other class, their vote shares."""
        yield from engine_top2(self.engine(sequence), targets)

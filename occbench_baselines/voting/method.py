"""The base of the voting methods (``average-fusion``, ``occfiner-voting``) and the results-header note that every
method voting with an engine adds (``occfiner`` too)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from occbench.methods import OffboardMethod, OnboardSequence

from .config import VotingConfig
from .options import VotingOptions, registration_note, voting_engine
from .top2 import Top2, engine_top2


class RegistrationNote(OffboardMethod):
    """A method that votes with an engine: the results header says whether the registration is exact."""

    options: VotingOptions

    def config(self, onboard: str | None = None) -> dict[str, Any]:
        c = super().config(onboard=onboard)
        c["registration"] = registration_note(self.options.settings.engine)
        return c


class VotingMethod(RegistrationNote):
    """A method whose output is the vote of an engine over the sequence's onboard predictions: subclasses give the
    :class:`VotingConfig` (window, empty policy, weights) of a sequence."""

    @abstractmethod
    def voting_config(self, sequence: OnboardSequence) -> VotingConfig:
        """Window, empty policy and weights of the vote over ``sequence``."""

    def engine(self, sequence: OnboardSequence) -> Any:
        """The voting engine the options name over ``sequence``."""
        return voting_engine(self.options, sequence, self.voting_config(sequence))

    def refine(self, sequence: OnboardSequence, targets: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        yield from self.engine(sequence).run(sorted(targets))

    def refine_top2(self, sequence: OnboardSequence, targets: Sequence[int]) -> Iterator[Top2]:
        """Scores for top-2 pseudo-labels: the decision of ``refine``, the best other class, their vote shares."""
        yield from engine_top2(self.engine(sequence), targets)

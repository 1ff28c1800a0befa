"""``onboard``: the onboard predictions unchanged (the reference row of every leaderboard)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence as Seq

import numpy as np

from occbench.methods import OffboardMethod, OnboardSequence


class OnboardMethod(OffboardMethod):
    name = "onboard"
    description = "The onboard model's predictions, unchanged."

    def refine(self, sequence: OnboardSequence, targets: Seq[int]) -> Iterator[tuple[int, np.ndarray]]:
        for t in targets:
            yield t, sequence.prediction(t)

"""``onboard``: the onboard predictions unchanged (the reference row of every leaderboard)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from occbench.methods import OffboardMethod, OnboardSequence


class OnboardMethod(OffboardMethod):
    name = "onboard"
    worker_memory_gb = 1.0  # measured peak 0.79 GB, evaluate -j1 on tiny mini val (whole process)
    description = "The onboard model's predictions, unchanged."

    def refine(self, sequence: OnboardSequence, targets: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        for t in targets:
            yield t, sequence.prediction(t)

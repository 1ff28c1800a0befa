"""Where the grids of a picture come from: what already exists is read, a method is run only when asked.

- the ground truth and the onboard model's predictions of the dataset,
- folders of saved predictions (``<DIR>/sequences/XX/predictions/NNNNNN.label[.gz]``, raw ids: what
  ``occbench refine`` and ``occbench evaluate --save-predictions`` write, or a submission folder), each with a label,
- a method, run through the evaluation's jobs and workers (:mod:`occbench.evaluation`) into a predictions folder
  (kept with ``--save-predictions``, else temporary), then read like any folder: a picture from a method is the
  picture of the folder it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occbench.errors import FormatError, MissingDataError
from occbench.io.predictions import PredictionStore


@dataclass(frozen=True)
class PredictionSource:
    """A labelled column of a picture: ``store`` None means the dataset's onboard predictions."""

    label: str
    store: PredictionStore | None = None

    def read(self, sequence, scan: int) -> np.ndarray:
        """Train ids (256, 256, 32) of ``scan`` of ``sequence`` (a dataset
        :class:`~occbench.datasets.frame.ScanSequence`)."""
        if self.store is None:
            return sequence.prediction(scan)
        path = self.store.find(sequence.name, scan)
        if path is None:
            raise MissingDataError(
                self.store.path(sequence.name, scan),
                f"prediction of sequence {sequence.name} scan {scan:06d} for column {self.label!r}",
            )
        return sequence.label_map.to_train(self.store.read(sequence.name, scan), path)


def parse_prediction_folders(values: tuple[str, ...] | list[str]) -> list[PredictionSource]:
    """``NAME=DIR`` or ``DIR`` (labelled by the folder's name) -> sources; a folder without ``sequences/`` is an error
    naming it."""
    out = []
    for v in values:
        label, sep, folder = v.partition("=")
        if not sep:
            label, folder = Path(v).name or v, v
        p = Path(folder)
        if not (p / "sequences").is_dir():
            raise FormatError(
                p,
                "a folder of predictions holding sequences/XX/predictions/NNNNNN.label[.gz]",
                "no sequences/ folder" if p.is_dir() else "no such folder",
            )
        out.append(PredictionSource(label, PredictionStore(p)))
    return out


def run_method(
    dspec,
    mspec,
    sequence: str,
    targets: list[int],
    out: str | Path,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
) -> PredictionSource:
    """Refine ``targets`` of ``sequence`` with the method into ``out`` (resumable: scans already there are kept)
    through the evaluation's jobs (contiguous blocks, ``workers`` processes); returns the folder as a source."""
    import math

    from occbench.evaluation.refine import refine_jobs
    from occbench.evaluation.specs import Job

    targets = sorted(set(int(t) for t in targets))
    k = max(1, min(len(targets), 2 * workers if workers > 1 else 1))
    size = math.ceil(len(targets) / k)
    jobs = [Job(sequence, tuple(targets[i : i + size])) for i in range(0, len(targets), size)]
    refine_jobs(dspec, mspec, jobs, str(out), True, workers, executor, address)
    return PredictionSource(mspec.name, PredictionStore(out))

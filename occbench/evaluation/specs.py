r"""What a run is made of, as picklable data classes (they travel to worker processes and Ray tasks): the dataset
(:class:`DatasetSpec`), the method (:class:`MethodSpec`) or the :class:`Submission` that is scored, and the
:class:`Job`\ s the split is cut into, and what a scoring job is given and returns (:class:`JobRequest`,
:class:`JobResult`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from occbench.datasets import SSCDataset
    from occbench.evaluation.submission import ValidationReport
    from occbench.io.formats import ForeignFormat
    from occbench.io.predictions import PredictionStore
    from occbench.labels import LabelMap
    from occbench.methods import OffboardMethod


@dataclass(frozen=True)
class DatasetSpec:
    """A picklable recipe that reopens a dataset in a worker process."""

    name: str = "mini"
    root: str | None = None
    split: str = "val"
    onboard: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def open(self) -> SSCDataset:
        from occbench.datasets import open_dataset

        return open_dataset(self.name, self.root, split=self.split, onboard=self.onboard, **self.kwargs)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def load(self) -> OffboardMethod:
        from occbench.methods import load_method

        return load_method(self.name, **self.options)


@dataclass(frozen=True)
class Job:
    sequence: str
    targets: tuple[int, ...]


@dataclass(frozen=True)
class Submission:
    """A folder of predictions that answers one split of a dataset, scored as it is (``occbench evaluate
    --predictions``): ``folder`` holds ``sequences/XX/predictions/NNNNNN.label[.gz]`` (raw ids), or the files of
    another codebase in ``format`` (:class:`occbench.io.formats.ForeignFormat`; None: the submission format);
    ``dataset`` is the split it answers (its ``onboard`` plays no part).

    Check it before scoring, as a benchmark server does (:mod:`occbench.evaluation.submission`):
    :meth:`check_names` (names, kinds and sizes; nothing is opened), then either :meth:`check_contents`, or
    ``evaluate(submission=..., validate=True)``, which checks every file's content as it scores it. Results
    files name the method ``submitted-predictions`` and the folder as ``header.predictions`` (no onboard model:
    the folder may have any name).
    """

    folder: str
    dataset: DatasetSpec
    format: ForeignFormat | None = None

    def store(self, label_map: LabelMap) -> PredictionStore:
        """The folder's prediction store (its files read as raw ids of ``label_map``)."""
        from occbench.io.formats import open_prediction_store

        return open_prediction_store(Path(self.folder), self.format, label_map)

    def check_names(
        self, dataset: SSCDataset, targets: Mapping[str, Iterable[int]] | None = None
    ) -> tuple[ValidationReport, dict[tuple[str, int], Path]]:
        """:func:`occbench.evaluation.submission.check_submission_names` on the split ``dataset`` (opened from
        :attr:`dataset`): the report, and the files that passed, to read. ``targets`` (sequence -> scans): only
        these scans are expected (a partial run: :func:`occbench.evaluation.jobs.split_targets`)."""
        from occbench.evaluation.submission import check_submission_names

        return check_submission_names(dataset, self.store(dataset.label_map), targets)

    def check_contents(
        self, dataset: SSCDataset, report: ValidationReport, files: dict[tuple[str, int], Path]
    ) -> ValidationReport:
        """:func:`occbench.evaluation.submission.check_submission_contents`: each file of ``files`` read once."""
        from occbench.evaluation.submission import check_submission_contents

        return check_submission_contents(dataset, report, files, store=self.store(dataset.label_map))

    def reader(self) -> DatasetSpec:
        """The split opened with this folder as its predictions (``Frame.prediction_file`` names the submitted
        files): what the scoring jobs open. The loader reads ``<parent>/<folder name>`` as an onboard model's
        folder; the results header names the folder instead (:func:`occbench.evaluation.run.evaluate`)."""
        folder = Path(self.folder)
        kw = dict(self.dataset.kwargs, predictions_root=str(folder.parent))
        if self.format is not None and not self.format.is_submission:
            kw["predictions_format"] = self.format
        return DatasetSpec(self.dataset.name, self.dataset.root, self.dataset.split, folder.name, kw)


@dataclass(frozen=True)
class JobRequest:
    """What one scoring job is given (picklable: it travels to a worker process or a Ray task): the split
    (``dataset``), the ``method`` (None: the predictions the split is opened with are scored as they are), the
    ``job`` (a sequence and a block of its scans), where refined predictions are written (``save_predictions_dir``,
    ``.label.gz`` if ``save_compressed``), the ``metrics`` besides ssc, the folder where the world map state writes
    records beyond its memory bound (``spill_dir``; None: kept in memory, as on Ray), and whether each prediction's
    content is checked as it is read (``validate``)."""

    dataset: DatasetSpec
    method: MethodSpec | None
    job: Job
    metrics: tuple[str, ...] = ()
    save_predictions_dir: str | None = None
    save_compressed: bool = False
    spill_dir: str | None = None
    validate: bool = False


@dataclass(frozen=True)
class JobResult:
    """What one scoring job returns (picklable; merged by addition in a fixed order, so the numbers do not depend on
    the number of workers): the ``sequence`` and the number of ``frames`` it was given, the SSC metric state
    (``ssc``), the states of the other registry metrics by name (``metrics``), the world map state shared by the
    world-map metrics (``maps``; None without them) and, when predictions were validated, the ``problems`` found
    (a frame with a problem is not scored)."""

    sequence: str
    frames: int
    ssc: Any
    metrics: dict[str, Any] = field(default_factory=dict)
    maps: Any = None
    problems: tuple[str, ...] = ()

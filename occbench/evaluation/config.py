"""What one scoring run is asked to do (:class:`EvalConfig`), checked in one place: the only argument of
:func:`occbench.evaluation.run.evaluate`. Frozen and picklable, like the specs it holds
(:mod:`occbench.evaluation.specs`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from occbench.evaluation.executors import EXECUTORS
from occbench.evaluation.specs import DatasetSpec, MethodSpec, Submission

DEFAULT_METRICS = ("city", "consistency")  # besides ssc, which is always computed


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """A scoring run: what is scored, which metrics, where the jobs run, and what is recorded.

    What is scored (exactly one of):

    - ``dataset`` and ``method``: the method run on the split ``dataset``, refining the predictions of its
      ``onboard`` model; with ``method`` None, the predictions of ``dataset.onboard`` scored as they are;
    - ``submission``: a folder of predictions (:class:`~occbench.evaluation.specs.Submission`) scored as it is.

    ``metrics``: the metrics computed besides ``ssc`` (always computed): ``city``, ``consistency`` or names of the
    metric registry (:mod:`occbench.metrics.registry`). ``workers``: jobs run at once (a count; fewer are started
    when scoring files, where a worker would not pay for its start-up), on ``executor`` ``local`` (inline or worker
    processes) or ``ray`` (at ``address``; None: a local Ray). ``save_predictions_dir``: also write the refined
    predictions there (``.label.gz`` if ``save_compressed``; frames already there are read back: resume).
    ``max_frames``: score only the split's first ``max_frames`` frames; ``frames``: only these scans of each
    sequence (labelled ones; with ``max_frames``, the first ``max_frames`` of them); either makes the results
    ``partial`` (kept off leaderboards) unless they cover the split. ``validate`` (no method: a submission, or
    onboard predictions whose names and sizes were checked): every file's content is checked as it is scored, and
    :class:`~occbench.evaluation.submission.InvalidSubmission` lists the problems instead of a result.
    ``fingerprint_content``: also hash the content of the scored ground truth (:mod:`occbench.fingerprint`).
    ``command``: the command line recorded in the results header.

    A field of the wrong kind or out of range is a ``ValueError`` naming it, raised when the config is made.
    """

    dataset: DatasetSpec | None = None
    method: MethodSpec | None = None
    submission: Submission | None = None
    metrics: tuple[str, ...] = DEFAULT_METRICS
    workers: int = 1
    executor: str = "local"
    address: str | None = None
    save_predictions_dir: str | None = None
    save_compressed: bool = False
    max_frames: int | None = None
    frames: tuple[int, ...] | None = None
    validate: bool = False
    fingerprint_content: bool = False
    command: str | None = None

    def __post_init__(self) -> None:
        if self.submission is not None:
            if self.dataset is not None or self.method is not None:
                raise ValueError("EvalConfig: give a submission, or a dataset spec and a method spec, not both")
            if not isinstance(self.submission, Submission):
                raise ValueError(f"EvalConfig.submission: expected a Submission, found {self.submission!r}")
        elif self.dataset is None:
            raise ValueError("EvalConfig: give a dataset spec (and a method spec), or a submission")
        elif not isinstance(self.dataset, DatasetSpec):
            raise ValueError(f"EvalConfig.dataset: expected a DatasetSpec, found {self.dataset!r}")
        if self.method is not None and not isinstance(self.method, MethodSpec):
            raise ValueError(f"EvalConfig.method: expected a MethodSpec, found {self.method!r}")
        if isinstance(self.metrics, str) or not all(isinstance(m, str) for m in self.metrics):
            raise ValueError(f"EvalConfig.metrics: expected a tuple of metric names, found {self.metrics!r}")
        object.__setattr__(self, "metrics", tuple(self.metrics))
        if type(self.workers) is not int or self.workers < 1:
            raise ValueError(f"EvalConfig.workers: expected a count >= 1, found {self.workers!r}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"EvalConfig.executor: expected one of {', '.join(EXECUTORS)}, found {self.executor!r}")
        if self.max_frames is not None and (type(self.max_frames) is not int or self.max_frames < 1):
            raise ValueError(f"EvalConfig.max_frames: expected a count >= 1 or None, found {self.max_frames!r}")
        if self.frames is not None:
            object.__setattr__(self, "frames", _scans(self.frames))
        if self.validate and self.method is not None:
            raise ValueError(
                "EvalConfig.validate: checks the files of a submission (or of onboard predictions without a "
                f"method), not the grids of method {self.method.name!r}"
            )
        if self.save_predictions_dir is not None:
            object.__setattr__(self, "save_predictions_dir", str(self.save_predictions_dir))

    @property
    def scored(self) -> DatasetSpec:
        """The split the jobs open: :attr:`dataset`, or the submission's split read with its folder as the
        predictions (:meth:`Submission.reader <occbench.evaluation.specs.Submission.reader>`)."""
        if self.submission is not None:
            return self.submission.reader()
        assert self.dataset is not None  # __post_init__
        return self.dataset

    @property
    def save(self) -> tuple[str, bool] | None:
        """(folder, compressed) of the predictions written as they are scored, or None."""
        return None if self.save_predictions_dir is None else (self.save_predictions_dir, self.save_compressed)


def _scans(frames: Iterable[int]) -> tuple[int, ...]:
    """``frames`` as sorted, distinct scan numbers (``ValueError`` naming what is not a scan number >= 0)."""
    if isinstance(frames, (str, bytes)):
        raise ValueError(f"EvalConfig.frames: expected scan numbers, found {frames!r}")
    out = set()
    for t in frames:
        if isinstance(t, bool) or not hasattr(t, "__index__") or int(t) < 0:
            raise ValueError(f"EvalConfig.frames: expected scan numbers >= 0, found {t!r}")
        out.add(int(t))
    return tuple(sorted(out))

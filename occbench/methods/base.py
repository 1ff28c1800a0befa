"""The offboard method interface.

An offboard method takes one sequence of onboard predictions (with poses and calibration) and
returns refined predictions for the target scans it is asked for. It knows nothing about ground truth
or metrics. Reference methods (``occbench_baselines/``) and third-party methods implement the same class and
register it under the ``occbench.methods`` entry-point group::

    # pyproject.toml of your package
    [project.entry-points."occbench.methods"]
    my-method = "my_package.module:MyMethod"
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from occbench.io.kitti import Calibration
from occbench.labels import LabelMap


class OnboardSequence(Protocol):
    """What a method may use of a sequence (``occbench.datasets.ScanSequence`` implements it)."""

    name: str
    label_map: LabelMap
    sensor: str | None  # "camera", "lidar" or None (unknown): the onboard model's modality
    image_size: tuple[int, int]  # camera image (width, height) for frustum tests

    @property
    def num_scans(self) -> int: ...
    @property
    def poses(self) -> np.ndarray: ...  # (num_scans, 4, 4) LiDAR poses in the sequence's world
    # ``pose_valid`` ((num_scans,) bool, read with getattr: absent means every scan has a pose): a scan without a pose
    # must be left out of every window (its ``poses`` row is NaN); see docs/datasets.md, frame numbering and poses
    @property
    def calib(self) -> Calibration: ...
    def prediction(self, index: int) -> np.ndarray: ...  # onboard train ids (256,256,32) uint8


class OffboardMethod(ABC):
    """Base class of offboard methods.

    Subclasses set ``name`` and may declare an ``Options`` dataclass; ``options`` given on the command
    line (``--option key=value``) are validated against it. ``refine`` yields ``(scan, train_ids)`` for
    every requested target scan, in any order, each exactly once.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type | None] = None
    # CPU threads one worker process of this method keeps busy (torch intra-op work): the default worker count
    # is the cores divided by this, and every local worker process gets the cores divided by the workers
    worker_threads: ClassVar[int] = 1
    # about how much memory (GB) one worker process running this method needs: its measured peak resident memory
    # in a one-process run on a full-size sequence. The default worker count keeps workers x this within the
    # available memory (occbench.evaluation.resources).
    worker_memory_gb: ClassVar[float] = 2.0

    def __init__(self, **options: Any):
        if self.Options is not None:
            fields = {f.name for f in dataclasses.fields(self.Options)}
            unknown = sorted(set(options) - fields)
            if unknown:
                raise ValueError(f"method {self.name!r}: unknown option(s) {unknown}; available: {sorted(fields)}")
            self.options = self.Options(**options)
        else:
            if options:
                raise ValueError(f"method {self.name!r} takes no options, got {sorted(options)}")
            self.options = None

    def config(self, onboard: str | None = None) -> dict[str, Any]:
        """Everything that defines the method's output, for the results header.

        ``onboard``: the onboard model whose predictions will be refined, when the caller knows it. A method
        whose output depends on it (e.g. one checkpoint per onboard model) records only what applies to it,
        so that a change that cannot affect a run (another onboard model's checkpoint) does not change its
        configuration.
        """
        opts = (
            dataclasses.asdict(self.options)
            if dataclasses.is_dataclass(self.options) and not isinstance(self.options, type)
            else {}
        )
        return {"name": self.name, "options": opts}

    @abstractmethod
    def refine(self, sequence: OnboardSequence, targets: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(scan, refined train ids (256,256,32) uint8)`` for each scan in ``targets``."""

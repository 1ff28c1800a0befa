"""What a metric is given of a scored frame besides the prediction: :class:`FrameArrays`, arrays only.

Metrics read no files. The evaluation (:mod:`occbench.evaluation`) reads a frame's files (its ground truth, the
invalid mask, the pose) and hands their arrays to every metric's :meth:`~occbench.metrics.Metric.update_frame`;
a notebook builds a :class:`FrameArrays` from arrays it holds (``FrameArrays(gt)``, ``FrameArrays(gt, invalid)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Labels = Literal["train", "raw"]


@dataclass(frozen=True)
class FrameArrays:
    """One scored frame as arrays (a metric's ``update_frame(pred, frame)`` takes the prediction and this).

    Attributes:
        ground_truth: the reference grid of the protocol's grid shape (``EvalProtocol.grid.shape``): train ids
            ``0..C-1`` or ``ignore_index`` (255; uint8 is the fast path), or with ``labels="raw"`` the raw label
            ids a ``.label`` file holds (uint16). None where the frame has no ground truth (only metrics that can
            do without, as the temporal consistency, accept that).
        invalid: optional mask, nonzero = invalid: one flag per voxel (bool or integer, of the grid's shape or
            flat), or the bit-packed bytes of a SemanticKITTI ``.invalid`` file as they are stored, ``(N / 8,)``
            uint8, most significant bit first. A dataset whose ground truth already folds its invalid voxels into
            ``ignore_index`` (what :meth:`occbench.datasets.Frame.ground_truth` returns) passes None.
        pose: the frame's 4x4 LiDAR -> world pose (float64), None where it is not known; the world-map metrics
            (city map, consistency) need it.
        labels: the id space of ``ground_truth`` and of the prediction scored against it: ``"train"`` (train ids)
            or ``"raw"`` (raw label ids, mapped with the protocol's label map inside the metric, as the official
            scripts do; the SSC metric's fast path for ``.label`` files).
        name: what error messages call the frame (e.g. the prediction's file name).
    """

    ground_truth: np.ndarray | None
    invalid: np.ndarray | None = None
    pose: np.ndarray | None = None
    labels: Labels = "train"
    name: str | None = None

    def __post_init__(self) -> None:
        if self.labels not in ("train", "raw"):
            raise ValueError(f"FrameArrays.labels must be 'train' or 'raw', got {self.labels!r}")

    def require_pose(self, who: str) -> np.ndarray:
        """The pose, or a ValueError naming the frame and the metric ``who`` that needs it."""
        if self.pose is None:
            raise ValueError(f"{who} places frames by their pose: frame {self.name or '(unnamed)'} has none")
        return self.pose


def as_frame_arrays(frame: object) -> FrameArrays:
    """``frame`` itself if it is a :class:`FrameArrays`; a TypeError saying what a metric takes otherwise."""
    if not isinstance(frame, FrameArrays):
        raise TypeError(
            "update_frame(pred, frame): frame must be an occbench.metrics.FrameArrays (the frame's arrays: ground "
            f"truth, invalid mask, pose), got {type(frame).__name__}; metrics read no files"
        )
    return frame

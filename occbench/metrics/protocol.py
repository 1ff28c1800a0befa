"""Evaluation protocols: every number occbench reports names the protocol (id + version) it was computed under.

A :class:`EvalProtocol` is a frozen description of *what* is measured: classes, which classes enter the mean,
the ignore / invalid policy, the epsilons and completion formulas of the reference implementation, and the
range crops. Changing any field that changes a number requires a new ``version``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from occbench.dataset_cards import protocol_definitions
from occbench.grid import KITTI, Grid, range_key
from occbench.labels import load_label_map

FLOAT32_EPS: float = float(np.finfo(np.float32).eps)

CompletionRule = Literal["semantic-kitti-api", "sscmetrics"]
InvalidPolicy = Literal["mask-all", "mask-empty-only"]


@dataclass(frozen=True)
class EvalProtocol:
    """One evaluation protocol. Immutable; compare protocols with ``==``.

    Attributes:
        id: protocol identifier, e.g. ``"semantickitti-ssc"``.
        version: bumped whenever a definition below changes a number.
        label_map: name of the occbench label map (``occbench.labels.load_label_map``).
        num_classes: ``C``; train ids are ``0..C-1``, ``0`` = empty.
        class_names: the ``C`` class names in train-id order.
        miou_classes: train ids averaged in mIoU (``1..C-1``: empty excluded).
        ignore_index: ground-truth value that is never evaluated (255).
        ranges: nested range crops in metres (box crops ``x < r``, ``|y| < r/2``; all z).
        iou_epsilon: per-class IoU is ``tp / (tp + fp + fn + iou_epsilon)``; a class absent from both
            ground truth and prediction therefore scores 0 and still counts in the mean (as officially).
        completion_rule: ``"semantic-kitti-api"`` (evaluate_completion.py: precision/recall with float32 eps in
            the denominator, IoU ``tp/(tp+fp+fn)`` without epsilon, NaN when there is nothing occupied) or
            ``"sscmetrics"`` (MonoScene/SSCBench SSCMetrics: precision, recall and IoU all 0 when tp == 0).
        pr_epsilon: epsilon of the ``"semantic-kitti-api"`` precision / recall denominators.
        invalid_policy: ``"mask-all"`` (SemanticKITTI: an invalid voxel is never evaluated) or
            ``"mask-empty-only"`` (SSCBench-KITTI360 preprocessing ``INVALID[nonzero(LABEL)] = 0``: the invalid
            flag only removes voxels whose ground truth is empty).
        static_classes: class names kept by the city-level map metric (paper Appendix B).
        distance_bin_width: width in metres of the finer distance bins of ``SSCMetric.distance_curve``.
        reference: where the definition comes from.
        grid: the dataset's voxel grid (:class:`occbench.grid.Grid`), which the range crops are checked against
            and cut from (not written in results headers: their ``ranges`` name the crops).
    """

    id: str
    version: str
    label_map: str
    num_classes: int
    class_names: tuple[str, ...]
    miou_classes: tuple[int, ...]
    ignore_index: int = 255
    ranges: tuple[float, ...] = KITTI.ranges
    iou_epsilon: float = 1e-15
    completion_rule: CompletionRule = "semantic-kitti-api"
    pr_epsilon: float = FLOAT32_EPS
    invalid_policy: InvalidPolicy = "mask-all"
    static_classes: tuple[str, ...] = ()
    distance_bin_width: float = 1.6
    reference: str = ""
    grid: Grid = KITTI
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"protocol {self.id}: {self.num_classes} classes but {len(self.class_names)} names")
        if not 2 <= self.num_classes <= 254:
            raise ValueError(f"protocol {self.id}: num_classes must be in 2..254, got {self.num_classes}")
        if any(not 0 <= c < self.num_classes for c in self.miou_classes):
            raise ValueError(f"protocol {self.id}: miou_classes must be train ids 0..{self.num_classes - 1}")
        unknown = [n for n in self.static_classes if n not in self.class_names]
        if unknown:
            raise ValueError(f"protocol {self.id}: static classes {unknown} are not class names")
        validate_ranges(self.ranges, self.grid)
        if self.completion_rule not in ("semantic-kitti-api", "sscmetrics"):
            raise ValueError(f"protocol {self.id}: unknown completion_rule {self.completion_rule!r}")
        if self.invalid_policy not in ("mask-all", "mask-empty-only"):
            raise ValueError(f"protocol {self.id}: unknown invalid_policy {self.invalid_policy!r}")
        if not self.distance_bin_width > 0:
            raise ValueError(f"protocol {self.id}: distance_bin_width must be > 0")

    @property
    def static_ids(self) -> tuple[int, ...]:
        return tuple(self.class_names.index(n) for n in self.static_classes)

    @property
    def range_keys(self) -> tuple[str, ...]:
        """Keys of the range crops in results files, smallest first (``"51.2"``: the full KITTI grid)."""
        return tuple(range_key(r) for r in self.ranges)

    @property
    def tag(self) -> str:
        """``"<id>@<version>"``, the short form written next to every number."""
        return f"{self.id}@{self.version}"

    def header(self) -> dict[str, Any]:
        """The protocol as a JSON-able dict (what :func:`occbench.metrics.results_json` writes)."""
        d = asdict(self)
        d.pop("extra")
        d.pop("grid")  # the grid is the dataset's; results files name its crops under "ranges"
        d["class_names"] = list(self.class_names)
        d["miou_classes"] = list(self.miou_classes)
        d["miou_class_names"] = [self.class_names[c] for c in self.miou_classes]
        d["ranges"] = [float(r) for r in self.ranges]
        d["static_classes"] = list(self.static_classes)
        d["ignore_invalid_policy"] = f"a voxel is evaluated iff its ground truth != {self.ignore_index} and " + (
            "it is not invalid" if self.invalid_policy == "mask-all" else "not (invalid and ground truth empty)"
        )
        d["range_definition"] = (
            "box crop: voxel (i, j, k) is within range r iff i < r/0.2 and |j - 128| < r/0.4 "
            "(j in [128 - r/0.4, 128 + r/0.4)), all k"
        )
        d["aggregation"] = "one confusion matrix summed over all voxels of all frames (no per-frame averaging)"
        return d


def validate_ranges(ranges: tuple[float, ...] | list[float], grid: Grid = KITTI) -> tuple[float, ...]:
    """Check range crops against ``grid`` (:meth:`occbench.grid.Grid.check_ranges`)."""
    return grid.check_ranges(ranges)


def _make(label_map: str, **kw: Any) -> EvalProtocol:
    lm = load_label_map(label_map)
    return EvalProtocol(
        label_map=label_map,
        num_classes=lm.num_classes,
        class_names=lm.class_names,
        miou_classes=tuple(range(1, lm.num_classes)),
        static_classes=lm.static_classes,
        **kw,
    )


# protocol id -> EvalProtocol, from the protocol definitions of the dataset files (occbench/labels/datasets/*.json)
PROTOCOLS: dict[str, EvalProtocol] = {pid: _make(**kw) for pid, kw in protocol_definitions().items()}


def get_protocol(p: EvalProtocol | str) -> EvalProtocol:
    if isinstance(p, EvalProtocol):
        return p
    try:
        return PROTOCOLS[p]
    except KeyError:
        raise ValueError(f"unknown protocol {p!r}; available: {', '.join(PROTOCOLS)}") from None

"""The city-level static map metric (OccFiner paper, Appendix B, Table 7), a sequence-level metric in a global
(world) voxel map; the multi-view temporal consistency metric, which reads the same state, is
:mod:`occbench.metrics.consistency` (its names are importable from here too).

Both read one state, :class:`occbench.metrics.worldmap.WorldMapState`: per world voxel the number of evaluated
frame voxels that observed it, the histogram of their reference categories and the histogram of their predicted
labels, held in tiles while frames are added, sealed into compact records (spilled to disk beyond a memory bound)
and summed tile by tile; with the frames declared up front (:meth:`CityMapMetric.expect`) tiles are reduced as soon
as no pending frame can touch them. Memory and speed over a whole real sequence:
``benchmarks/citymap_memory.py`` and ``docs/performance.md``.

World voxels of frame voxels: :mod:`occbench.metrics.worldmetric`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from occbench.geometry import VOXEL_SIZE
from occbench.metrics.consistency import TemporalConsistency, consistency_scores, temporal_consistency_scores  # noqa: F401  (public here too)
from occbench.metrics.protocol import EvalProtocol
from occbench.metrics.worldmetric import WorldMapMetric, decode_world_keys, world_keys  # noqa: F401  (public here too)


class CityMapMetric(WorldMapMetric):
    """City-level static-class map metric (OccFiner Appendix B, Table 7).

    Labelling rule of each world voxel (ground-truth map and predicted map alike): every frame votes with
    each of its *evaluated* voxels (ground truth not ignore, not invalid: the SSC mask of that frame) for one
    category: 0 = "not static" (empty or a dynamic class) or one of the static classes. The map label is the
    category with the most votes; ties go to the lower category (so "not static" wins a tie, then the lower
    train id). The prediction votes only where that frame's ground truth is evaluated, so both maps cover
    the same world voxels. Maps are compared over every world voxel with at least one vote:
    IoU = static-occupied vs not (tp / (tp + fp + fn)); per-class IoU over the static classes with the
    protocol's epsilon; mIoU = mean over the static classes.

    Args:
        protocol: :class:`EvalProtocol` or id.
        voxel_size: world voxel size in metres (default 0.2, the SSC voxel).
        **state_options: passed to :class:`WorldMapState` (``spill_dir``, ``spill_bytes``, ``keep_frames``).
    """

    higher_is_better = True

    def __init__(
        self, protocol: EvalProtocol | str = "semantickitti-ssc", voxel_size: float = VOXEL_SIZE, **state_options: Any
    ):
        super().__init__(protocol, voxel_size, **state_options)
        self.static_ids = self.protocol.static_ids
        self.n_cat = len(self.static_ids) + 1
        if self.n_cat * self.n_cat > 256:
            raise ValueError("too many static classes")

    def _add_frame(self, pred: np.ndarray, gt: np.ndarray, pose: np.ndarray, invalid: np.ndarray | None = None) -> None:
        """Add one frame: ``pred`` / ``gt`` train-id grids (gt 255 = ignore), ``pose`` 4x4 LiDAR -> world."""
        pred, checked_gt = self._checked(pred, gt, invalid, check_gt=True)
        self.state.add(pred, checked_gt, pose, invalid)

    def maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(world voxel keys (uint64, ``x << 35 | y << 14 | z`` with the axis offsets), gt map category, pred map
        category) per voxel, sorted by key. Needs every voxel: not available after :meth:`expect`."""
        r = self.state.reduce(want_maps=True)
        return r["keys"], r["g"], r["p"]

    def confusion(self) -> np.ndarray:
        """(S+1, S+1) int64 confusion of the two maps: rows = predicted map, cols = ground-truth map;
        index 0 = not static, 1..S = static classes in protocol order."""
        return self.state.reduce()["conf"].reshape(self.n_cat, self.n_cat)

    def compute(self) -> dict[str, Any]:
        return city_scores(self.confusion(), self.protocol, self.n_frames, self.voxel_size)

    @classmethod
    def scores_of_maps(
        cls, sums: dict[str, dict[str, Any]], frames: dict[str, int], protocol: EvalProtocol
    ) -> dict[str, Any]:
        """``city_map`` (over every sequence: the confusions add up) and ``city_map_per_sequence`` (each sequence
        has its own world frame, so maps are never merged across sequences)."""
        K1 = len(protocol.static_ids) + 1
        out: dict[str, Any] = {}
        per_seq = {k: city_scores(r["conf"].reshape(K1, K1), protocol, frames[k]) for k, r in sums.items()}
        if sums:
            out["city_map"] = city_scores(
                sum(r["conf"] for r in sums.values()).reshape(K1, K1), protocol, sum(frames.values())
            )
        out["city_map_per_sequence"] = per_seq
        return out


def city_map_scores(
    preds: Iterable[np.ndarray],
    gts: Iterable[np.ndarray],
    poses: Iterable[np.ndarray],
    protocol: EvalProtocol | str = "semantickitti-ssc",
    voxel_size: float = VOXEL_SIZE,
) -> dict[str, Any]:
    """One-shot :class:`CityMapMetric` over the frames of one sequence: train-id grids ``preds`` and ``gts``
    (255 = ignore) and their 4x4 LiDAR -> world ``poses``."""
    m = CityMapMetric(protocol, voxel_size)
    for pred, gt, pose in zip(preds, gts, poses, strict=True):
        m._add_frame(pred, gt, pose)
    return m.compute()


def city_scores(
    conf: np.ndarray, protocol: EvalProtocol, n_frames: int, voxel_size: float = VOXEL_SIZE
) -> dict[str, Any]:
    """Scores of a city-map confusion (``CityMapMetric.confusion``); confusions of several sequences add up."""
    tp_c = np.diag(conf)
    fp_c = conf.sum(axis=1) - tp_c
    fn_c = conf.sum(axis=0) - tp_c
    iou_c = tp_c / (tp_c + fp_c + fn_c + protocol.iou_epsilon)
    tp, fp, fn = int(conf[1:, 1:].sum()), int(conf[1:, 0].sum()), int(conf[0, 1:].sum())
    names = protocol.static_classes
    return {
        "iou": tp / (tp + fp + fn) if tp + fp + fn else float("nan"),
        "miou": float(iou_c[1:].mean()),
        "per_class_iou": {n: float(v) for n, v in zip(names, iou_c[1:])},
        "n_map_voxels": int(conf.sum()),
        "n_static_gt": int(conf[:, 1:].sum()),
        "n_static_pred": int(conf[1:, :].sum()),
        "n_frames": int(n_frames),
        "voxel_size_m": voxel_size,
        "classes_averaged": list(names),
        "labelling_rule": "majority vote of per-frame categories (not-static or a static class) "
        "over the evaluated voxels of all frames; ties to the lower category",
    }

"""Multi-view temporal consistency: how often a static world voxel seen by several frames gets the same label from
each of them. Reads the world map state of :mod:`occbench.metrics.worldmetric`, as the city map metric does."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from occbench.geometry import VOXEL_SIZE
from occbench.metrics.protocol import EvalProtocol
from occbench.metrics.worldmetric import WorldMapMetric


class TemporalConsistency(WorldMapMetric):
    """Multi-view temporal consistency: how often a static world voxel seen by several frames gets the same
    label from each of them.

    Every frame voxel that is evaluated (ground truth not ignore / not invalid; all voxels when ``gt`` is
    None) is one observation of its world voxel, labelled with the frame's *predicted* train id (all C
    classes, empty included). A world voxel is *static* when its reference label is a static class: the
    majority ground-truth category of its observations (as :class:`CityMapMetric`), or, without ground truth,
    the majority predicted category. Over static world voxels with ``n_v >= 2`` observations:

    - ``pair_agreement`` = sum_v sum_l n_vl (n_vl - 1) / sum_v n_v (n_v - 1): the probability that two
      observations of the same static voxel (distinct frame voxels) carry the same predicted label;
    - ``modal_agreement`` = sum_v max_l n_vl / sum_v n_v;
    - ``all_agree`` = share of those voxels whose observations all agree;
    and ``pair_agreement`` per reference static class.
    """

    higher_is_better = True

    def __init__(
        self, protocol: EvalProtocol | str = "semantickitti-ssc", voxel_size: float = VOXEL_SIZE, **state_options: Any
    ):
        super().__init__(protocol, voxel_size, **state_options)
        self.n_ref = len(self.protocol.static_ids) + 1
        self._has_gt: bool | None = None

    def _add_frame(
        self, pred: np.ndarray, gt: np.ndarray | None, pose: np.ndarray, invalid: np.ndarray | None = None
    ) -> None:
        has_gt = gt is not None
        if self._has_gt is not None and has_gt != self._has_gt:
            raise ValueError("either every frame or no frame must come with ground truth")
        pred, gt = self._checked(pred, gt, invalid if has_gt else None, check_gt=False)
        self._has_gt = has_gt
        self.state.add(pred, gt, pose, invalid if has_gt else None, lenient=True)

    def merge(self, other: "TemporalConsistency") -> "TemporalConsistency":
        if (
            isinstance(other, TemporalConsistency)
            and other._has_gt is not None
            and self._has_gt is not None
            and other._has_gt != self._has_gt
        ):
            raise ValueError("cannot merge temporal-consistency states of frames with and without ground truth")
        super().merge(other)
        self._has_gt = self._has_gt if self._has_gt is not None else other._has_gt
        return self

    def reset(self) -> None:
        super().reset()
        self._has_gt = None

    @classmethod
    def scores_of_maps(
        cls, sums: dict[str, dict[str, Any]], frames: dict[str, int], protocol: EvalProtocol
    ) -> dict[str, Any]:
        """``temporal_consistency`` over every sequence (the sums add up)."""
        K1 = len(protocol.static_ids) + 1
        tot = {"psame": np.zeros(K1, np.int64), "pall": np.zeros(K1, np.int64), "scal": np.zeros(4, np.int64)}
        for r in sums.values():
            for key in tot:
                tot[key] += r[key]
        return {
            "temporal_consistency": consistency_scores(
                tot["psame"], tot["pall"], tot["scal"], protocol, sum(frames.values()), bool(sums)
            )
        }

    def compute(self) -> dict[str, Any]:
        r = self.state.reduce()
        return consistency_scores(
            r["psame"], r["pall"], r["scal"], self.protocol, self.n_frames, bool(self._has_gt), self.voxel_size
        )


def temporal_consistency_scores(
    preds: Iterable[np.ndarray],
    gts: Iterable[np.ndarray | None],
    poses: Iterable[np.ndarray],
    protocol: EvalProtocol | str = "semantickitti-ssc",
    voxel_size: float = VOXEL_SIZE,
) -> dict[str, Any]:
    """One-shot :class:`TemporalConsistency` over the frames of one sequence: train-id grids ``preds``, their
    ground truth ``gts`` (every one None: the reference is the prediction majority) and 4x4 LiDAR -> world ``poses``."""
    m = TemporalConsistency(protocol, voxel_size)
    for pred, gt, pose in zip(preds, gts, poses, strict=True):
        m._add_frame(pred, gt, pose)
    return m.compute()


def consistency_scores(
    psame: np.ndarray,
    pall: np.ndarray,
    scal: np.ndarray,
    protocol: EvalProtocol,
    n_frames: int,
    has_gt: bool,
    voxel_size: float = VOXEL_SIZE,
) -> dict[str, Any]:
    """Scores of the consistency sums of :meth:`WorldMapState.reduce` (integers; sums of several sequences add up)."""
    same, tot = [int(x) for x in psame], [int(x) for x in pall]
    modal, obs, n_vox, all_agree = (int(x) for x in scal)
    total_same, total_all = sum(same), sum(tot)
    names = protocol.static_classes
    return {
        "pair_agreement": float(total_same / total_all) if total_all else float("nan"),
        "modal_agreement": float(modal / obs) if obs else float("nan"),
        "all_agree": float(all_agree / n_vox) if n_vox else float("nan"),
        "per_class_pair_agreement": {
            n: (float(same[i + 1] / tot[i + 1]) if tot[i + 1] else float("nan")) for i, n in enumerate(names)
        },
        "n_static_voxels": n_vox,
        "n_observations": obs,
        "n_frames": int(n_frames),
        "reference": "ground truth" if has_gt else "prediction majority",
        "voxel_size_m": voxel_size,
    }

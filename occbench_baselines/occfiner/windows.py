"""Multi-frame windows for offboard methods (OccFiner eq. 2), as a ``torch.utils.data.Dataset``.

For a pivot (target) scan ``t`` a window holds ``T_l`` local scans around ``t`` and ``T_r`` distant
reference scans sampled from ``[t - d, t + d]`` at stride ``s``; every scan comes with the 4x4 transform
from its LiDAR frame into the pivot's (``inv(T_t) @ T_i``), from which its relative-coordinate volume
(eq. 1: every voxel centre of scan i expressed in the pivot frame) follows — see
:func:`relative_coordinates`, or ``with_coords=True`` to get the volume itself.
Indices outside the sequence are clamped to its ends (VoxFormer's fallback to an existing frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset

from occbench.datasets.frame import ScanSequence
from occbench.geometry import grid_centres, transform_points
from occbench.grid import KITTI
from occbench.labels import IGNORE


def relative_coordinates(T_src_to_dst: np.ndarray, shape: tuple[int, int, int] = KITTI.shape) -> np.ndarray:
    """Eq. 1 of OccFiner: every voxel centre of frame i expressed in the target frame's LiDAR coordinates.

    Returns (X, Y, Z, 3) float32 metres.
    """
    c = grid_centres(shape).reshape(-1, 3)
    return transform_points(T_src_to_dst, c).reshape(*shape, 3).astype(np.float32)


@dataclass(frozen=True)
class WindowConfig:
    """Window sampling. Paper (Appendix D.1): T_l = 4, T_r = 2, reference radius n = 10."""

    local: int = 4
    reference: int = 2
    reference_radius: int = 10
    reference_stride: int = 1

    def local_offsets(self) -> list[int]:
        """Offsets of the local scans, centred on the pivot: T_l=4 -> [-2, -1, 0, 1]."""
        h = self.local // 2
        return list(range(-h, self.local - h))


def window_indices(t: int, num_scans: int, cfg: WindowConfig, rng: np.random.Generator | None = None) -> list[int]:
    """Scan numbers of the window of pivot ``t``: local scans then reference scans.

    Reference scans: with ``rng`` drawn at random (training) from the scans within ``reference_radius`` at
    ``reference_stride`` that are not local; without it, evenly spaced (deterministic, evaluation).
    """
    clamp = lambda i: int(min(max(i, 0), num_scans - 1))  # noqa: E731
    local = [clamp(t + o) for o in cfg.local_offsets()]
    if cfg.reference <= 0:
        return local
    offs = [
        o
        for o in range(-cfg.reference_radius, cfg.reference_radius + 1, cfg.reference_stride)
        if o not in cfg.local_offsets()
    ]
    if not offs:
        offs = [0]
    if rng is not None:
        pick = rng.choice(len(offs), size=cfg.reference, replace=len(offs) < cfg.reference)
        ref = [offs[int(i)] for i in sorted(pick)]
    else:
        pos = np.linspace(0, len(offs) - 1, cfg.reference).round().astype(int)
        ref = [offs[int(i)] for i in pos]
    return local + [clamp(t + o) for o in ref]


def posed_window_indices(
    t: int, num_scans: int, pose_valid: np.ndarray | None, cfg: WindowConfig, rng: np.random.Generator | None = None
) -> list[int]:
    """:func:`window_indices` over the scans that have a pose (``pose_valid``; None: all scans, the same indices as
    ``window_indices``): scans without one are left out of the sequence before the window is laid, so offsets count
    scans with a pose. The pivot ``t`` must have one."""
    if pose_valid is None or bool(np.all(pose_valid)):
        return window_indices(t, num_scans, cfg, rng)
    posed = np.flatnonzero(pose_valid)
    i = int(np.searchsorted(posed, t))
    if i >= len(posed) or posed[i] != t:
        raise ValueError(f"pivot scan {t} has no pose: it cannot be the centre of a window")
    return [int(posed[k]) for k in window_indices(i, len(posed), cfg, rng)]


def flip_matrix(axes: list[int]) -> np.ndarray:
    """The reflection of the grid that reverses voxel indices along ``axes`` (0 = x, 1 = y).

    Index i -> N-1-i maps a coordinate u to ``2 c - u`` with c the grid's centre on that axis
    (x: 25.6 m, y: 0 m). Applied to every scan, a scan->pivot transform T becomes ``M T M``.
    """
    from occbench.geometry import ORIGIN, VOXEL_SIZE

    M = np.eye(4)
    for a in axes:
        c = ORIGIN[a] + VOXEL_SIZE * KITTI.shape[a] / 2
        M[a, a] = -1.0
        M[a, 3] = 2 * c
    return M


def _torch():
    import torch

    return torch


class WindowDataset(Dataset):
    """Windows around pivot scans of one or more sequences; each item is a dict of tensors.

    ``pred`` (T,256,256,32) uint8 onboard train ids; ``transforms`` (T,4,4) float32 scan -> pivot;
    ``gt`` (T,256,256,32) uint8 train ids with 255 for ignore/invalid and for scans without ground truth;
    ``frames`` (T,) int64; ``pivot`` int; ``sequence`` str; ``coords`` (T,256,256,32,3) float32 if ``with_coords``.
    ``flip=True`` applies a random x/y flip (training augmentation, LMSCNet style) to pred and gt, conjugates the
    transforms by the reflection (``flip_matrix``) and builds ``coords`` from the flipped transforms, so a voxel's
    prediction, ground truth and coordinates move together.
    """

    def __init__(
        self,
        sequences: Sequence[ScanSequence],
        cfg: WindowConfig = WindowConfig(),
        pivots: str | dict[str, list[int]] = "labelled",
        random_reference: bool = False,
        with_gt: bool = True,
        with_coords: bool = False,
        flip: bool = False,
        seed: int = 0,
    ):
        self.sequences = {s.name: s for s in sequences}
        self.cfg = cfg
        self.random_reference = random_reference
        self.with_gt = with_gt
        self.with_coords = with_coords
        self.flip = flip
        self.seed = seed
        self.epoch = 0
        self.items: list[tuple[str, int]] = []
        for s in sequences:
            ts: Sequence[int]
            if isinstance(pivots, dict):
                ts = pivots.get(s.name, [])
            elif pivots == "labelled":
                ts = s.labelled_frames
            elif pivots == "all":
                ts = range(s.num_scans)
            else:
                raise ValueError(f"pivots must be 'labelled', 'all' or a dict, got {pivots!r}")
            valid = getattr(s, "pose_valid", None)  # pivots without a pose are left out
            self.items.extend((s.name, int(t)) for t in ts if valid is None or (int(t) < len(valid) and valid[int(t)]))

    def set_epoch(self, epoch: int) -> None:
        """Make random draws differ per epoch while staying reproducible."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def indices(self, i: int) -> list[int]:
        name, t = self.items[i]
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.random_reference else None
        seq = self.sequences[name]
        return posed_window_indices(t, seq.num_scans, getattr(seq, "pose_valid", None), self.cfg, rng)

    def __getitem__(self, i: int) -> dict:
        torch = _torch()
        name, t = self.items[i]
        seq = self.sequences[name]
        idx = self.indices(i)
        pred = np.stack([seq.prediction(j) for j in idx])
        tf = np.stack([seq.relative_transform(j, t) for j in idx]).astype(np.float32)
        out = {"pred": pred, "transforms": tf, "frames": np.asarray(idx, np.int64)}
        if self.with_gt:
            gts = []
            for j in idx:
                f = seq.frame(j)
                gts.append(f.ground_truth() if f.has_ground_truth else np.full(pred.shape[1:], IGNORE, np.uint8))
            out["gt"] = np.stack(gts)
        if self.flip:
            rng = np.random.default_rng([self.seed, self.epoch, i, 1])
            k = int(rng.integers(0, 4))  # 0 none, 1 flip x, 2 flip y, 3 both (z never flipped)
            axes = [a for a, on in ((1, k in (1, 3)), (2, k in (2, 3))) if on]
            if axes:
                out["pred"] = np.flip(out["pred"], tuple(axes))
                if "gt" in out:
                    out["gt"] = np.flip(out["gt"], tuple(axes))
                M = flip_matrix([a - 1 for a in axes])
                out["transforms"] = (M @ out["transforms"].astype(np.float64) @ M).astype(np.float32)
        if self.with_coords:  # from the returned (possibly flipped) transforms, so that they agree with pred and gt
            out["coords"] = np.stack([relative_coordinates(m.astype(np.float64)) for m in out["transforms"]])
        res = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}
        res["pivot"] = t
        res["sequence"] = name
        return res

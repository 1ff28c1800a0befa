"""Windows in the target frame: the neighbouring scans' onboard predictions brought into one scan's grid.

The first thing every offboard method needs. Two forms, one arithmetic (:mod:`occbench.registration`, the
float64 registration the voting engines use, so a window and a vote see the same cells):

**Dense, backward** (:func:`window`): for every scan ``s`` of the window, voxel ``v = (i, j, k)`` of the
*target* grid takes the label of the source voxel that contains the target voxel's centre seen from scan ``s``::

    p      = origin + size * (v + 0.5)                  # centre of v, target LiDAR frame
    q      = inv(T_s) @ T_t @ p                         # the same point in scan s's LiDAR frame
    cell   = floor((q - origin) / size)                 # the source voxel holding it
    grids[m, i, j, k] = pred_s[cell]   if 0 <= cell < shape (valid[m, i, j, k] = True)
                        255            otherwise        (valid[m, i, j, k] = False)

evaluated as ``floor(P[:, i, j] + c[:, k])`` with ``P, c = registration.affine(inv(T_s) @ T_t, shape)`` (one
float64 addition and a floor per axis). ``T_s``, ``T_t`` are the LiDAR poses of the sequence (``sequence.poses``);
``transforms[m] = inv(T_s) @ T_t`` (target frame -> scan ``s``'s frame) are the matrices used. Every target voxel
gets exactly one label per scan (nearest-voxel sampling: no voxel is lost or counted twice in the target grid);
a source voxel may be read by zero, one or several target voxels. The target scan itself is sampled the same way
(with ``inv(T_t) @ T_t``, which is the identity up to rounding); its slice equals its prediction.

**Sparse, forward** (:func:`forward_window`): OccFiner's eqs. 7-8, the form of methods that vote. Every source
voxel ``u`` of scan ``s`` (or every occupied one) is taken to its centre, moved into the target frame and
voxelised there::

    cell = floor((inv(T_t) @ T_s @ (origin + size * (u + 0.5)) - origin) / size)

evaluated as ``floor(P[:, i, j] + c[:, k])`` with ``P, c = registration.affine(inv(T_t) @ T_s, shape)``: exactly
the cells of the voting engines (``occbench_baselines/voting``). Voxels landing outside the target grid are left out;
several source voxels may land in one target cell (votes) and some target cells get none.
``transforms[m] = inv(T_t) @ T_s`` (scan ``s``'s frame -> target frame).

**The scans of a window.** ``target + m * stride`` for ``m = -n .. n``, clamped at the sequence's ends: with
``ends="drop"`` (the default) the scans outside ``0 .. num_scans - 1`` are left out, so a window near an end holds
fewer scans (as the voting engines' windows); with ``ends="repeat"`` each scan number is clamped into the sequence,
so a window always holds ``2n + 1`` scans and an end scan may repeat (as OccFiner's stage-1 windows). Scans are in
ascending order; the target is ``scans[center]``.

Grids are (X, Y, Z) uint8 train ids of the dataset's grid (:data:`occbench.grid.KITTI`, 256 x 256 x 32, for every
shipped dataset; pass ``grid=`` for another). The scan grids are read with ``sequence.prediction`` unless ``read``
is given: a method that refines many targets of one sequence can pass a cached reader (``functools.lru_cache``)
so that a scan shared by neighbouring windows is read once.

:class:`WindowDataset` serves dense windows of many targets to ``torch.utils.data.DataLoader`` (torch is imported
only there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from occbench.grid import KITTI, Grid
from occbench.labels import IGNORE
from occbench.registration import KERNELS, affine, cells, inside, pair_transform, warp_backward, warp_forward

Ends = Literal["drop", "repeat"]
ENDS: tuple[str, ...] = ("drop", "repeat")


def window_scans(target: int, n: int, num_scans: int, *, stride: int = 1, ends: Ends = "drop") -> np.ndarray:
    """(k,) int64 ascending scan numbers of the window of ``target``: ``target + m * stride``, ``m = -n .. n``,
    clamped at the ends (``ends``: ``"drop"`` leaves out the scans outside ``0 .. num_scans - 1``, ``"repeat"``
    clamps each number into it; module docstring)."""
    for what, v, lo in (("n", n, 0), ("stride", stride, 1), ("num_scans", num_scans, 1)):
        if isinstance(v, bool) or int(v) != v or v < lo:
            raise ValueError(f"window: {what} must be an integer >= {lo}, got {v!r}")
    if isinstance(target, bool) or int(target) != target or not 0 <= target < num_scans:
        raise ValueError(f"window: target scan {target!r} outside the sequence (0..{num_scans - 1})")
    if ends not in ENDS:
        raise ValueError(f"window: ends must be one of {ENDS}, got {ends!r}")
    s = int(target) + int(stride) * np.arange(-int(n), int(n) + 1, dtype=np.int64)
    return np.clip(s, 0, num_scans - 1) if ends == "repeat" else s[(s >= 0) & (s < num_scans)]


@dataclass(frozen=True, eq=False)
class Window:
    """A dense window (:func:`window`): ``k`` scans sampled into the target scan's grid.

    Attributes:
        sequence: the sequence's name.
        target: the target scan.
        scans: (k,) int64 scan numbers, ascending (``scans[center] == target``).
        center: the position of the target in ``scans`` (its first, with ``ends="repeat"``).
        transforms: (k, 4, 4) float64 ``inv(T_s) @ T_t``: target LiDAR frame -> scan ``s``'s, as sampled.
        grids: (k, X, Y, Z) uint8 train ids of each scan in the target grid; 255 where ``valid`` is False.
        valid: (k, X, Y, Z) bool: the target voxel's centre lies inside scan ``s``'s grid.
        grid: the voxel grid (shape, voxel size, origin).
    """

    sequence: str
    target: int
    scans: np.ndarray
    center: int
    transforms: np.ndarray
    grids: np.ndarray
    valid: np.ndarray
    grid: Grid = KITTI

    def __len__(self) -> int:
        return len(self.scans)


@dataclass(frozen=True, eq=False)
class ForwardWindow:
    """A sparse window (:func:`forward_window`): source voxels moved into the target grid (eqs. 7-8).

    Entries ``offsets[m] : offsets[m + 1]`` belong to ``scans[m]``; only source voxels that land inside the target
    grid are listed, in ascending source order.

    Attributes:
        sequence: the sequence's name.
        target: the target scan.
        scans: (k,) int64 scan numbers, ascending.
        center: the position of the target in ``scans``.
        transforms: (k, 4, 4) float64 ``inv(T_t) @ T_s``: scan ``s``'s LiDAR frame -> target's, as applied.
        offsets: (k + 1,) int64 bounds of each scan's entries.
        voxels: (M,) int64 flat index ``(i * Y + j) * Z + k`` of the source voxel in its own grid (to look up
            anything defined in the source frame, e.g. sensor weights).
        cells: (M,) int64 flat index of the target voxel it lands in.
        labels: (M,) uint8 the source voxel's train id.
        grid: the voxel grid.
    """

    sequence: str
    target: int
    scans: np.ndarray
    center: int
    transforms: np.ndarray
    offsets: np.ndarray
    voxels: np.ndarray
    cells: np.ndarray
    labels: np.ndarray
    grid: Grid = KITTI

    def __len__(self) -> int:
        return len(self.scans)

    def votes(self, num_classes: int = 20) -> np.ndarray:
        """(X, Y, Z, num_classes) int64: per target voxel, how many source voxels of each class landed in it."""
        nvox = self.grid.num_voxels
        if len(self.labels) and int(self.labels.max()) >= num_classes:
            raise ValueError(
                f"sequence {self.sequence}, target {self.target}: train id {int(self.labels.max())} in the "
                f"window, expected ids below num_classes={num_classes}"
            )
        keys = self.cells * num_classes + self.labels
        return np.bincount(keys, minlength=nvox * num_classes).reshape(*self.grid.shape, num_classes)


def _grid_of(sequence: Any, grid: Grid | None) -> Grid:
    return grid if grid is not None else getattr(sequence, "grid", None) or KITTI


def _poses(sequence: Any) -> np.ndarray:
    poses = np.asarray(sequence.poses, np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or len(poses) == 0:
        raise ValueError(
            f"sequence {getattr(sequence, 'name', '?')}: poses must be (N, 4, 4) with N >= 1, got {poses.shape}"
        )
    return poses


def _check_pose(poses: np.ndarray, s: int, sequence: Any) -> None:
    if not np.isfinite(poses[s]).all():
        raise ValueError(f"sequence {getattr(sequence, 'name', '?')}: the pose of scan {s} is not finite")


def _read(read: Callable[[int], np.ndarray], s: int, grid: Grid, sequence: Any) -> np.ndarray:
    g = np.asarray(read(int(s)))
    if g.shape != grid.shape or g.dtype != np.uint8:
        raise ValueError(
            f"sequence {getattr(sequence, 'name', '?')}, scan {s}: expected a {grid.shape} uint8 grid "
            f"of train ids, got {g.shape} {g.dtype}"
        )
    return np.ascontiguousarray(g)


def _center(scans: np.ndarray, target: int) -> int:
    return int(np.flatnonzero(scans == target)[0])


def warp(
    source: np.ndarray,
    T: np.ndarray,
    *,
    grid: Grid = KITTI,
    fill: int = IGNORE,
    out: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Backward nearest-voxel sampling of one grid: ``(out, valid)``.

    ``source``: (X, Y, Z) uint8 grid of scan ``s``; ``T``: 4x4 transform from the output scan's frame into scan
    ``s``'s (``inv(T_s) @ T_t``). Output voxel ``(i, j, k)`` takes ``source[floor(P[:, i, j] + c[:, k])]``
    (``P, c = registration.affine(T, grid.shape)``) where that cell lies in the grid, else ``fill``."""
    shape = grid.shape
    P, c = affine(T, shape, grid=grid)
    out = np.empty(shape, np.uint8) if out is None else out
    valid = np.empty(shape, bool) if valid is None else valid
    src = np.ascontiguousarray(source, np.uint8)
    if KERNELS:
        warp_backward(P, c, src, np.uint8(fill), out, valid)
        return out, valid
    idx = np.indices(shape).reshape(3, -1).T  # numpy path (numba missing)
    cell = cells(P, c, idx)
    ok = inside(cell, shape)
    flat = np.full(len(idx), fill, np.uint8)
    flat[ok] = src[tuple(cell[ok].T)]
    out[...] = flat.reshape(shape)
    valid[...] = ok.reshape(shape)
    return out, valid


def forward_cells(voxels: np.ndarray, T: np.ndarray, *, grid: Grid = KITTI) -> np.ndarray:
    """(M,) int64 flat target cells of source voxels ``voxels`` (flat indices of the source grid), -1 where they
    land outside; ``T``: 4x4 transform from the source scan's frame into the target's (``inv(T_t) @ T_s``)."""
    shape = grid.shape
    P, c = affine(T, shape, grid=grid)
    voxels = np.ascontiguousarray(voxels, np.int64)
    if KERNELS:
        out = np.empty(len(voxels), np.int64)
        warp_forward(P, c, voxels, np.asarray(shape, np.int64), out)
        return out
    cell = cells(P, c, np.stack(np.unravel_index(voxels, shape), axis=1))
    ok = inside(cell, shape)
    out = np.full(len(voxels), -1, np.int64)
    out[ok] = np.ravel_multi_index(cell[ok].T, shape)
    return out


def window(
    sequence: Any,
    target: int,
    n: int,
    *,
    stride: int = 1,
    ends: Ends = "drop",
    read: Callable[[int], np.ndarray] | None = None,
    grid: Grid | None = None,
) -> Window:
    """The dense window of ``target``: the predictions of scans ``target - n*stride .. target + n*stride``
    (clamped at the ends, ``ends``) sampled into the target scan's grid (backward nearest-voxel sampling; the
    exact convention is in the module docstring).

    ``sequence``: an :class:`occbench.datasets.ScanSequence` or anything with ``name``, ``poses`` (N, 4, 4) and
    ``prediction(scan)`` (the :class:`occbench.methods.OnboardSequence` a method receives). ``read``: reads a
    scan's grid instead of ``sequence.prediction`` (e.g. a cached reader). ``grid``: the voxel grid
    (default: ``sequence.grid`` if it has one, else KITTI's 256 x 256 x 32).
    """
    g = _grid_of(sequence, grid)
    poses = _poses(sequence)
    scans = window_scans(target, n, len(poses), stride=stride, ends=ends)
    read = sequence.prediction if read is None else read
    k = len(scans)
    grids = np.empty((k, *g.shape), np.uint8)
    valid = np.empty((k, *g.shape), bool)
    transforms = np.empty((k, 4, 4))
    _check_pose(poses, int(target), sequence)
    done: dict[int, int] = {}
    for m, s in enumerate(scans.tolist()):
        if s in done:  # a repeated end scan (ends="repeat"): the same samples
            q = done[s]
            grids[m], valid[m], transforms[m] = grids[q], valid[q], transforms[q]
            continue
        _check_pose(poses, s, sequence)
        transforms[m] = pair_transform(poses, int(target), s)
        warp(_read(read, s, g, sequence), transforms[m], grid=g, out=grids[m], valid=valid[m])
        done[s] = m
    return Window(
        getattr(sequence, "name", ""), int(target), scans, _center(scans, target), transforms, grids, valid, g
    )


def forward_window(
    sequence: Any,
    target: int,
    n: int,
    *,
    stride: int = 1,
    ends: Ends = "drop",
    occupied_only: bool = False,
    read: Callable[[int], np.ndarray] | None = None,
    grid: Grid | None = None,
) -> ForwardWindow:
    """The sparse window of ``target``: every voxel (``occupied_only``: every voxel with a train id other than 0)
    of the scans ``target - n*stride .. target + n*stride`` (clamped, ``ends``) moved forward into the target grid
    (OccFiner eqs. 7-8, the voting engines' cells; module docstring). Arguments as :func:`window`."""
    g = _grid_of(sequence, grid)
    poses = _poses(sequence)
    scans = window_scans(target, n, len(poses), stride=stride, ends=ends)
    read = sequence.prediction if read is None else read
    _check_pose(poses, int(target), sequence)
    transforms = np.empty((len(scans), 4, 4))
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for m, s in enumerate(scans.tolist()):
        _check_pose(poses, s, sequence)
        transforms[m] = pair_transform(poses, s, int(target))
        src = _read(read, s, g, sequence).reshape(-1)
        vox = np.flatnonzero(src) if occupied_only else np.arange(src.size, dtype=np.int64)
        cell = forward_cells(vox, transforms[m], grid=g)
        ok = cell >= 0
        parts.append((vox[ok].astype(np.int64), cell[ok], src[vox[ok]]))
    offsets = np.zeros(len(scans) + 1, np.int64)
    offsets[1:] = np.cumsum([len(p[0]) for p in parts])
    cat = [np.concatenate([p[i] for p in parts]) for i in range(3)]
    return ForwardWindow(
        getattr(sequence, "name", ""),
        int(target),
        scans,
        _center(scans, target),
        transforms,
        offsets,
        cat[0],
        cat[1],
        cat[2].astype(np.uint8),
        g,
    )


class WindowDataset:
    """Dense windows of many targets as a map-style dataset for ``torch.utils.data.DataLoader``.

    ``sequences``: the sequences (e.g. ``dataset.sequences``); ``targets``: ``"labelled"`` (each sequence's
    labelled scans, the scans a benchmark scores), ``"all"`` (every scan) or a mapping of sequence name -> scans;
    ``n``, ``stride``, ``ends``, ``grid``: as :func:`window`. Item ``i`` is a dict of tensors:

    * ``grids`` (k, X, Y, Z) uint8, ``valid`` (k, X, Y, Z) bool, ``transforms`` (k, 4, 4) float64, ``scans`` (k,)
      int64, ``center``, ``target`` (ints), ``sequence`` (str): the fields of :class:`Window`;
    * ``ground_truth`` (X, Y, Z) uint8 train ids of the target (255: ignore or invalid) and ``has_ground_truth``:
      the target's ground truth when its files are present (``with_ground_truth``); all 255 and False otherwise.

    ``k`` is ``2n + 1`` with ``ends="repeat"``; with ``ends="drop"`` it is smaller near the ends, so batch with
    ``batch_size=1`` (or ``None``) or use ``ends="repeat"``. The dataset pickles (it holds the sequences, which
    read files lazily), so ``num_workers > 0`` works; torch is imported only when an item is built.
    """

    def __init__(
        self,
        sequences: Iterable[Any],
        n: int,
        *,
        stride: int = 1,
        ends: Ends = "drop",
        targets: str | Mapping[str, Sequence[int]] = "labelled",
        with_ground_truth: bool = True,
        grid: Grid | None = None,
    ):
        seqs = list(sequences)
        self.sequences = {s.name: s for s in seqs}
        window_scans(0, n, 1, stride=stride, ends=ends)  # check the arguments now
        self.n, self.stride, self.ends, self.grid = int(n), int(stride), ends, grid
        self.with_ground_truth = with_ground_truth
        self.items: list[tuple[str, int]] = []
        for s in seqs:
            if isinstance(targets, Mapping):
                ts = list(targets.get(s.name, []))
            elif targets == "labelled":
                ts = list(s.labelled_frames)
            elif targets == "all":
                ts = list(range(s.num_scans))
            else:
                raise ValueError(
                    f"targets must be 'labelled', 'all' or a mapping of sequence -> scans, got {targets!r}"
                )
            self.items.extend((s.name, int(t)) for t in ts)

    def __len__(self) -> int:
        return len(self.items)

    def window(self, i: int) -> Window:
        """The :class:`Window` of item ``i`` (numpy arrays)."""
        name, t = self.items[i]
        return window(self.sequences[name], t, self.n, stride=self.stride, ends=self.ends, grid=self.grid)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        if not -len(self) <= i < len(self):
            raise IndexError(f"WindowDataset has {len(self)} items, asked for {i}")
        i = i % len(self)
        w = self.window(i)
        seq = self.sequences[w.sequence]
        gt, has = None, False
        if self.with_ground_truth and getattr(seq, "has_ground_truth", False):
            frame = seq.frame(w.target)
            if frame.has_ground_truth:
                gt, has = frame.ground_truth(), True
        if gt is None:
            gt = np.full(w.grid.shape, IGNORE, np.uint8)
        return {
            "sequence": w.sequence,
            "target": w.target,
            "center": w.center,
            "scans": torch.from_numpy(w.scans),
            "transforms": torch.from_numpy(w.transforms),
            "grids": torch.from_numpy(w.grids),
            "valid": torch.from_numpy(w.valid),
            "ground_truth": torch.from_numpy(np.ascontiguousarray(gt)),
            "has_ground_truth": has,
        }


__all__ = [
    "ENDS",
    "ForwardWindow",
    "Window",
    "WindowDataset",
    "forward_cells",
    "forward_window",
    "warp",
    "window",
    "window_scans",
]

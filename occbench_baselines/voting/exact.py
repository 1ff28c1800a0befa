"""The exact voting engine: eqs. 7-9 as the reference defines them, label for label, at engine speed.

For each target every source scan of its window is splatted forward, straight into the target's grid, with
the arithmetic of :mod:`occbench.registration` (the reference's). What makes it fast:

* **Sources are prepared once per entry into the window**: a scan's occupied voxels (numba: per source column
  their heights and classes, 3 bytes a voxel, the weights read from the weight grids that every scan shares; torch:
  flat index, class, class weight, empty-vote weight) are gathered when it enters the window and shared by every
  target it votes for; nothing else is kept.
* **Empty votes are implicit.** Only occupied voxels create rows (per cell: column 0 the empty-vote weight of
  the occupied source voxels that landed there, column ``k`` the votes of class ``k``). The empty votes of a cell
  are its *coverage* (summed empty-vote weight of all source voxels landing in it, a pass over the source grid
  that needs no labels) minus column 0. Cells without a row are empty under every policy, so only the cells
  with a row are decided.
* **Whole columns at once** in the coverage pass: the destination cell is monotonic along a source column, so
  a column whose end voxels fall in the same destination column needs only z per voxel, and columns that leave
  the grid are skipped.

Votes are integers (weights quantised, ``weights.weight_grids``), so sums are exact whatever the order, and
ties go to the lowest train id, exactly as in :func:`occbench_baselines.voting.weights.decide_labels`.

Backends: ``numba`` (compiled kernels, ``_exact_kernels.py``; the default on CPU) and ``torch`` (vectorised; CUDA
when available, and the CPU fallback). Both evaluate the same float64 additions and floors: identical labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from occbench.io.kitti import Calibration
from occbench.registration import affine, pair_transform

from . import _exact_kernels as _k
from .config import VotingConfig, VotingConfigError, check_poses, grid_dims, posed_scans, posed_window, run_targets
from .reference import FrameSource, check_frame, window
from .weights import vote_weights

POLICY_CODE = {"vote": 0, "occupancy": 1, "ignore": 2}
BACKENDS = ("auto", "numba", "torch")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def decide_labels_torch(votes: torch.Tensor, empty_policy: str) -> torch.Tensor:
    """Torch twin of :func:`occbench_baselines.voting.weights.decide_labels` (ties -> lowest id)."""
    if empty_policy == "vote":
        return torch.argmax(votes, dim=1).to(torch.uint8)
    occ = votes[:, 1:]
    label = torch.argmax(occ, dim=1).to(torch.uint8) + 1
    total = occ.sum(dim=1)
    occupied = total > votes[:, 0] if empty_policy == "occupancy" else total > 0
    return torch.where(occupied, label, torch.zeros_like(label))


def resolve_backend(backend: str, device: torch.device, available: bool) -> str:
    """``auto`` -> numba on CPU when installed, else torch; refuses numba off the CPU."""
    if backend not in BACKENDS:
        raise VotingConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "numba" if device.type == "cpu" and available else "torch"
    if backend == "numba" and (device.type != "cpu" or not available):
        raise VotingConfigError("the numba backend needs numba and device='cpu'")
    return backend


def check_policy(policy: str, has_empty_votes: bool) -> None:
    if policy not in POLICY_CODE:
        raise VotingConfigError(f"empty_policy must be one of {tuple(POLICY_CODE)}, got {policy!r}")
    if policy != "ignore" and not has_empty_votes:
        raise VotingConfigError(f"empty_policy={policy!r} needs empty votes (a config with empty_votes)")


class VotingEngine:
    """Exact sliding-window voting over one sequence (the default engine).

    ``frames(i)`` returns the (X, Y, Z) uint8 train-id prediction of scan ``i`` (``0 <= i < N``,
    ``N = len(poses_lidar)``); it is called once per scan per entry into the window (never for a scan that
    ``pose_valid`` (None: all scans) marks as having no pose: such scans are left out of every window), in
    ascending order when the targets ascend. ``backend``: ``"auto"`` (numba on CPU when installed, else torch),
    ``"numba"`` or ``"torch"``; ``device``: None (CUDA when available), ``"cpu"``, ``"cuda"``...
    """

    exact = True
    reads_frames_once = True  # over ascending targets: a scan enters the window once, its source is kept meanwhile
    slab_shift = 3  # destination slabs of 8 x-rows (numba backend)

    def __init__(
        self,
        frames: FrameSource,
        poses_lidar: np.ndarray,
        calib: Calibration | None,
        cfg: VotingConfig,
        device: str | torch.device | None = None,
        backend: str = "auto",
        pose_valid: np.ndarray | None = None,
    ) -> None:
        poses, self.pose_valid = posed_scans(check_poses(poses_lidar), pose_valid)
        self.frames = frames
        self.cfg = cfg
        self.poses = poses
        self.num_frames = len(poses)
        self.device = torch.device(device) if device is not None else default_device()
        self.backend = resolve_backend(backend, self.device, _k.AVAILABLE)
        self._shape = grid_dims(cfg)
        self._nvox = int(np.prod(self._shape))
        self._C = cfg.num_classes
        self._has_cov = bool(cfg.empty_votes)
        self._w_occ, self._w_emp, self._dtype = vote_weights(cfg, calib)
        const = self._has_cov and int(self._w_emp.min()) == int(self._w_emp.max())
        self._w_const = int(self._w_emp[0]) if const else 0
        self._w_cov = np.zeros(0, self._dtype) if const else self._w_emp
        self._sources: dict[int, tuple] = {}  # scan -> its occupied voxels (see the module's docstring)
        self._current: int | None = None  # the target whose votes are held
        self._full = False  # whether they hold the empty votes of every cell
        if self.backend == "numba":
            self._cov: np.ndarray = np.zeros(self._nvox if self._has_cov else 1, self._dtype)
            self._c2r = np.full(self._nvox, -1, np.int32)
            self._zlo = np.zeros(self._shape[0] * self._shape[1], np.int32)
            self._zhi = np.zeros(self._shape[0] * self._shape[1], np.int32)
            self._vox = np.zeros(0, np.int32)
            self._rows: np.ndarray = np.zeros((0, self._C), self._dtype)
            self._top = 0
            self._P = np.empty((0, 3, self._shape[0], self._shape[1]))
        else:
            tdt = torch.int32 if self._dtype == np.int32 else torch.int64
            self._tdtype = tdt
            self._tw_occ = torch.as_tensor(self._w_occ, device=self.device)
            self._tw_emp = torch.as_tensor(self._w_emp, device=self.device)
            self._tvotes: torch.Tensor | None = None

    # -- sources ---------------------------------------------------------------------------------
    def _source(self, s: int) -> tuple:
        if s not in self._sources:
            g = np.ascontiguousarray(check_frame(self.frames(s), s, self.cfg)).reshape(-1)
            src: tuple[Any, ...]
            if self.backend == "torch":
                idx = np.flatnonzero(g)
                src = tuple(
                    torch.as_tensor(a, device=self.device)
                    for a in (idx, g[idx].astype(np.int64), self._w_occ[idx], self._w_emp[idx])
                )
            else:  # by source column (CSR): heights (uint16, like the 16-bit column codes) and classes
                X, Y, Z = self._shape
                m = int(np.count_nonzero(g))
                src = (np.empty(X * Y + 1, np.int64), np.empty(m, np.uint16), np.empty(m, np.uint8))
                _k.source(g, Z, *src)
            self._sources[s] = src
        return self._sources[s]

    def _window(self, target: int) -> list[int]:
        w = posed_window(window(target, self.cfg.n, self.num_frames), self.pose_valid, target)
        keep = set(w)
        for s in [s for s in self._sources if s not in keep]:
            del self._sources[s]
        return w

    # -- one target --------------------------------------------------------------------------------
    def _compute(self, target: int, full: bool = False) -> None:
        """Votes of ``target``; ``full``: the empty votes of every cell (else only of the cells with a row, which are
        all that labels need)."""
        if self._current == target and (self._full or not full):
            return
        if not 0 <= target < self.num_frames:
            raise VotingConfigError(f"target frame {target} outside the sequence (0..{self.num_frames - 1})")
        if self.backend == "numba":
            self._compute_numba(target, full)
        else:
            self._compute_torch(target)
        self._current = target
        self._full = full or self.backend == "torch"

    def _compute_numba(self, target: int, full: bool) -> None:
        from numba.typed import List

        _k.release(self._c2r, self._vox, self._top)
        self._top = 0
        shift = self.slab_shift
        X, Y, Z = self._shape
        nslab = (X + (1 << shift) - 1) >> shift
        w = self._window(target)
        m = len(w)
        if self._P.shape[0] < m:
            self._P = np.empty((m, 3, X, Y))
        Ps = self._P[:m]
        cs = np.empty((m, 3, Z))
        lists = [List() for _ in range(5)]  # colptr, ks, cls, cov_cols, occ_cols
        cov_off = np.empty((m, nslab + 1), np.int64)
        occ_off = np.empty((m, nslab + 1), np.int64)
        entries = 0
        for q, s in enumerate(w):
            src = self._source(s)
            _, cs[q] = affine(pair_transform(self.poses, s, target), self._shape, out=Ps[q])
            cov_off[q], cov_cols, occ_off[q], occ_cols = _k.column_bins(Ps[q], cs[q], src[0], shift, nslab)
            for lst, a in zip(lists, (*src, cov_cols, occ_cols)):
                lst.append(a)
            entries += len(src[1])
        colptr, ks, cls, cov_cols, occ_cols = lists
        self._reserve(entries)
        self._top = _k.occupied(
            shift,
            Ps,
            cs,
            occ_off,
            occ_cols,
            colptr,
            ks,
            cls,
            self._w_occ,
            self._w_emp,
            self._c2r,
            self._rows,
            self._vox,
            0,
        )
        if not self._has_cov:
            return
        # coverage only where it is read: the z range of the cells with a row, per destination column
        if full:
            self._zlo.fill(0)
            self._zhi.fill(Z - 1)
        else:
            _k.zrange(self._vox, self._top, Z, self._zlo, self._zhi)
        self._cov.fill(0)
        _k.coverage(shift, Ps, cs, cov_off, cov_cols, self._w_cov, self._w_const, self._zlo, self._zhi, self._cov)

    def _reserve(self, k: int) -> None:
        """Room for ``k`` new rows (at most one per cell)."""
        need = min(k, self._nvox)
        if need > len(self._vox):
            cap = min(max(need, 2 * len(self._vox)), self._nvox)
            self._rows = np.empty((cap, self._C), self._dtype)
            self._vox = np.empty(cap, np.int32)

    def _compute_torch(self, target: int) -> None:
        dev, C, nv = self.device, self._C, self._nvox
        votes = torch.zeros(nv * C, dtype=self._tdtype, device=dev)
        cov = torch.zeros(nv, dtype=self._tdtype, device=dev)
        for s in self._window(target):
            idx, cls, wo, we = self._source(s)
            P, c = affine(pair_transform(self.poses, s, target), self._shape)
            Pt = torch.as_tensor(P, device=dev)
            ct = torch.as_tensor(c, device=dev)
            if self._has_cov:
                cell, ok = _cells_torch(Pt, ct, None, self._shape)
                cov.index_add_(0, cell[ok], self._tw_emp[ok])
            cell, ok = _cells_torch(Pt, ct, idx, self._shape)
            cell = cell[ok]
            votes.index_add_(0, cell * C + cls[ok], wo[ok])
            cov.index_add_(0, cell, -we[ok])  # the occupied voxels' share of the coverage is not an empty vote
        votes = votes.view(nv, C)
        votes[:, 0] = cov if self._has_cov else 0
        self._tvotes = votes

    # -- reading ----------------------------------------------------------------------------------
    def vote(self, target: int, empty_policy: str | None = None) -> np.ndarray:
        """Refined grid of one target (moves the window). ``empty_policy`` overrides ``cfg.empty_policy``
        for this read (the votes do not depend on it; ``"vote"``/``"occupancy"`` need empty votes)."""
        policy = self.cfg.empty_policy if empty_policy is None else empty_policy
        check_policy(policy, self._has_cov)
        self._compute(target)
        if self.backend == "numba":
            out = np.zeros(self._nvox, np.uint8)
            _k.decide(self._cov, self._has_cov, self._rows, self._vox, self._top, POLICY_CODE[policy], out)
            return out.reshape(self._shape)
        assert self._tvotes is not None
        return decide_labels_torch(self._tvotes, policy).cpu().numpy().reshape(self._shape)

    def votes(self, target: int) -> torch.Tensor:
        """(V, C) votes of every voxel of ``target`` (column 0: empty votes), on the engine's device."""
        self._compute(target, full=True)
        if self.backend == "torch":
            assert self._tvotes is not None
            return self._tvotes.clone()
        out: np.ndarray = np.zeros((self._nvox, self._C), self._dtype)
        if self._has_cov:
            out[:, 0] = self._cov
        v = self._vox[: self._top]
        rows = self._rows[: self._top].copy()
        rows[:, 0] = out[v, 0] - rows[:, 0]
        out[v] = rows
        return torch.from_numpy(out)

    def run(self, targets: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame_index, refined uint8 grid)`` for sorted, distinct ``targets``."""
        return run_targets(self.vote, targets)


def _cells_torch(
    P: torch.Tensor, c: torch.Tensor, idx: torch.Tensor | None, shape: tuple[int, int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat destination cells and in-grid mask of all source voxels (``idx`` None) or of flat indices ``idx``:
    the float64 addition and floor of ``occbench.registration``."""
    X, Y, Z = shape
    if idx is not None:
        k = idx % Z
        ij = idx // Z
        i, j = ij // Y, ij % Y
    cell = None
    ok = None
    for d, n in enumerate(shape):
        if idx is None:
            comp = (P[d].unsqueeze(2) + c[d].view(1, 1, -1)).reshape(-1)
        else:
            comp = P[d][i, j] + c[d][k]
        q = torch.floor(comp).to(torch.int64)
        good = (q >= 0) & (q < n)
        ok = good if ok is None else ok & good
        cell = q if cell is None else cell * n + q
    assert cell is not None and ok is not None
    return cell, ok

"""The lattice voting engine (``engine=lattice``): fast, and an APPROXIMATION of eqs. 7-9.

A running world-frame vote map over a sliding window of scans.

Each source scan is registered once into a vote map whose cells are the 0.2 m voxels of a fixed
world lattice (the lattice of scan 0's grid, i.e. poses taken relative to ``poses[0]``). Moving from
one target to the next adds the scans entering the window and subtracts those leaving it (integer
weights: the subtraction is exact), so the cost per target depends on the target step, not on the
number of scans ``2n+1``. A target's refined grid is read by looking up the world cell that holds
each of its voxel centres.

Map layout (dense over the window, empty votes implicit):

* ``cov``: one integer per world cell of a dense box covering the footprints of the window's scans
  (re-based, by copying the overlap, when a scan entering the window leaves the box): the empty votes
  of the cell (summed empty-vote weight of the empty source voxels registered into it). It is only
  kept when empty votes count (``cfg.empty_votes``).
* ``c2r``: per cell of the same box, the row of the cell in ``rows`` (-1: no occupied vote).
* ``rows``: one row per cell with at least one occupied vote: column 0 counts the occupied source
  voxels in the cell, column ``k >= 1`` holds the votes of class ``k``. A cell's first occupied entry
  takes the next unused row (bump allocation, so that cells first seen together, by one scan, stay
  together in memory); a cell whose last entry leaves the window drops its row (all-zero votes), and
  dropped rows are squeezed out (order kept) when the table is full.

The votes are exactly those of a dense ``(cells, C)`` map (class 0 in ``cov``), but a scan costs one
pass over its voxels for ``cov`` (no per-class storage for the ~90 % of cells that only ever get empty
votes) and one over its occupied voxels for ``rows``. The per-scan occupied voxel lists (ascending flat
indices and classes) are kept while the scan is in the window, for its removal; nothing else is cached.

Discretisation: the reference (``vote_frame_reference``) voxelises every source centre directly in
the target lattice; here source centres are voxelised in the world lattice and target centres
look up their world cell. The two coincide whenever the target lattice equals the world lattice up
to an integer voxel shift (then labels are identical); for rotated targets a source vote can land
in a neighbouring target voxel. The target's own scan is always counted exactly (its centres and
its look-ups fall in the same cells). ``tests/test_voting_seq08.py`` bounds the share of voxels
whose label differs from the reference on real sequence-08 poses.

Backends: ``numba`` (one compiled pass per scan, CPU; the default on CPU when numba is installed)
and ``torch`` (vectorised; CUDA when available, also the CPU fallback). Both evaluate the same float64
sums and floors and give identical labels (tested).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from occbench.io.kitti import Calibration
from occbench.registration import affine as _affine

from . import _lattice_kernels as _kernels
from .config import VotingConfig, check_poses, grid_dims, posed_scans, posed_window, run_targets
from .exact import POLICY_CODE as _POLICY_CODE
from .exact import check_policy, decide_labels_torch, default_device, resolve_backend
from .reference import FrameSource, check_frame, window
from .weights import vote_weights

BACKENDS = ("auto", "numba", "torch")


def _footprint(T: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive (lo, hi) world cells that scan ``T``'s voxel centres can fall in (1-cell margin)."""
    P, c = _affine(T, shape)
    corners = P[:, [0, 0, -1, -1], [0, -1, 0, -1]]  # (3, 4): the map is affine, extremes are at corners
    v = (corners[:, :, None] + c[:, None, [0, -1]]).reshape(3, -1)
    return np.floor(v.min(1)).astype(np.int64) - 1, np.floor(v.max(1)).astype(np.int64) + 1


class LatticeVotingEngine:
    """Sliding-window voting over one sequence in a world lattice (approximate: see the module docstring).

    ``frames(i)`` returns the (X, Y, Z) uint8 train-id prediction of scan ``i`` (``0 <= i < N``,
    ``N = len(poses_lidar)``); it is called once per scan per entry into the window (never for a scan that
    ``pose_valid`` (None: all scans) marks as having no pose: such scans are left out of every window).
    ``backend``: ``"auto"`` (numba on CPU when installed, else torch), ``"numba"`` or ``"torch"``.
    ``lookahead``: when the map box is re-based it is sized for the scans up to ``lookahead`` beyond
    the window, so that it is re-based about every ``lookahead`` scans.
    """

    exact = False
    reads_frames_once = False  # a window rebuilt after a jump reads its scans again

    def __init__(
        self,
        frames: FrameSource,
        poses_lidar: np.ndarray,
        calib: Calibration | None,
        cfg: VotingConfig,
        device: str | torch.device | None = None,
        backend: str = "auto",
        lookahead: int = 10,
        pose_valid: np.ndarray | None = None,
    ) -> None:
        poses, self.pose_valid = posed_scans(check_poses(poses_lidar), pose_valid)
        self.frames = frames
        self.cfg = cfg
        self.num_frames = len(poses)
        self.device = torch.device(device) if device is not None else default_device()
        self.backend = resolve_backend(backend, self.device, _kernels.AVAILABLE)
        self.lookahead = max(0, int(lookahead))
        # world = LiDAR frame of scan 0 (keeps coordinates small and the lattice of scan 0)
        self._rel = np.linalg.inv(poses[0]) @ poses
        shape = grid_dims(cfg)
        self._shape = shape
        self._nvox = int(np.prod(shape))
        fp = [_footprint(T, shape) for T in self._rel]
        self._fp_lo = np.stack([f[0] for f in fp])
        self._fp_hi = np.stack([f[1] for f in fp])
        big = np.iinfo(np.int64).max // 4  # scans without a pose: footprints that no box has to cover
        self._fp_lo[~self.pose_valid] = big
        self._fp_hi[~self.pose_valid] = -big
        self._w_occ, self._w_emp, self._np_vdtype = vote_weights(cfg, calib)
        self._vdtype = torch.int32 if self._np_vdtype == np.int32 else torch.int64
        self._has_cov = bool(cfg.empty_votes)
        self._w_pos = None if bool((self._w_occ > 0).all()) else (self._w_occ > 0)
        if self.backend == "torch":
            self._tw_occ = torch.as_tensor(self._w_occ, device=self.device)
            self._tw_emp = torch.as_tensor(self._w_emp, device=self.device)
        C = cfg.num_classes
        self._C = C
        # dense local map (allocated on the first window)
        self._lo = np.zeros(3, np.int64)
        self._dims = np.zeros(3, np.int64)
        self._cov = torch.zeros(0, dtype=self._vdtype, device=self.device)
        self._c2r = torch.full((0,), -1, dtype=torch.int32, device=self.device)
        self._rows = torch.zeros((0, C), dtype=self._vdtype, device=self.device)
        self._top = np.zeros(1, np.int64)  # rows [0, top) are in use or dropped; [top, cap) unused
        self.min_rows = 4096  # smallest growth of the row table
        self.compactions = 0
        self._window: tuple[int, int] | None = None
        self._occ: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # scan -> (flat voxel index int32, class uint8)

    # -- the dense local map --------------------------------------------------------------------
    @property
    def _strides(self) -> tuple[int, int]:
        return int(self._dims[1] * self._dims[2]), int(self._dims[2])

    def _contains(self, lo: np.ndarray, hi: np.ndarray) -> bool:
        return bool(np.all(lo >= self._lo) and np.all(hi < self._lo + self._dims))

    def _rebase(self, lo: int, hi: int) -> None:
        """Make the box cover the footprints of scans ``lo .. hi`` (and ``lookahead`` more), keeping the content."""
        need_lo = self._fp_lo[lo : hi + 1].min(0)
        need_hi = self._fp_hi[lo : hi + 1].max(0)
        if self._cov.numel() + self._c2r.numel() and self._contains(need_lo, need_hi):
            return
        ahead = min(self.num_frames - 1, hi + self.lookahead)
        new_lo = self._fp_lo[lo : ahead + 1].min(0)
        new_hi = self._fp_hi[lo : ahead + 1].max(0)
        dims = new_hi - new_lo + 1
        n = int(np.prod(dims))
        c2r = torch.full((n,), -1, dtype=torch.int32, device=self.device)
        cov = torch.zeros(n if self._has_cov else 0, dtype=self._vdtype, device=self.device)
        if self._c2r.numel():
            a = np.maximum(self._lo, new_lo)
            b = np.minimum(self._lo + self._dims, new_lo + dims)
            if np.all(b > a):
                so = tuple(slice(int(x - o), int(y - o)) for x, y, o in zip(a, b, self._lo))
                sn = tuple(slice(int(x - o), int(y - o)) for x, y, o in zip(a, b, new_lo))
                c2r.view(*dims.tolist())[sn] = self._c2r.view(*self._dims.tolist())[so]
                if self._has_cov:
                    cov.view(*dims.tolist())[sn] = self._cov.view(*self._dims.tolist())[so]
        self._lo, self._dims, self._c2r, self._cov = new_lo, dims, c2r, cov

    def _reserve(self, k: int) -> None:
        """At least ``k`` unused rows: squeeze out the dropped rows (keeping the order), grow if still short."""
        top, cap = int(self._top[0]), self._rows.shape[0]
        if top + k <= cap:
            return
        live = self._rows[:top, 0] > 0
        nlive = int(live.sum())
        if nlive < top:
            new_of_old = torch.cumsum(live, 0, dtype=torch.int32) - 1
            self._rows[:nlive] = self._rows[:top][live]
            self._rows[nlive:top] = 0
            m = self._c2r >= 0
            self._c2r[m] = new_of_old[self._c2r[m].to(torch.int64)]
            self._top[0] = top = nlive
            self.compactions += 1
        if 4 * (top + k) > 3 * cap:  # still (nearly) full: grow to twice what is needed
            grow = max(2 * (top + k) - cap, self.min_rows)
            self._rows = torch.cat([self._rows, self._rows.new_zeros((grow, self._C))])

    def _reset(self) -> None:
        self._cov.zero_()
        self._c2r.fill_(-1)
        self._rows.zero_()
        self._top[0] = 0
        self._occ.clear()

    # -- one scan in / out ----------------------------------------------------------------------
    def _load(self, s: int) -> None:
        g = np.ascontiguousarray(check_frame(self.frames(s), s, self.cfg)).reshape(-1)
        m = g > 0
        if self._w_pos is not None:
            m &= self._w_pos
        idx = np.flatnonzero(m).astype(np.int32)
        self._occ[s] = (idx, g[idx])

    def _apply(self, s: int, sign: int) -> None:
        idx, cls = self._occ[s]
        P, c = _affine(self._rel[s], self._shape)
        s0, s1 = self._strides
        if sign > 0:
            self._reserve(len(idx))
        if self.backend == "numba":
            lo = self._lo
            if self._has_cov:
                _kernels.coverage(P, c, lo, s0, s1, self._w_emp, idx, self._cov.numpy(), sign)
            rc = _kernels.occupied(
                idx, cls, P, c, lo, s0, s1, self._w_occ, self._c2r.numpy(), self._rows.numpy(), self._top, sign
            )
            if rc != 0:  # pragma: no cover - _reserve guarantees enough rows
                raise RuntimeError("voting engine: out of free rows")
            return
        self._apply_torch(idx, cls, P, c, sign)

    # torch twin of the kernels ----------------------------------------------------------------
    def _keys_torch(self, P: np.ndarray, c: np.ndarray, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Map keys of the world cells of all voxels (``idx`` None) or of flat voxel indices ``idx``."""
        Pt = torch.as_tensor(P, device=self.device)
        ct = torch.as_tensor(c, device=self.device)
        s0, s1 = self._strides
        strides = (s0, s1, 1)
        if idx is not None:
            Y, Z = self._shape[1], self._shape[2]
            k = idx % Z
            ij = idx // Z
            i, j = ij // Y, ij % Y
        key = None
        for d in range(3):
            if idx is None:
                comp = Pt[d].unsqueeze(2) + ct[d].view(1, 1, -1)
            else:
                comp = Pt[d][i, j] + ct[d][k]
            cd = torch.floor(comp).to(torch.int64).view(-1).sub_(int(self._lo[d]))
            if strides[d] != 1:
                cd.mul_(strides[d])
            key = cd if key is None else key.add_(cd)
        assert key is not None
        return key

    def _apply_torch(self, idx_np: np.ndarray, cls_np: np.ndarray, P: np.ndarray, c: np.ndarray, sign: int) -> None:
        C = self._C
        idx = torch.as_tensor(idx_np.astype(np.int64), device=self.device)
        if self._has_cov:  # empty votes: every voxel but the occupied ones
            keys = self._keys_torch(P, c)
            w = self._tw_emp.clone() if sign > 0 else -self._tw_emp
            w[idx] = 0
            self._cov.index_add_(0, keys, w)
        if idx.numel() == 0:
            return
        cls = torch.as_tensor(cls_np.astype(np.int64), device=self.device)
        ko = self._keys_torch(P, c, idx)
        wo = self._tw_occ[idx]
        r = self._c2r[ko]
        if sign > 0:
            new = r < 0
            if bool(new.any()):
                kn = ko[new]
                tmp = torch.arange(kn.numel(), device=self.device, dtype=torch.int32)
                self._c2r[kn] = -2 - tmp  # one of the entries of each new cell wins the write
                winner = (-2 - self._c2r[kn]) == tmp
                nw = int(winner.sum())
                top = int(self._top[0])
                self._c2r[kn[winner]] = torch.arange(top, top + nw, device=self.device, dtype=torch.int32)
                self._top[0] = top + nw
                r = self._c2r[ko]
        else:
            wo = -wo
        r = r.to(torch.int64)
        flat = self._rows.view(-1)
        flat.index_add_(0, r * C + cls, wo)
        flat.index_add_(0, r * C, torch.full_like(wo, sign))
        if sign < 0:
            dead = self._rows[r, 0] == 0
            if bool(dead.any()):
                self._c2r[ko[dead]] = -1

    # -- the window -----------------------------------------------------------------------------
    def _update(self, lo: int, hi: int) -> None:
        v = self.pose_valid
        new = {s for s in range(lo, hi + 1) if v[s]}
        old = set() if self._window is None else {s for s in range(self._window[0], self._window[1] + 1) if v[s]}
        add, rem = sorted(new - old), sorted(old - new)
        if len(add) + len(rem) >= len(new) and rem:  # cheaper to rebuild
            self._reset()
            add, rem = sorted(new), []
        for s in rem:
            self._apply(s, -1)
            del self._occ[s]
        self._rebase(lo, hi)  # after the removals: what is left lies in the new window's footprints
        for s in add:
            self._load(s)
            self._apply(s, +1)
        self._window = (lo, hi)

    def _move(self, target: int) -> None:
        w = window(target, self.cfg.n, self.num_frames)
        posed_window(w, self.pose_valid, target)  # the target must have a pose
        self._update(w.start, w.stop - 1)

    def votes(self, target: int) -> torch.Tensor:
        """(V, C) votes read for every voxel of ``target`` (column 0: empty); moves the window."""
        self._move(target)
        P, c = _affine(self._rel[target], self._shape)
        if self.backend == "numba":
            keys_np = np.empty(self._nvox, np.int64)
            s0, s1 = self._strides
            _kernels.keys(P, c, self._lo, s0, s1, keys_np)
            keys = torch.from_numpy(keys_np)
        else:
            keys = self._keys_torch(P, c)
        out = torch.zeros((self._nvox, self._C), dtype=self._vdtype, device=self.device)
        if self._has_cov:
            out[:, 0] = self._cov[keys]
        r = self._c2r[keys].to(torch.int64)
        has = torch.nonzero(r >= 0).squeeze(1)
        v = self._rows[r[has]]
        v[:, 0] = out[has, 0]
        out[has] = v
        return out

    def vote(self, target: int, empty_policy: str | None = None) -> np.ndarray:
        """Refined grid of one target (moves the window).

        ``empty_policy`` overrides ``cfg.empty_policy`` for this read (the map does not depend on the
        policy except that ``"vote"``/``"occupancy"`` need empty votes: a map built without them, i.e.
        with ``"ignore"`` or ``empty_weight=0``, can only be read with ``"ignore"``). Used by the ablation.
        """
        self._move(target)
        policy = self.cfg.empty_policy if empty_policy is None else empty_policy
        check_policy(policy, self._has_cov)
        if self.backend == "numba":
            P, c = _affine(self._rel[target], self._shape)
            out = np.empty(self._nvox, np.uint8)
            s0, s1 = self._strides
            cov = self._cov.numpy() if self._has_cov else np.zeros(1, self._np_vdtype)
            _kernels.read(
                P,
                c,
                self._lo,
                s0,
                s1,
                cov,
                self._has_cov,
                self._c2r.numpy(),
                self._rows.numpy(),
                _POLICY_CODE[policy],
                out,
            )
            return out.reshape(self._shape)
        P, c = _affine(self._rel[target], self._shape)
        keys = self._keys_torch(P, c)
        r = self._c2r[keys].to(torch.int64)
        has = torch.nonzero(r >= 0).squeeze(1)
        v = self._rows[r[has]]
        v[:, 0] = self._cov[keys[has]] if self._has_cov else 0
        lab = torch.zeros(self._nvox, dtype=torch.uint8, device=self.device)
        lab[has] = decide_labels_torch(v, policy)
        return lab.cpu().numpy().reshape(self._shape)

    def run(self, targets: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame_index, refined uint8 grid)`` for sorted, distinct ``targets``."""
        return run_targets(self.vote, targets)

"""Fast region-centric voting: a running world-frame vote map over a sliding window of scans.

Each source scan is registered once into a vote map whose cells are the 0.2 m voxels of a fixed
world lattice (the lattice of scan 0's grid, i.e. poses taken relative to ``poses[0]``). The map is
block-sparse (voxel hashing without a hash): a dense int32 index over the sequence's bounding box in
blocks of ``block^3`` cells points into a pool of dense ``(block^3, C)`` vote blocks, allocated when a
scan first touches a block and freed when no scan in the window touches it any more. The map holds
the integer class votes of the scans currently in the window. Moving
from one target to the next adds the scans entering the window and subtracts those leaving it, so
the cost per target depends on the target spacing and on the window's spatial extent, not on the
number of scans ``2n+1``. A target's refined grid is read by looking up the world cell that holds
each of its voxel centres.

Discretisation: the reference (``vote_frame_reference``) voxelises every source centre directly in
the target lattice; here source centres are voxelised in the world lattice and target centres
look up their world cell. The two coincide whenever the target lattice equals the world lattice up
to an integer voxel shift (then labels are identical); for rotated targets a source vote can land
in a neighbouring target voxel. The target's own scan is always counted exactly (its centres and
its look-ups fall in the same cells). ``tests/test_voting_engine.py`` bounds the share of voxels
whose label differs from the reference on real sequence-08 poses.

Runs on CUDA when available (``device=None``), else vectorised on the CPU with torch.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch

from occbench.geometry import ORIGIN, VOXEL_SIZE, grid_centres
from occbench.io.kitti import Calibration

from .config import VotingConfig, VotingConfigError
from .reference import FrameSource, check_frame, window
from .weights import weight_grids


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def decide_labels_torch(votes: torch.Tensor, empty_policy: str) -> torch.Tensor:
    """Torch twin of :func:`baselines.voting.weights.decide_labels` (ties -> lowest id)."""
    if empty_policy == "vote":
        return torch.argmax(votes, dim=1).to(torch.uint8)
    occ = votes[:, 1:]
    label = torch.argmax(occ, dim=1).to(torch.uint8) + 1
    total = occ.sum(dim=1)
    occupied = total > votes[:, 0] if empty_policy == "occupancy" else total > 0
    return torch.where(occupied, label, torch.zeros_like(label))


class VotingEngine:
    """Sliding-window voting over one sequence.

    ``frames(i)`` returns the (X, Y, Z) uint8 train-id prediction of scan ``i`` (``0 <= i < N``,
    ``N = len(poses_lidar)``); it is called once per scan per entry into the window.
    """

    def __init__(
        self,
        frames: FrameSource,
        poses_lidar: np.ndarray,
        calib: Calibration | None,
        cfg: VotingConfig,
        device: str | torch.device | None = None,
        block: int = 8,
    ) -> None:
        poses = np.asarray(poses_lidar, np.float64)
        if poses.ndim != 3 or poses.shape[1:] != (4, 4) or len(poses) == 0:
            raise VotingConfigError(f"poses_lidar must be (N, 4, 4) with N >= 1, got {poses.shape}")
        self.frames = frames
        self.cfg = cfg
        self.num_frames = len(poses)
        self.device = torch.device(device) if device is not None else default_device()
        # world = LiDAR frame of scan 0 (keeps coordinates small and the lattice of scan 0)
        rel = np.linalg.inv(poses[0]) @ poses
        self._poses = torch.as_tensor(rel, dtype=torch.float64, device=self.device)
        shape = tuple(cfg.grid_shape)
        self._shape = shape
        self._centres = torch.as_tensor(grid_centres(shape).reshape(-1, 3), dtype=torch.float64, device=self.device)
        w_occ, w_emp = weight_grids(cfg, calib)
        # largest possible vote sum of a cell: window scans x (<= 27 centres of one scan per cell) x max weight
        bound = (2 * cfg.n + 1) * 27 * int(max(w_occ.max(initial=0), w_emp.max(initial=0)))
        self._vdtype = torch.int32 if bound < 2**31 - 1 else torch.int64
        self._w_occ = torch.as_tensor(w_occ.reshape(-1), device=self.device).to(self._vdtype)
        self._w_emp = torch.as_tensor(w_emp.reshape(-1), device=self.device).to(self._vdtype)
        self._origin = torch.tensor(np.array(ORIGIN), dtype=torch.float64, device=self.device)
        C = cfg.num_classes
        # block-sparse world map over the bounding box of every scan's grid
        if block < 1 or block & (block - 1):
            raise VotingConfigError(f"block must be a power of two, got {block}")
        self._B = int(block)
        self._shift = self._B.bit_length() - 1
        self._ar = [torch.arange(n, dtype=torch.float64, device=self.device) for n in shape]
        corners = grid_centres(shape)[[0, -1]][:, [0, -1]][:, :, [0, -1]].reshape(-1, 3)
        wc = np.einsum("nij,kj->nki", rel[:, :3, :3], corners) + rel[:, None, :3, 3]
        lo_cell = np.floor((wc.reshape(-1, 3).min(0) - ORIGIN) / VOXEL_SIZE).astype(np.int64) - 1
        hi_cell = np.floor((wc.reshape(-1, 3).max(0) - ORIGIN) / VOXEL_SIZE).astype(np.int64) + 1
        self._lo_block = torch.as_tensor(np.floor_divide(lo_cell, self._B), device=self.device)
        nb = np.floor_divide(hi_cell, self._B) - np.floor_divide(lo_cell, self._B) + 1
        self._nb = tuple(int(x) for x in nb)
        self._index = torch.full((int(np.prod(nb)),), -1, dtype=torch.int64, device=self.device)
        self._bv = self._B**3
        self._pool = torch.zeros((0, self._bv * C), dtype=self._vdtype, device=self.device)
        self._count = torch.zeros(0, dtype=torch.int64, device=self.device)  # entries per slot
        self._free = torch.zeros(0, dtype=torch.int64, device=self.device)
        self._window: tuple[int, int] | None = None
        self._cache: dict[int, torch.Tensor] = {}

    # -- geometry -------------------------------------------------------------------------------
    def _cells(self, s: int, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(block number, cell offset in block) of the world cells holding the (masked) centres of scan ``s``.

        In voxel units the world position of centre ``idx`` is ``R idx + b`` with
        ``b = R (origin / 0.2 + 0.5) + (t - origin) / 0.2``; it is evaluated separably per axis.
        """
        T = self._poses[s]
        R, t = T[:3, :3], T[:3, 3]
        b = R @ (self._origin / VOXEL_SIZE + 0.5) + (t - self._origin) / VOXEL_SIZE
        X, Y, Z = self._shape
        sh, m = self._shift, self._B - 1
        nb = self._nb
        bflat = torch.zeros((), dtype=torch.int64, device=self.device)
        ooff = torch.zeros((), dtype=torch.int64, device=self.device)
        for d in range(3):  # contiguous per-component arithmetic (much faster than (V, 3) strided views)
            comp = (self._ar[0] * R[d, 0] + b[d]).view(X, 1, 1) + (self._ar[1] * R[d, 1]).view(1, Y, 1) \
                + (self._ar[2] * R[d, 2]).view(1, 1, Z)
            cd = torch.floor(comp).to(torch.int64).view(-1)
            if mask is not None:
                cd = cd[mask]
            bflat = bflat * nb[d] + ((cd >> sh) - self._lo_block[d])
            ooff = (ooff << sh) + (cd & m)
        return bflat, ooff

    def _entries(self, s: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(block number, offset * C + class, weight) of the votes scan ``s`` casts."""
        g = self._cache[s]
        if self.cfg.empty_votes:
            mask = None
            cls = g.to(torch.int64)
            w = torch.where(cls > 0, self._w_occ, self._w_emp)
        else:
            mask = g > 0
            cls = g[mask].to(torch.int64)
            w = self._w_occ[mask]
        blk, off = self._cells(s, mask)
        keep = w != 0
        if not bool(keep.all()):
            blk, off, cls, w = blk[keep], off[keep], cls[keep], w[keep]
        return blk, off * self.cfg.num_classes + cls, w

    def _load(self, s: int) -> None:
        g = check_frame(self.frames(s), s, self.cfg)
        self._cache[s] = torch.as_tensor(np.ascontiguousarray(g).reshape(-1), device=self.device)

    # -- the running map ------------------------------------------------------------------------
    def _alloc(self, blocks: torch.Tensor) -> None:
        """Give a pool slot to every block in ``blocks`` (unique) that has none."""
        new = blocks[self._index[blocks] < 0]
        k = new.numel()
        if k == 0:
            return
        if self._free.numel() < k:
            old = self._pool.shape[0]
            grow = max(k - self._free.numel(), old // 2, 64)
            self._pool = torch.cat([self._pool, self._pool.new_zeros((grow, self._pool.shape[1]))])
            self._count = torch.cat([self._count, self._count.new_zeros(grow)])
            self._free = torch.cat([self._free, torch.arange(old, old + grow, device=self.device)])
        self._index[new] = self._free[:k]
        self._free = self._free[k:]

    def _apply(self, s: int, sign: int) -> None:
        blk, col, w = self._entries(s)
        if sign > 0:
            touched = torch.zeros_like(self._index, dtype=torch.bool)
            touched[blk] = True
            self._alloc(torch.nonzero(touched).squeeze(1))
        slot = self._index[blk]
        self._pool.view(-1).index_add_(0, slot * self._pool.shape[1] + col, w if sign > 0 else -w)
        self._count.index_add_(0, slot, torch.full_like(slot, sign))
        if sign < 0:  # free the slots no scan in the window touches any more (their votes are all 0)
            empty = torch.nonzero(self._count == 0).squeeze(1)
            live = self._index >= 0
            gone = live.clone()
            gone[live] = torch.isin(self._index[live], empty)
            if bool(gone.any()):
                self._free = torch.cat([self._free, self._index[gone]])
                self._index[gone] = -1

    def _update(self, lo: int, hi: int) -> None:
        new = set(range(lo, hi + 1))
        old = set() if self._window is None else set(range(self._window[0], self._window[1] + 1))
        add, rem = sorted(new - old), sorted(old - new)
        if len(add) + len(rem) >= len(new):  # cheaper to rebuild
            self._pool.zero_()
            self._count.zero_()
            self._index.fill_(-1)
            self._free = torch.arange(self._pool.shape[0], device=self.device)
            self._cache.clear()
            add, rem = sorted(new), []
        for s in rem:
            self._apply(s, -1)
            del self._cache[s]
        for s in add:
            self._load(s)
            self._apply(s, +1)
        self._window = (lo, hi)

    def votes(self, target: int) -> torch.Tensor:
        """(V, C) votes read for every voxel of ``target`` (window must be current)."""
        C = self.cfg.num_classes
        blk, off = self._cells(target, None)
        slot = self._index[blk]
        missing = slot < 0  # a block no scan of the window voted into (possible when empty does not vote)
        if self._pool.numel() == 0:
            return torch.zeros((blk.numel(), C), dtype=self._vdtype, device=self.device)
        v = self._pool.view(-1, C).index_select(0, slot.clamp(min=0) * self._bv + off)
        return v.masked_fill_(missing.unsqueeze(1), 0)

    def vote(self, target: int) -> np.ndarray:
        """Refined grid of one target (moves the window)."""
        w = window(target, self.cfg.n, self.num_frames)
        self._update(w.start, w.stop - 1)
        lab = decide_labels_torch(self.votes(target), self.cfg.empty_policy)
        return lab.cpu().numpy().reshape(self._shape)

    def run(self, targets: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame_index, refined uint8 grid)`` for sorted, distinct ``targets``."""
        prev = -1
        for t in targets:
            t = int(t)
            if t <= prev:
                raise VotingConfigError(f"targets must be sorted and distinct; got {t} after {prev}")
            prev = t
            yield t, self.vote(t)

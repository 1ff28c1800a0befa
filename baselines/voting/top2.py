"""Top-2 labels and their vote shares from a :class:`~baselines.voting.VotingEngine` (the ``refine_top2`` hook of
the voting methods, used by the auto-labeling protocol's top-2 pseudo-labels)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

Top2 = tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def engine_top2(engine, targets: Iterable[int]) -> Iterator[Top2]:
    """``(scan, top1, top2, p1, p2)`` per target: the engine's own decision, the best other class, and their
    shares of the window's votes (no votes: ``p1 = 1``, ``p2 = 0``; no second candidate: ``top2 = top1``, ``p2 = 0``)."""
    for t in sorted(int(x) for x in targets):
        top1 = engine.vote(t)                               # moves the window; the method's decision
        v = engine.votes(t).float()                         # (V, C) votes of every voxel
        total = v.sum(1)
        l1 = torch.from_numpy(top1.reshape(-1).astype(np.int64)).to(v.device)
        v1 = v.gather(1, l1[:, None])[:, 0]
        masked = v.scatter(1, l1[:, None], -1.0)
        v2, l2 = masked.max(1)
        v2 = v2.clamp_min(0.0)
        safe = total.clamp_min(1e-12)
        p1 = torch.where(total > 0, v1 / safe, torch.ones_like(v1))
        p2 = torch.where(total > 0, v2 / safe, torch.zeros_like(v2))
        l2 = torch.where(v2 > 0, l2, l1)                    # no second candidate: repeat top-1 with p2 = 0
        shp = top1.shape
        yield (t, top1, l2.to(torch.uint8).cpu().numpy().reshape(shp), p1.cpu().numpy().reshape(shp),
               p2.cpu().numpy().reshape(shp))

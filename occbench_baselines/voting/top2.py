"""Top-2 labels and their vote shares from a :class:`~occbench_baselines.voting.VotingEngine`.

They serve the ``refine_top2`` hook of the voting methods and of ``occfiner``'s stage 2, used by the auto-labeling
protocol's top-2 pseudo-labels.

Consistency: the stored top-1 is the method's decision and is never less probable than the stored top-2. Under
the ``vote`` and ``ignore`` policies the decision is the plurality class, so this holds as is. Under
``occupancy`` it need not: the occupied votes together beat the empty ones, but split among classes, so the
chosen class can have fewer votes than empty (votes empty 3, car 2, road 2: the label is car, 2/7 of the votes,
empty has 3/7). There the runner-up's share is capped at the label's (``p2 = min(p2, p1)``): the pair says the
two are equally likely (``q1 = 0.5``) instead of contradicting the label.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

Top2 = tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def votes_top2(votes: torch.Tensor, top1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(top2, p1, p2)`` of every row of ``votes`` (V, C) given the decided labels ``top1`` (V,) long.

    ``top2``: the best class other than ``top1`` (lowest id on ties); ``p1``, ``p2``: the two classes' shares of
    the row's votes, ``p2`` capped at ``p1`` (see the module docstring). No votes: ``p1 = 1``, ``p2 = 0``; no
    second candidate: ``top2 = top1``, ``p2 = 0``.
    """
    v = votes.float()
    total = v.sum(1)
    l1 = top1.to(v.device).long()
    v1 = v.gather(1, l1[:, None])[:, 0]
    masked = v.scatter(1, l1[:, None], -1.0)
    v2, l2 = masked.max(1)
    v2 = torch.minimum(v2.clamp_min(0.0), v1)  # the label is never out-voted by the stored runner-up
    safe = total.clamp_min(1e-12)
    p1 = torch.where(total > 0, v1 / safe, torch.ones_like(v1))
    p2 = torch.where(total > 0, v2 / safe, torch.zeros_like(v2))
    l2 = torch.where(v2 > 0, l2, l1)  # no second candidate: repeat top-1 with p2 = 0
    return l2, p1, p2


def engine_top2(engine, targets: Iterable[int], before=None) -> Iterator[Top2]:
    """``(scan, top1, top2, p1, p2)`` per target: the engine's own decision, the best other class, and their
    shares of the window's votes (:func:`votes_top2`). ``before(t)``, if given, is called before each target."""
    for t in sorted(int(x) for x in targets):
        if before is not None:
            before(t)
        top1 = engine.vote(t)  # moves the window; the method's decision
        v = engine.votes(t)  # (V, C) votes of every voxel
        l2, p1, p2 = votes_top2(v, torch.from_numpy(top1.reshape(-1).astype(np.int64)))
        shp = top1.shape
        yield (
            t,
            top1,
            l2.to(torch.uint8).cpu().numpy().reshape(shp),
            p1.cpu().numpy().reshape(shp),
            p2.cpu().numpy().reshape(shp),
        )

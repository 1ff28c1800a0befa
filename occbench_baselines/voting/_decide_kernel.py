"""The class decision of one cell from its vote row, shared by the compiled kernels of both voting engines.

``rows[r, 1:]`` are the cell's occupied-class votes, ``empty`` its empty votes. ``policy``: 0 vote (argmax over
empty and classes), 1 occupancy (occupied iff the occupied votes beat the empty ones, then argmax over 1..C-1),
2 ignore (occupied iff any occupied vote). Ties go to the lowest train id, empty first, as in
:func:`occbench_baselines.voting.weights.decide_labels`.
"""

from __future__ import annotations

from typing import Any

# numba's dispatchers are typed loosely (a call's signature is only known once compiled): Any
njit: Any
try:  # numba is a declared dependency; without it the engines use their torch code paths
    from numba import njit
except ImportError:  # pragma: no cover - exercised only where numba is missing
    njit = None


def row_label(rows, r, empty, policy):  # pragma: no cover - compiled below
    C = rows.shape[1]
    lab = 1
    best = rows[r, 1]
    tot = best
    for q in range(2, C):
        vq = rows[r, q]
        tot += vq
        if vq > best:
            best = vq
            lab = q
    if policy == 0:
        return lab if best > empty else 0
    if policy == 1:
        return lab if tot > empty else 0
    return lab if tot > 0 else 0


if njit is not None:
    row_label = njit(cache=True, nogil=True, boundscheck=False, inline="always")(row_label)

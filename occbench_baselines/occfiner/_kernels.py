"""Compiled (numba) CPU kernels of stage-1 inference: the input skip and the last step of a scan's averaged
softmax.

``add_gain(lg, cls, gain)``: the input skip in place, one pass over a slab's classes.
``add_argmax(a, b, out)``: ``out[r] = argmax_c (a[r, c] + b[r, c])`` over the rows of two float32 (R, C)
arrays, in one pass. It equals ``(a + b).argmax(-1)`` of torch bit for bit: each sum is one IEEE float32
addition (no fused or reordered arithmetic: numba compiles without fast-math), and ties go to the first
maximal class, NaN counting as the maximum, like ``torch.argmax``. Why numba: torch's add and its argmax
over rows of 20 classes are two more passes over the 168 MB of a scan's probabilities, ~0.3 s a scan on one
core; this is one pass with nothing written but the labels. Without numba, :func:`add_argmax_torch` is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# numba's dispatchers are typed loosely (a call's signature is only known once compiled): Any
njit: Any
try:  # numba is a declared dependency; without it inference uses torch's add and argmax
    from numba import njit
except ImportError:  # pragma: no cover - exercised only where numba is missing
    njit = None


def _add_argmax_py(a, b, out):  # pragma: no cover - compiled below
    R, C = a.shape
    for r in range(R):
        best = a[r, 0] + b[r, 0]
        k = 0
        if best == best:  # not NaN: look for a larger value (or a NaN, which wins)
            for c in range(1, C):
                v = a[r, c] + b[r, c]
                if v > best or v != v:
                    best = v
                    k = c
                    if v != v:
                        break
        out[r] = k


def _add_gain_py(lg, cls, gain):  # pragma: no cover - compiled below
    R, C = lg.shape
    for r in range(R):
        c = cls[r]
        if c < C:
            lg[r, c] = lg[r, c] + gain[c]


AVAILABLE = njit is not None
if AVAILABLE:
    _jit = njit(cache=True, nogil=True, boundscheck=False)
    _add_argmax = _jit(_add_argmax_py)
    _add_gain = _jit(_add_gain_py)


def add_gain(lg: torch.Tensor, cls: torch.Tensor, gain: torch.Tensor) -> bool:
    """In place, ``lg[..., c] += gain[c]`` at the input class ``c = cls[...]`` of every cell (none where
    ``cls >= C``): the input skip of :class:`OccFinerNet` on contiguous float32 CPU logits (..., C) and uint8
    classes. The same single float32 addition per cell as the torch code (elsewhere that adds +-0, which
    changes no value). Returns False, doing nothing, where the kernel does not apply."""
    if (
        not AVAILABLE
        or lg.device.type != "cpu"
        or lg.dtype != torch.float32
        or cls.dtype != torch.uint8
        or gain.dtype != torch.float32
        or not lg.is_contiguous()
    ):
        return False
    C = lg.shape[-1]
    _add_gain(lg.numpy().reshape(-1, C), cls.contiguous().numpy().reshape(-1), gain.detach().contiguous().numpy())
    return True


def add_argmax_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a + b).argmax(-1)`` as uint8 (the reference of :func:`add_argmax`; any device)."""
    return (a + b).argmax(-1).to(torch.uint8)


def add_argmax(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """uint8 labels ``argmax_c (a + b)`` over the last dimension of two float32 tensors of one shape."""
    if not AVAILABLE or a.device.type != "cpu" or a.dtype != torch.float32 or b.dtype != torch.float32:
        return add_argmax_torch(a, b)
    C = a.shape[-1]
    out = np.empty(a.shape[:-1], np.uint8)
    _add_argmax(a.contiguous().numpy().reshape(-1, C), b.contiguous().numpy().reshape(-1, C), out.reshape(-1))
    return torch.from_numpy(out)

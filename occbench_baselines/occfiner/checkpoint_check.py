"""What an OccFiner checkpoint's configuration entries may hold, checked before a model is built from them.

``torch.load(weights_only=True)`` (:func:`occbench.checkpoints.load_checkpoint_file`) makes sure a checkpoint runs
no code; this makes sure the plain values it holds are of the right type and within sane bounds (a window of
``local = 1e9`` scans, or a billion-channel layer, would exhaust memory before any error). Every problem names the
file and the entry.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from occbench.errors import FormatError

# entry -> (low, high) for integers
WINDOW_BOUNDS = {
    "local": (1, 64),
    "reference": (0, 64),
    "reference_radius": (0, 10_000),
    "reference_stride": (1, 1_000),
}
MODEL_INT_BOUNDS = {
    "num_classes": (2, 256),
    "height": (1, 256),
    "embed_dim": (1, 4096),
    "hidden": (1, 8192),
    "heads": (1, 64),
    "depth": (1, 64),
    "patch": (1, 63),
    "patch_stride": (1, 63),
    "patch_padding": (0, 63),
    "window": (1, 256),
    "pillar": (1, 256),
    "pillar_heads": (1, 64),
    "ffn_hidden": (1, 32768),
}
MODEL_FLOATS = ("input_skip", "coord_scale", "voxel_size")


def _int_in(v: Any, lo: int, hi: int) -> bool:
    return type(v) is int and lo <= v <= hi


def _problem(path: Path, entry: str, expected: str, v: Any) -> FormatError:
    s = repr(v)
    return FormatError(path, f"'{entry}': {expected}", s if len(s) <= 60 else s[:57] + "...")


def check_occfiner_checkpoint(path: str | Path, ck: Any) -> None:
    """Raise :class:`FormatError` naming ``path`` and the entry if ``ck`` is not an OccFiner checkpoint of sane
    values: a dict with ``model_config`` (known keys, integers within bounds, finite numbers), ``model`` (a dict of
    tensors) and an optional ``window_config`` (integers within :data:`WINDOW_BOUNDS`)."""
    import torch

    path = Path(path)
    if not isinstance(ck, dict):
        raise FormatError(path, "an OccFiner checkpoint (a dict)", f"a {type(ck).__name__}")
    for key in ("model_config", "model"):
        if not isinstance(ck.get(key), dict):
            raise _problem(path, key, "an object", ck.get(key))
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in ck["model"].items()):
        raise FormatError(path, "'model': a state dict (names -> tensors)", "other entries")
    mc = ck["model_config"]
    from dataclasses import fields

    from occbench_baselines.occfiner.model import OccFinerConfig

    known = {f.name for f in fields(OccFinerConfig)}
    unknown = sorted(str(k) for k in mc if k not in known)
    if unknown:
        raise FormatError(
            path, f"'model_config': keys of {', '.join(sorted(known))}", f"unknown {', '.join(unknown)[:80]}"
        )
    for k, (lo, hi) in MODEL_INT_BOUNDS.items():
        if k in mc and not _int_in(mc[k], lo, hi):
            raise _problem(path, f"model_config.{k}", f"an integer in [{lo}, {hi}]", mc[k])
    for k in MODEL_FLOATS:
        if k in mc and not (type(mc[k]) in (int, float) and math.isfinite(mc[k]) and abs(mc[k]) <= 1e6):
            raise _problem(path, f"model_config.{k}", "a finite number", mc[k])
    if "enc_channels" in mc and not (
        isinstance(mc["enc_channels"], (list, tuple))
        and 1 <= len(mc["enc_channels"]) <= 8
        and all(_int_in(c, 1, 4096) for c in mc["enc_channels"])
    ):
        raise _problem(path, "model_config.enc_channels", "1-8 integers in [1, 4096]", mc["enc_channels"])
    if "origin" in mc and not (
        isinstance(mc["origin"], (list, tuple))
        and len(mc["origin"]) == 3
        and all(type(c) in (int, float) and math.isfinite(c) for c in mc["origin"])
    ):
        raise _problem(path, "model_config.origin", "3 finite numbers", mc["origin"])
    if "skip" in mc and type(mc["skip"]) is not bool:
        raise _problem(path, "model_config.skip", "true or false", mc["skip"])
    wc = ck.get("window_config")
    if wc is not None:
        if not isinstance(wc, dict) or not set(wc) <= set(WINDOW_BOUNDS):
            raise _problem(path, "window_config", f"null or an object of {', '.join(WINDOW_BOUNDS)}", wc)
        for k, v in wc.items():
            lo, hi = WINDOW_BOUNDS[k]
            if not _int_in(v, lo, hi):
                raise _problem(path, f"window_config.{k}", f"an integer in [{lo}, {hi}]", v)

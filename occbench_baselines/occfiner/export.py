"""Export a training checkpoint to a small inference checkpoint.

The files in ``occbench_baselines/occfiner/checkpoints/`` are such checkpoints.

The export keeps the model configuration, the **fp32** weights (exact; the small configuration is 0.32 M
parameters, about 1.3 MB), the window configuration it was trained with and a short provenance record
(dataset, onboard model, epochs, last training metrics, command). Optimizer state and RNG states are
dropped. :func:`occbench_baselines.occfiner.method.load_checkpoint` and
:func:`occbench_baselines.occfiner.train.load_model` read both kinds.
"""

from __future__ import annotations

import io
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from occbench.checkpoints import load_checkpoint_file
from occbench.io.atomic import atomic_write_bytes
from occbench_baselines.occfiner.windows import WindowConfig

FORMAT = "occfiner-export-1"


def export_checkpoint(
    src: str | Path, dst: str | Path, window_cfg: WindowConfig | None = None, meta: dict[str, Any] | None = None
) -> Path:
    """Write ``dst`` from the training checkpoint ``src`` (e.g. ``<run>/checkpoint-last.pt``); returns ``dst``."""
    ck = load_checkpoint_file(src, map_location="cpu")
    history = list(ck.get("history") or [])
    out = {
        "format": FORMAT,
        "model_config": ck["model_config"],
        "model": {k: v.detach().clone().contiguous() for k, v in ck["model"].items()},
        "window_config": asdict(window_cfg) if window_cfg is not None else ck.get("window_config"),
        "train_config": ck.get("train_config"),
        "epochs": len(history),
        "last_epoch_metrics": history[-1] if history else None,
        "meta": dict(meta or {}),
    }
    buf = io.BytesIO()
    torch.save(out, buf)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dst, buf.getbuffer())
    return dst

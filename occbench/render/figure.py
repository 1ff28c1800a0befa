"""Writing figures: deterministic PNGs (no software or date stamp, fixed dpi), legends, and the ``panel`` helper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PNG_DATA_KEY = "occbench-data"  # PNG text chunk holding the digest of the numbers a plot was made from


def pyplot():
    """matplotlib.pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: float | None = None, data_digest: str | None = None) -> Path:
    """Save a matplotlib figure as PNG atomically (temporary file + rename) and close it. The PNG carries no
    software name or date, so the same figure gives the same bytes with the same matplotlib; ``data_digest`` is
    stored as the ``occbench-data`` text chunk (what ``occbench leaderboard --check`` compares)."""
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    meta: dict[str, str | None] = {"Software": None}
    if data_digest is not None:
        meta[PNG_DATA_KEY] = data_digest
    fig.savefig(tmp, dpi=dpi if dpi is not None else fig.dpi, metadata=meta, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def png_text(path: str | Path) -> dict[str, str]:
    """The tEXt chunks of a PNG file (key -> text); a file that is not a PNG raises ValueError naming it."""
    import struct
    import zlib

    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: expected a PNG file, found {data[:8]!r}")
    out, pos = {}, 8
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + n]
        if kind == b"tEXt" and b"\0" in body:
            k, v = body.split(b"\0", 1)
            out[k.decode("latin-1")] = v.decode("latin-1")
        elif kind == b"zTXt" and b"\0" in body:
            k, v = body.split(b"\0", 1)
            out[k.decode("latin-1")] = zlib.decompress(v[1:]).decode("latin-1")
        elif kind == b"IEND":
            break
        pos += 12 + n
    return out


def class_legend(
    fig: Any,
    ids: list[int],
    names: list[str],
    colors: np.ndarray,
    *,
    ncol: int,
    fontsize: float,
    y: float,
    title: str | None = None,
) -> Any:
    """A legend of coloured squares (one per id) across the bottom of ``fig`` (its top edge at ``y``, figure
    fraction); returns it."""
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=tuple(np.asarray(colors[i]) / 255), edgecolor="0.3", linewidth=0.4, label=names[i]) for i in ids
    ]
    return fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, y),
        ncol=max(1, ncol),
        fontsize=fontsize,
        frameon=False,
        handlelength=1.0,
        handleheight=1.0,
        handletextpad=0.4,
        columnspacing=0.9,
        borderaxespad=0.0,
        title=title,
        title_fontsize=fontsize,
    )


def panel(images: list[np.ndarray], titles: list[str], path: str | Path, scale: int = 2) -> Path:
    """Save images side by side with titles as one PNG."""
    plt = pyplot()
    k = len(images)
    fig, axes = plt.subplots(1, k, figsize=(2.6 * k * scale / 2, 2.9 * scale / 2), dpi=128)
    for ax, im, t in zip(np.atleast_1d(axes), images, titles):
        ax.imshow(im, interpolation="nearest")
        ax.set_title(t, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, path)

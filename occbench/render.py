"""Pictures: bird's-eye views of SSC grids, error maps, IoU/mIoU against distance.

BEV convention: the image looks down on the LiDAR frame with x (forward) pointing up and y (left)
pointing left, so the car sits at the bottom centre; each pixel shows the class of the highest
non-empty voxel of its column (SemanticKITTI colours). Ignored voxels never colour a pixel.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from occbench.labels import IGNORE, LabelMap
from occbench.metrics.worldmetric import decode_world_keys  # noqa: F401  (public here too)

EMPTY_RGB = (255, 255, 255)
UNKNOWN_RGB = (200, 200, 200)


def top_labels(grid: np.ndarray, ignore: int = IGNORE) -> np.ndarray:
    """(X, Y) label of the highest voxel that is neither empty nor ignored (0 if none)."""
    g = np.asarray(grid)
    occ = (g != 0) & (g != ignore)
    z = g.shape[2] - 1 - np.argmax(occ[:, :, ::-1], axis=2)
    top = np.take_along_axis(g, z[:, :, None], axis=2)[:, :, 0]
    return np.where(occ.any(axis=2), top, 0).astype(np.uint8)


def _to_image(xy: np.ndarray) -> np.ndarray:
    """(X, Y, ...) array indexed [x, y] -> image rows/cols (x up, y left)."""
    return xy[::-1, ::-1]


def bev_image(grid: np.ndarray, label_map: LabelMap, unknown_mask: np.ndarray | None = None) -> np.ndarray:
    """(256, 256, 3) uint8 RGB bird's-eye view; columns in ``unknown_mask`` (X, Y) are grey."""
    top = top_labels(grid)
    pal = label_map.colors.copy()
    pal[0] = EMPTY_RGB
    rgb = pal[top]
    if unknown_mask is not None:
        rgb[unknown_mask] = UNKNOWN_RGB
    return _to_image(rgb)


def error_image(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per BEV column, the share of evaluated voxels whose predicted label is wrong (white 0 -> red 1).

    Columns with no evaluated voxel (all ignore/invalid) are grey.
    """
    valid = gt != IGNORE
    wrong = (pred != gt) & valid
    n = valid.sum(axis=2)
    share = np.where(n > 0, wrong.sum(axis=2) / np.maximum(n, 1), 0.0)
    rgb = np.empty(share.shape + (3,), np.uint8)
    rgb[..., 0] = 255
    rgb[..., 1] = (255 * (1 - share)).astype(np.uint8)
    rgb[..., 2] = (255 * (1 - share)).astype(np.uint8)
    rgb[n == 0] = UNKNOWN_RGB
    return _to_image(rgb)


def _save(fig: Any, path: str | Path) -> Path:
    """Save a matplotlib figure atomically (temporary file + rename) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def panel(images: list[np.ndarray], titles: list[str], path: str | Path, scale: int = 2) -> Path:
    """Save images side by side with titles as one PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(images)
    fig, axes = plt.subplots(1, k, figsize=(2.6 * k * scale / 2, 2.9 * scale / 2), dpi=128)
    for ax, im, t in zip(np.atleast_1d(axes), images, titles):
        ax.imshow(im, interpolation="nearest")
        ax.set_title(t, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def distance_plot(results: list[tuple[str, dict[str, Any]]], path: str | Path) -> Path:
    """IoU and mIoU against distance (the results' ``metrics.distance`` curves) for several methods."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=120)
    for label, res in results:
        cur = res["metrics"]["distance"]
        edges = np.asarray(cur["bin_edges_m"], float)
        x = (edges[:-1] + edges[1:]) / 2
        as_float = lambda v: np.array([np.nan if e is None else e for e in v], float)  # noqa: E731  (null = no voxel)
        a1.plot(x, 100 * as_float(cur["iou"]), marker=".", label=label)
        a2.plot(x, 100 * as_float(cur["miou"]), marker=".", label=label)
    for a, t in ((a1, "completion IoU (%)"), (a2, "mIoU (%)")):
        a.set_xlabel("distance from the sensor (m)")
        a.set_ylabel(t)
        a.grid(alpha=0.3)
    a2.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def city_map_images(metric: Any, label_map: LabelMap) -> tuple[np.ndarray, np.ndarray]:
    """Bird's-eye views (world x up, y left) of the ground-truth and predicted static maps of a
    :class:`~occbench.metrics.CityMapMetric`: each pixel shows the highest static voxel of its column."""
    keys, g, p = metric.maps()
    ijk = decode_world_keys(keys)
    static_ids = np.asarray(metric.protocol.static_ids if hasattr(metric.protocol, "static_ids")
                            else [label_map.class_names.index(n) for n in metric.protocol.static_classes])
    lo = ijk.min(axis=0) if len(ijk) else np.zeros(3, np.int64)
    hi = ijk.max(axis=0) if len(ijk) else np.zeros(3, np.int64)
    H, W = int(hi[0] - lo[0] + 1), int(hi[1] - lo[1] + 1)
    out = []
    pal = label_map.colors.copy()
    for cat in (g, p):
        img = np.full((H, W, 3), 255, np.uint8)
        m = cat > 0  # category 0 = not static
        if m.any():
            x, y, z = (ijk[m] - lo).T
            cls = static_ids[cat[m] - 1]
            order = np.argsort(z, kind="stable")  # later (higher) voxels overwrite lower ones
            img[x[order], y[order]] = pal[cls[order]]
        out.append(img[::-1, ::-1])
    return out[0], out[1]

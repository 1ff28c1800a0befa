"""Pictures: bird's-eye views of SSC grids, error maps, IoU/mIoU against distance.

BEV convention: the image looks down on the LiDAR frame with x (forward) pointing up and y (left)
pointing left, so the car sits at the bottom centre; each pixel shows the class of the highest
non-empty voxel of its column (SemanticKITTI colours). Ignored voxels never colour a pixel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from occbench.labels import IGNORE, LabelMap
from occbench.metrics.worldmetric import decode_world_keys  # noqa: F401  (public here too)

EMPTY_RGB = (255, 255, 255)
UNKNOWN_RGB = (200, 200, 200)  # columns without an evaluated voxel, in the share-of-wrong-voxels map (error_image)
NOT_EVALUATED_RGB = (236, 236, 236)  # the same columns in the class and error views of the frame figure


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


def bev_image(
    grid: np.ndarray,
    label_map: LabelMap,
    unknown_mask: np.ndarray | None = None,
    unknown_rgb: tuple[int, int, int] = UNKNOWN_RGB,
) -> np.ndarray:
    """(256, 256, 3) uint8 RGB bird's-eye view; columns in ``unknown_mask`` (X, Y) are ``unknown_rgb``."""
    top = top_labels(grid)
    pal = label_map.colors.copy()
    pal[0] = EMPTY_RGB
    rgb = pal[top]
    if unknown_mask is not None:
        rgb[unknown_mask] = unknown_rgb
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


# error categories of a voxel (evaluated voxels only: ground truth neither ignored nor invalid)
ERR_NONE, ERR_CORRECT, ERR_WRONG, ERR_MISSED, ERR_HALLUCINATED = 0, 1, 2, 3, 4
ERROR_NAMES = {ERR_CORRECT: "correct", ERR_WRONG: "wrong class", ERR_MISSED: "missed", ERR_HALLUCINATED: "hallucinated"}
ERROR_NOTE = "missed: occupied, predicted empty; hallucinated: empty, predicted occupied"
ERROR_RGB = {
    ERR_CORRECT: (170, 170, 170),
    ERR_WRONG: (255, 140, 0),
    ERR_MISSED: (30, 110, 255),
    ERR_HALLUCINATED: (225, 20, 60),
}


def error_palette() -> np.ndarray:
    """(256, 3) uint8 palette of the error categories (index 0 and unused ids white)."""
    pal = np.full((256, 3), 255, np.uint8)
    for k, c in ERROR_RGB.items():
        pal[k] = c
    return pal


def error_labels(pred: np.ndarray, gt: np.ndarray, ignore: int = IGNORE) -> np.ndarray:
    """(X, Y, Z) uint8 error category of every voxel: correct / wrong class (both occupied, classes differ) /
    missed (occupied in the ground truth, empty in the prediction) / hallucinated (the reverse); 0 where both are
    empty or the ground truth is not evaluated (ignored or invalid)."""
    p, g = np.asarray(pred), np.asarray(gt)
    ev = g != ignore
    po, go = (p != 0) & (p != ignore), g != 0
    out = np.zeros(g.shape, np.uint8)
    out[ev & po & go & (p == g)] = ERR_CORRECT
    out[ev & po & go & (p != g)] = ERR_WRONG
    out[ev & ~po & go] = ERR_MISSED
    out[ev & po & ~go] = ERR_HALLUCINATED
    return out


def error_bev(pred: np.ndarray, gt: np.ndarray, unknown_mask: np.ndarray | None = None) -> np.ndarray:
    """(256, 256, 3) bird's-eye view of :func:`error_labels`: each pixel shows the category of the highest voxel of
    its column that is occupied in the prediction or the ground truth (columns in ``unknown_mask`` light grey)."""
    top = top_labels(error_labels(pred, gt))
    rgb = error_palette()[top]
    if unknown_mask is not None:
        rgb[unknown_mask] = NOT_EVALUATED_RGB
    return _to_image(rgb)


def city_map_images(metric: Any, label_map: LabelMap) -> tuple[np.ndarray, np.ndarray]:
    """Bird's-eye views (world x up, y left) of the ground-truth and predicted static maps of a
    :class:`~occbench.metrics.CityMapMetric`: each pixel shows the highest static voxel of its column."""
    keys, g, p = metric.maps()
    ijk = decode_world_keys(keys)
    static_ids = np.asarray(
        metric.protocol.static_ids
        if hasattr(metric.protocol, "static_ids")
        else [label_map.class_names.index(n) for n in metric.protocol.static_classes]
    )
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

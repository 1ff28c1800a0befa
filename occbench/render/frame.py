"""The frame figure: ground truth and each prediction side by side.

One column each (same camera), one row per view:

- ``3d``: shaded 3D voxel view (:mod:`occbench.render.voxels3d`),
- ``bev``: bird's-eye view (the class of the highest voxel of each column),
- ``error``: bird's-eye error view of each prediction (correct / wrong class / missed / hallucinated),
- ``error3d``: the same error categories as a 3D voxel view.

The range crops (12.8 / 25.6 / 51.2 m) are drawn on every bird's-eye panel and on the ground of the 3D panels;
below the panels, a legend lists the classes that appear in the picture (and the error colours when an error view
is shown). Sizes are physical: ``width`` inches at ``dpi``, fonts in points, so a figure placed at that width in a
paper reads as it was drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from occbench.grid import KITTI, Grid
from occbench.labels import IGNORE, LabelMap
from occbench.render.bev import (
    ERROR_NAMES,
    ERROR_NOTE,
    NOT_EVALUATED_RGB,
    UNKNOWN_RGB,
    bev_image,
    error_bev,
    error_labels,
    error_palette,
    top_labels,
)
from occbench.render.figure import class_legend, pyplot, save_figure
from occbench.render.voxels3d import Camera, Projection, render_voxels

VIEWS = ("3d", "bev", "error", "error3d")
VIEW_TITLES = {"3d": "3D view", "bev": "bird's-eye", "error": "errors (BEV)", "error3d": "errors (3D)"}
CROP_STYLE: dict[str, Any] = {"color": "black", "linewidth": 0.6, "linestyle": (0, (3, 2))}


@dataclass
class FramePicture:
    """What was drawn: the figure's path and the class ids / error categories its legend lists (= those shown)."""

    path: Path
    classes: list[int] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)
    size_px: tuple[int, int] = (0, 0)
    legend: list[str] = field(default_factory=list)  # the texts of the class legend, in order


def _bev_crops(ax, grid: Grid, fontsize: float) -> None:
    """Rectangles of the range crops on a bird's-eye panel (image rows = 255 - x, cols = 255 - y)."""
    from matplotlib.patches import Rectangle

    X, Y = grid.shape[:2]
    for r in grid.ranges:
        sx, sy = grid.range_slices(r)
        x0, x1, y0, y1 = sx.start, sx.stop, sy.start, sy.stop
        ax.add_patch(Rectangle((Y - y1 - 0.5, X - x1 - 0.5), y1 - y0, x1 - x0, fill=False, **CROP_STYLE))
        ax.text(
            Y - y0 - 0.5 - 2,
            X - x1 - 0.5 + 2,
            f"{r:g} m",
            fontsize=fontsize,
            va="top",
            ha="right",
            color="black",
            bbox={"facecolor": "white", "alpha": 0.7, "pad": 0.3, "linewidth": 0},
        )


def _ground_level(gt: np.ndarray) -> float:
    """The height (voxel units) of the ground: the 5th percentile of the lowest occupied voxel of each column."""
    occ = (gt != 0) & (gt != IGNORE)
    cols = occ.any(axis=2)
    if not cols.any():
        return 0.0
    low = np.argmax(occ, axis=2)[cols]
    return float(np.percentile(low, 5)) + 1.0


def _3d_crops(ax, proj, grid: Grid, z: float) -> None:
    """The range crops' outlines on the ground of a 3D panel (drawn over the voxels)."""
    for r in grid.ranges:
        sx, sy = grid.range_slices(r)
        c = np.array(
            [
                [sx.start, sy.start, z],
                [sx.stop, sy.start, z],
                [sx.stop, sy.stop, z],
                [sx.start, sy.stop, z],
                [sx.start, sy.start, z],
            ],
            float,
        )
        pts = proj.pixel(c)
        ax.plot(pts[:, 0], pts[:, 1], **CROP_STYLE)


ERROR_COLOUR_WORDS = {1: "grey", 2: "orange", 3: "blue", 4: "red"}


def _colour_word(i: int) -> str:
    return ERROR_COLOUR_WORDS.get(i, "")


def _error_legend(ax, ids: list[int], pal: np.ndarray, fontsize: float, crops: bool) -> None:
    """The error colours, one per line, inside an otherwise empty panel."""
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=pal[i] / 255, edgecolor="0.3", linewidth=0.4, label=ERROR_NAMES[i]) for i in ids]
    ax.legend(
        handles=handles,
        loc="center",
        fontsize=fontsize * 0.9,
        frameon=False,
        title="errors",
        title_fontsize=fontsize * 0.9,
        handlelength=1.0,
        handleheight=1.0,
    )


def frame_figure(
    gt: np.ndarray,
    predictions: list[tuple[str, np.ndarray]],
    label_map: LabelMap,
    path: str | Path,
    *,
    views: tuple[str, ...] = ("3d", "bev", "error"),
    title: str | None = None,
    grid: Grid = KITTI,
    camera: Camera | None = None,
    width: float = 7.0,
    dpi: int = 200,
    fontsize: float = 7.0,
    crops: bool = True,
) -> FramePicture:
    """Draw the frame figure (module docstring) and save it as PNG; ``gt`` and the predictions are train-id grids
    (gt 255 = not evaluated)."""
    for v in views:
        if v not in VIEWS:
            raise ValueError(f"unknown view {v!r}; expected some of {', '.join(VIEWS)}")
    if not views:
        raise ValueError("at least one view is required")
    plt = pyplot()
    gt = np.asarray(gt)
    unknown = (gt == IGNORE).all(axis=2)
    columns = [("ground truth", gt)] + list(predictions)
    ncol = len(columns)
    # 3D panels are rendered so that one voxel is about one output pixel per 256 columns of panel width
    panel_px = width * dpi / ncol
    cam = camera or Camera(px=max(1.5, round(2 * panel_px / 330) / 2))
    shown_classes: set[int] = set()
    shown_errors: set[int] = set()
    err_pal = error_palette()
    cells: dict[tuple[str, int], tuple[np.ndarray, Projection | None]] = {}
    ground = _ground_level(gt)
    for ci, (_, grid_c) in enumerate(columns):
        is_gt = ci == 0
        for v in views:
            if v == "bev":
                img = bev_image(grid_c, label_map, unknown if is_gt else None, NOT_EVALUATED_RGB)
                top = top_labels(grid_c)
                if is_gt:
                    top = np.where(unknown, 0, top)
                shown_classes |= set(np.unique(top).tolist())
                cells[(v, ci)] = (img, None)
            elif v == "3d":
                img, shown, proj = render_voxels(grid_c, label_map.colors, cam)
                seen = np.unique(shown[shown >= 0])
                shown_classes |= set(np.unique(np.asarray(grid_c).reshape(-1)[seen]).tolist())
                cells[(v, ci)] = (img, proj)
            elif v == "error" and not is_gt:
                img = error_bev(grid_c, gt, unknown)
                top = top_labels(error_labels(grid_c, gt))
                shown_errors |= set(np.unique(np.where(unknown, 0, top)).tolist())
                cells[(v, ci)] = (img, None)
            elif v == "error3d" and not is_gt:
                err = error_labels(grid_c, gt)
                img, shown, proj = render_voxels(err, err_pal, cam)
                seen = np.unique(shown[shown >= 0])
                shown_errors |= set(np.unique(err.reshape(-1)[seen]).tolist())
                cells[(v, ci)] = (img, proj)
    shown_classes -= {0, IGNORE}
    shown_errors -= {0}
    # layout: heights from the images' aspect ratios; legend rows below
    heights = []
    for v in views:
        first = next(c[0] for (vv, _), c in cells.items() if vv == v) if any(vv == v for vv, _ in cells) else None
        heights.append(first.shape[0] / first.shape[1] if first is not None else 1.0)
    col_w = width / ncol
    title_h = (fontsize * 1.6 / 72) * (2 if title else 1)
    n_cls = len(shown_classes)
    longest = max([len(label_map.class_names[i]) for i in shown_classes - {0, IGNORE}] + [4])
    legend_cols = max(1, int(width * 72 / (0.9 * fontsize * (0.55 * longest + 2.8))))
    legend_rows = -(-n_cls // legend_cols) + 1.2 * (1 + (width < 5))  # classes, then the notes (wrapped when narrow)
    legend_h = legend_rows * fontsize * 1.75 / 72 + 0.06
    body_h = sum(h * col_w for h in heights)
    fig_h = title_h + body_h + legend_h
    fig = plt.figure(figsize=(width, fig_h), dpi=dpi)
    top_y = 1 - title_h / fig_h
    row_label_w = 0.0
    placed_err_legend = False
    y = top_y
    for ri, v in enumerate(views):
        h = heights[ri] * col_w / fig_h
        y -= h
        for ci, (name, _) in enumerate(columns):
            gap = 0.025 / ncol  # a thin white gap between columns
            ax = fig.add_axes((row_label_w + ci / ncol + gap / 2, y, 1 / ncol - gap, h))
            ax.set_axis_off()
            if (v, ci) not in cells:
                if ci == 0 and v in ("error", "error3d") and not placed_err_legend and shown_errors:
                    _error_legend(ax, sorted(shown_errors), err_pal, fontsize, crops)
                    placed_err_legend = True
                continue
            img, cell_proj = cells[(v, ci)]
            ax.imshow(img, interpolation="antialiased" if v in ("3d", "error3d") else "nearest")
            ax.set_xlim(-0.5, img.shape[1] - 0.5)
            ax.set_ylim(img.shape[0] - 0.5, -0.5)
            if crops and v in ("bev", "error"):
                _bev_crops(ax, grid, fontsize * 0.75)
            if crops and v in ("3d", "error3d"):
                _3d_crops(ax, cell_proj, grid, ground)
            label = VIEW_TITLES[v] if ci == 0 or (v in ("error", "error3d") and ci == 1) else None
            if label:
                ax.text(
                    0.01,
                    0.99,
                    label,
                    transform=ax.transAxes,
                    fontsize=fontsize * 0.85,
                    va="top",
                    ha="left",
                    style="italic",
                    bbox={"facecolor": "white", "alpha": 0.8, "pad": 0.5, "linewidth": 0},
                )
        if ri == 0:
            for ci, (name, _) in enumerate(columns):
                fit = min(1.0, 0.95 * col_w * 72 / (0.6 * fontsize * max(len(name), 1)))  # long names shrink to fit
                fig.text(
                    (ci + 0.5) / ncol,
                    top_y + 0.15 * fontsize / 72 / fig_h,
                    name,
                    ha="center",
                    va="bottom",
                    fontsize=fontsize * max(fit, 0.6),
                    fontweight="bold" if ci == 0 else None,
                )
    if title:
        fig.text(0.5, 1 - 0.2 * fontsize / 72 / fig_h, title, ha="center", va="top", fontsize=fontsize)
    ly = legend_h / fig_h
    ids = sorted(shown_classes)
    legend_texts: list[str] = []
    if ids:
        leg = class_legend(
            fig, ids, list(label_map.class_names), label_map.colors, ncol=legend_cols, fontsize=fontsize * 0.9, y=ly
        )
        legend_texts = [t.get_text() for t in leg.get_texts()]
    note = []
    if "bev" in views or "error" in views:
        note.append("light grey: not evaluated (never observed)")
    if crops:
        note.append("dashed: range crops " + " / ".join(f"{r:g}" for r in grid.ranges) + " m")
    if shown_errors and not placed_err_legend:
        note.append("errors: " + ", ".join(f"{ERROR_NAMES[i]} ({_colour_word(i)})" for i in sorted(shown_errors)))
    if shown_errors:
        note.append(ERROR_NOTE)
    if note:
        import textwrap

        text = "\n".join(textwrap.wrap("; ".join(note), int(width * 72 / (0.8 * fontsize * 0.52))))
        fig.text(
            0.5,
            0.35 * fontsize / 72 / fig_h,
            text,
            ha="center",
            va="bottom",
            fontsize=fontsize * 0.8,
            color="0.25",
            linespacing=1.3,
        )
    out = save_figure(fig, path, dpi=dpi)
    from PIL import Image

    with Image.open(out) as im:
        size = im.size
    return FramePicture(out, ids, sorted(shown_errors), size, legend_texts)


__all__ = ["FramePicture", "frame_figure", "UNKNOWN_RGB"]

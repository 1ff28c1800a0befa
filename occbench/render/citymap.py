"""City maps: a bird's-eye map of a whole sequence, streamed frame by frame from saved predictions.

Each frame votes, per column of its grid, for the *static* class of the highest static voxel among the column's
evaluated voxels (ground truth neither ignored nor invalid), or for "no static voxel"; the column's centre is placed
in the world with the frame's pose, into a map pixel of ``resolution`` metres. The prediction votes only in the
columns where the ground truth votes, so both maps cover the same ground. A pixel shows the category with the most
votes (ties to the lower: "no static voxel", then the lower class id), as the city-level static-class map metric
labels world voxels (paper Appendix B, Fig. 7), here per column. The error map compares the two maps per pixel.

Memory is bounded by the area driven, not by the number of frames: votes live in tiles of 256 x 256 pixels
allocated when a frame first touches them (2 maps x 12 categories x 2 bytes per pixel on SemanticKITTI: 3 MB a
tile), and one frame is held at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from occbench.grid import KITTI, Grid
from occbench.labels import IGNORE, LabelMap
from occbench.render.bev import (
    ERR_CORRECT,
    ERR_HALLUCINATED,
    ERR_MISSED,
    ERR_WRONG,
    ERROR_NAMES,
    ERROR_NOTE,
    error_palette,
)
from occbench.render.figure import class_legend, pyplot, save_figure

TILE = 256


def static_top(grid: np.ndarray, gt: np.ndarray, static_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) category (0 = no static voxel, i = static class ``static_ids[i - 1]``) of the highest static voxel of
    each column among its evaluated voxels (``gt`` != 255), and the (X, Y) mask of columns with an evaluated voxel."""
    g = np.asarray(grid)
    lut = np.zeros(256, np.uint8)
    lut[np.asarray(static_ids)] = np.arange(1, len(static_ids) + 1)
    ev = np.asarray(gt) != IGNORE
    cat = np.where(ev, lut[g], 0)
    occ = cat > 0
    z = g.shape[2] - 1 - np.argmax(occ[:, :, ::-1], axis=2)
    top = np.take_along_axis(cat, z[:, :, None], axis=2)[:, :, 0]
    return np.where(occ.any(axis=2), top, 0).astype(np.uint8), ev.any(axis=2)


@dataclass
class CityCanvas:
    """Vote tiles of the ground-truth and predicted maps (module docstring)."""

    n_cat: int
    resolution: float = 0.2
    grid: Grid = KITTI
    tiles: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    n_frames: int = 0

    def __post_init__(self) -> None:
        xc, yc = self.grid.column_centres()
        self._cols = np.stack(np.broadcast_arrays(xc, yc), axis=-1).reshape(-1, 2)  # (X*Y, 2) metres, sensor frame

    def add(self, gt_cat: np.ndarray, pred_cat: np.ndarray, evaluated: np.ndarray, pose: np.ndarray) -> None:
        """Add one frame's column categories (``static_top`` of the ground truth and of the prediction)."""
        m = np.asarray(evaluated).reshape(-1)
        if not m.any():
            self.n_frames += 1
            return
        xy = self._cols[m]
        P = np.asarray(pose, float)
        w = xy @ P[:2, :2].T + P[:2, 3]
        pix = np.floor(w / self.resolution).astype(np.int64)
        g = np.asarray(gt_cat).reshape(-1)[m].astype(np.int64)
        p = np.asarray(pred_cat).reshape(-1)[m].astype(np.int64)
        tk = pix // TILE
        local = pix - tk * TILE
        key = tk[:, 0] * (1 << 32) + tk[:, 1]
        order = np.argsort(key, kind="stable")
        key, local, g, p, tk = key[order], local[order], g[order], p[order], tk[order]
        bounds = np.flatnonzero(np.diff(key)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, key.size]):
            k = (int(tk[lo, 0]), int(tk[lo, 1]))
            t = self.tiles.get(k)
            if t is None:
                t = self.tiles[k] = np.zeros((2, TILE * TILE, self.n_cat), np.uint16)
            flat = local[lo:hi, 0] * TILE + local[lo:hi, 1]
            np.add.at(t[0], (flat, g[lo:hi]), 1)
            np.add.at(t[1], (flat, p[lo:hi]), 1)
        self.n_frames += 1

    def maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
        """Dense (H, W) maps over the tiles' bounding box: ground-truth category, predicted category (255 where no
        vote), the per-pixel vote count, and the (x, y) pixel index of the map's corner (x rows, y columns)."""
        if not self.tiles:
            z = np.zeros((1, 1), np.uint8)
            return z + 255, z + 255, z.astype(np.int64), (0, 0)
        ks = np.array(list(self.tiles))
        lo, hi = ks.min(axis=0), ks.max(axis=0)
        H, W = int(hi[0] - lo[0] + 1) * TILE, int(hi[1] - lo[1] + 1) * TILE
        g = np.full((H, W), 255, np.uint8)
        p = np.full((H, W), 255, np.uint8)
        n = np.zeros((H, W), np.int32)
        for (a, b), t in sorted(self.tiles.items()):
            r0, c0 = (a - lo[0]) * TILE, (b - lo[1]) * TILE
            votes = t[0].sum(axis=1).reshape(TILE, TILE)
            has = votes > 0
            for out, v in ((g, t[0]), (p, t[1])):
                cat = np.argmax(v, axis=1).astype(np.uint8).reshape(TILE, TILE)  # ties: the lower category
                out[r0 : r0 + TILE, c0 : c0 + TILE] = np.where(has, cat, 255)
            n[r0 : r0 + TILE, c0 : c0 + TILE] = votes
        return g, p, n, (int(lo[0]) * TILE, int(lo[1]) * TILE)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tiles.values())


def error_map(g: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per pixel error category of two category maps (255 = no vote -> 0)."""
    out = np.zeros(g.shape, np.uint8)
    seen = g != 255
    out[seen & (g > 0) & (p == g)] = ERR_CORRECT
    out[seen & (g > 0) & (p > 0) & (p != g)] = ERR_WRONG
    out[seen & (g > 0) & (p == 0)] = ERR_MISSED
    out[seen & (g == 0) & (p > 0)] = ERR_HALLUCINATED
    return out


def _nice_length(metres: float) -> float:
    for v in (1000, 500, 200, 100, 50, 20, 10, 5):
        if v <= metres:
            return float(v)
    return 5.0


@dataclass
class CityPicture:
    path: Path
    classes: list[int]
    errors: list[int]
    size_px: tuple[int, int]
    resolution: float


def city_figure(
    canvas: CityCanvas,
    trajectory: np.ndarray,
    label_map: LabelMap,
    static_ids: np.ndarray,
    path: str | Path,
    *,
    show: tuple[str, ...] = ("gt", "pred", "error"),
    titles: dict[str, str] | None = None,
    title: str | None = None,
    margin_m: float = 5.0,
    dpi: int = 100,
) -> CityPicture:
    """Draw the maps of ``canvas`` at their native resolution (one map pixel = one image pixel), cropped to the
    drive, side by side (stacked when the drive is wider than high), with the trajectory, a scale bar in metres and a
    legend of the classes (or error categories) shown."""
    plt = pyplot()
    g, p, _, (x0, y0) = canvas.maps()
    res = canvas.resolution
    seen = g != 255
    if seen.any():
        rows, cols = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
        mpx = int(round(margin_m / res))
        g = np.pad(g, mpx, constant_values=255)  # a white margin around the drive
        p = np.pad(p, mpx, constant_values=255)
        r0, r1 = rows[0], rows[-1] + 2 * mpx + 1
        c0, c1 = cols[0], cols[-1] + 2 * mpx + 1
        g, p = g[r0:r1, c0:c1], p[r0:r1, c0:c1]
        x0, y0 = x0 + r0 - mpx, y0 + c0 - mpx
    cls_pal = np.full((256, 3), 255, np.uint8)
    cls_pal[1 : len(static_ids) + 1] = label_map.colors[np.asarray(static_ids)]
    images, shown_cls, shown_err = [], set(), set()
    err = error_map(g, p) if "error" in show else None
    for what in show:
        if what in ("gt", "pred"):
            m = g if what == "gt" else p
            img = cls_pal[m]
            shown_cls |= set(np.unique(m[(m != 255) & (m > 0)]).tolist())
        elif what == "error" and err is not None:  # err is computed whenever "error" is shown
            img = error_palette()[err]
            shown_err |= set(np.unique(err[err > 0]).tolist())
        else:
            raise ValueError(f"unknown city map panel {what!r}; expected gt, pred or error")
        # world x to the right, world y up: the map array is indexed [x, y]
        images.append(np.ascontiguousarray(np.transpose(img, (1, 0, 2))[::-1]))
    Hm, Wm = images[0].shape[:2]
    n = len(images)
    # side by side or stacked: whichever gives the figure an aspect nearer 4:3
    side = abs(np.log(Wm / (n * Hm) / 1.33)) < abs(np.log(n * Wm / Hm / 1.33))  # True: stacked
    fs = max(8.0, 0.011 * max(Wm, Hm) * 72 / dpi)
    pt = dpi / 72  # pixels per point
    gap = int(fs * 2.6 * pt)
    content_w = Wm if side else n * Wm + (n - 1) * gap // 3
    content_h = n * Hm + (n - 1) * gap if side else Hm
    fig_w_px = max(content_w, int(78 * fs * pt))  # room for a legend of 6 columns and the note
    legend_rows = 1.5 + (len(shown_cls) + 5) // 6 + (1 if shown_err else 0)
    legend_px = int(legend_rows * fs * 1.8 * pt)
    title_px = int(fs * 2.4 * pt) if title else int(fs * pt)
    fig_h_px = title_px + content_h + legend_px
    fig = plt.figure(figsize=(fig_w_px / dpi, fig_h_px / dpi), dpi=dpi)
    H_in = fig_h_px / dpi
    legend_h = legend_px / dpi
    left0 = (fig_w_px - content_w) / 2
    traj = np.asarray(trajectory, float)
    tc = traj[:, 0] / res - x0  # map rows (x) -> image columns
    tr = traj[:, 1] / res - y0  # map cols (y) -> image rows (flipped)
    names = {"gt": "ground truth", "pred": "prediction", "error": "errors"}
    names.update(titles or {})
    for i, (what, img) in enumerate(zip(show, images)):
        if side:
            left, bottom = left0 / fig_w_px, (legend_px + (n - 1 - i) * (Hm + gap)) / fig_h_px
        else:
            left, bottom = (left0 + i * (Wm + gap // 3)) / fig_w_px, legend_px / fig_h_px
        w, h = Wm / fig_w_px, Hm / fig_h_px
        ax = fig.add_axes((left, bottom, w, h))
        ax.imshow(img, interpolation="nearest")
        ax.set_xlim(-0.5, Wm - 0.5)
        ax.set_ylim(Hm - 0.5, -0.5)
        ax.plot(tc, Hm - 1 - tr + 0.5, color="black", linewidth=max(0.8, fs / 10), alpha=0.8)
        ax.plot(tc[:1], Hm - 1 - tr[:1] + 0.5, marker="o", color="black", markersize=fs / 2.5)
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_linewidth(0.5)
            s.set_color("0.6")
        ax.text(
            0.01,
            0.99,
            names[what],
            transform=ax.transAxes,
            fontsize=fs,
            va="top",
            ha="left",
            bbox={"facecolor": "white", "alpha": 0.85, "pad": 1.5, "linewidth": 0},
        )
        if i == 0:  # scale bar
            L = _nice_length(0.25 * Wm * res)
            xb, yb = 0.03 * Wm, Hm - 0.05 * Hm
            ax.plot([xb, xb + L / res], [yb, yb], color="black", linewidth=fs / 3, solid_capstyle="butt")
            ax.text(
                xb + L / res / 2,
                yb - 0.01 * Hm,
                f"{L:g} m",
                ha="center",
                va="bottom",
                fontsize=fs,
                bbox={"facecolor": "white", "alpha": 0.85, "pad": 1.0, "linewidth": 0},
            )
    if title:
        fig.text(0.5, 1 - 0.3 * fs / 72 / H_in, title, ha="center", va="top", fontsize=fs)
    ly = legend_h / H_in
    cls_ids = sorted(shown_cls)
    if cls_ids:
        class_legend(
            fig,
            [int(static_ids[c - 1]) for c in cls_ids],
            list(label_map.class_names),
            label_map.colors,
            ncol=6,
            fontsize=fs,
            y=ly - 0.2 * fs / 72 / H_in,
        )
    if shown_err:
        ey = ly - ((len(cls_ids) + 5) // 6 + 0.4) * fs * 1.8 / 72 / H_in if cls_ids else ly
        class_legend(
            fig,
            sorted(shown_err),
            [ERROR_NAMES.get(i, "") for i in range(256)],
            error_palette(),
            ncol=4,
            fontsize=fs,
            y=ey,
        )
    note = f"static classes, top view; {res:g} m per pixel; black line: trajectory (dot: start)"
    if shown_err:
        note += "; errors: " + ERROR_NOTE.replace("occupied", "static").replace("empty", "no static voxel")
    fig.text(0.5, 0.2 * fs / 72 / H_in, note, ha="center", va="bottom", fontsize=fs * 0.85, color="0.3")
    out = save_figure(fig, path, dpi=dpi)
    from PIL import Image

    with Image.open(out) as im:
        size = im.size
    return CityPicture(out, [int(static_ids[c - 1]) for c in cls_ids], sorted(shown_err), size, res)

"""Plots of results files: IoU / mIoU against distance, per-class IoU bars, the auto-labeling curve.

Every plot is a pure function of the numbers it shows: :func:`plot_digest` hashes them (with the plot's kind and
labels), and the PNG carries the digest in its ``occbench-data`` text chunk, so ``occbench leaderboard --check`` can
tell whether a committed plot still shows the committed results without comparing PNG bytes (which differ across
matplotlib and FreeType versions). With one matplotlib the bytes are reproducible: no date or software stamp, fixed
size and dpi, the default style (``matplotlib.rcdefaults()``) and the DejaVu Sans font shipped with matplotlib.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from occbench.render.figure import pyplot, save_figure

PLOT_VERSION = 1  # bump when the look of the plots changes: every committed plot is then stale
DPI = 200
FONT = 7.0


def _legend_rows(n: int) -> int:
    """Rows of a figure legend of ``n`` entries, 5 to a row (the legends under the axes)."""
    return 1 + (n - 1) // 5


def plot_digest(kind: str, data: Any) -> str:
    """sha256 (first 16 hex digits) of the plot kind, :data:`PLOT_VERSION` and the plotted numbers (JSON)."""
    blob = json.dumps(
        {"kind": kind, "version": PLOT_VERSION, "data": data}, sort_keys=True, separators=(",", ":"), allow_nan=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _style():
    plt = pyplot()
    plt.rcdefaults()
    plt.rcParams.update(
        {
            "font.size": FONT,
            "font.family": "DejaVu Sans",
            "axes.titlesize": FONT,
            "axes.labelsize": FONT,
            "xtick.labelsize": FONT - 1,
            "ytick.labelsize": FONT - 1,
            "legend.fontsize": FONT - 1,
            "axes.linewidth": 0.6,
            "lines.linewidth": 1.1,
            "lines.markersize": 3,
            "svg.hashsalt": "occbench",
        }
    )
    return plt


def _floats(v: list) -> list[float | None]:
    return [None if e is None else round(float(e), 8) for e in v]


def distance_data(results: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The numbers of a distance plot: bin centres and IoU / mIoU per bin of each (label, results)."""
    out = []
    for label, res in results:
        cur = res["metrics"]["distance"]
        edges = np.asarray(cur["bin_edges_m"], float)
        out.append(
            {
                "label": label,
                "x": _floats(((edges[:-1] + edges[1:]) / 2).tolist()),
                "iou": _floats(cur["iou"]),
                "miou": _floats(cur["miou"]),
            }
        )
    return {"series": out}


def distance_plot(
    results: list[tuple[str, dict[str, Any]]], path: str | Path, title: str | None = None, width: float = 7.0
) -> Path:
    """IoU and mIoU against distance from the sensor (the results' ``metrics.distance`` curves), one line per
    (label, results); the range crops' distances are marked."""
    data = distance_data(results)
    plt = _style()
    fig, axes = plt.subplots(1, 2, figsize=(width, width * 0.4), dpi=DPI)
    arr = lambda v: np.array([np.nan if e is None else e for e in v], float)  # noqa: E731  (null = no voxel)
    for s in data["series"]:
        for a, key in zip(axes, ("iou", "miou")):
            a.plot(s["x"], 100 * arr(s[key]), marker="o", label=s["label"])
    for a, t in zip(axes, ("completion IoU (%)", "mIoU (%)")):
        a.set_xlabel("distance from the sensor (m)")
        a.set_ylabel(t)
        a.grid(alpha=0.3, linewidth=0.4)
        a.set_ylim(bottom=0, top=a.get_ylim()[1] * 1.08)
        for r in (12.8, 25.6, 51.2):
            a.axvline(r, color="0.5", linewidth=0.5, linestyle=":")
            a.text(r, a.get_ylim()[1], f"{r:g} m", ha="center", va="bottom", fontsize=FONT - 1.5, color="0.35")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), frameon=False, bbox_to_anchor=(0.5, 0.0))
    if title:
        fig.suptitle(title, fontsize=FONT)
    fig.tight_layout(rect=(0, 0.09 * _legend_rows(len(labels)), 1, 1))
    return save_figure(fig, path, dpi=DPI, data_digest=plot_digest("distance", {**data, "title": title}))


def class_data(results: list[tuple[str, dict[str, Any]]], range_key: str) -> dict[str, Any]:
    classes = [n for n in results[0][1]["metrics"]["ssc"][range_key].get("per_class_iou", {}) if n != "empty"]
    return {
        "range": range_key,
        "classes": classes,
        "series": [
            {"label": lab, "iou": _floats([r["metrics"]["ssc"][range_key]["per_class_iou"].get(n) for n in classes])}
            for lab, r in results
        ],
    }


def class_bars(
    results: list[tuple[str, dict[str, Any]]],
    path: str | Path,
    range_key: str = "51.2",
    title: str | None = None,
    width: float = 7.0,
) -> Path:
    """Per-class IoU at ``range_key`` metres, grouped bars (one colour per method)."""
    data = class_data(results, range_key)
    plt = _style()
    n, k = len(data["classes"]), len(data["series"])
    rows = _legend_rows(k)  # the legend goes under the axes (above them it covers the tallest bars)
    fig, ax = plt.subplots(figsize=(width, width * (0.34 + 0.03 * rows)), dpi=DPI)
    bw = 0.8 / max(k, 1)
    x = np.arange(n)
    for i, s in enumerate(data["series"]):
        v = np.array([np.nan if e is None else 100 * e for e in s["iou"]], float)
        ax.bar(x - 0.4 + bw * (i + 0.5), v, bw, label=s["label"], linewidth=0)
    ax.set_xticks(x)
    ax.set_xticklabels(data["classes"], rotation=40, ha="right", rotation_mode="anchor")
    ax.set_ylabel(f"IoU at {range_key} m (%)")
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3, linewidth=0.4)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(k, 5), frameon=False, bbox_to_anchor=(0.5, 0.0))
    if title:
        ax.set_title(title)
    fig.tight_layout(rect=(0, 0.08 * rows, 1, 1))
    return save_figure(fig, path, dpi=DPI, data_digest=plot_digest("classes", {**data, "title": title}))


def autolabel_data(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per training-label source: mean and std over seeds of IoU / mIoU at each range, and the pseudo-labels'
    own mIoU (51.2 m, against the ground truth they replace)."""
    from occbench.autolabel.table import aggregate
    from occbench.results import RANGES

    series = []
    for name, g in aggregate(results).items():
        ent: dict[str, Any] = {"name": name, "label": g["label"], "seeds": sorted(g["seeds"]), "ranges": list(RANGES)}
        for key in ("iou", "miou"):
            vals = np.array([[r["metrics"]["ssc"][rg][key] for rg in RANGES] for r in g["runs"]], float)
            ent[key] = _floats(vals.mean(axis=0).tolist())
            ent[key + "_std"] = _floats(vals.std(axis=0).tolist())
        q = (g["pl"] or {}).get("quality")
        ent["pl_miou"] = None if not q else round(float(q[RANGES[-1]]["miou"]), 8)
        series.append(ent)
    return {"series": series}


def autolabel_plot(
    results: list[dict[str, Any]], path: str | Path, title: str | None = None, width: float = 7.0
) -> Path:
    """The auto-labeling curve: the retrained student's IoU and mIoU against the range crop, one line per source
    of training labels (mean ± std over seeds), and its mIoU at the largest range against the quality of the
    pseudo-labels it was trained on."""
    data = autolabel_data(results)
    plt = _style()
    fig, axes = plt.subplots(1, 3, figsize=(width, width * 0.33), dpi=DPI)
    for i, s in enumerate(data["series"]):
        x = np.asarray(s["ranges"], float)
        c = f"C{i}"
        for a, key in zip(axes[:2], ("iou", "miou")):
            a.errorbar(
                x,
                100 * np.asarray(s[key], float),
                yerr=100 * np.asarray(s[key + "_std"], float),
                marker="o",
                color=c,
                capsize=2,
                label=s["label"],
            )
        if s["pl_miou"] is not None:
            axes[2].errorbar(
                100 * s["pl_miou"], 100 * s["miou"][-1], yerr=100 * s["miou_std"][-1], marker="o", color=c, capsize=2
            )
        else:
            axes[2].axhline(100 * s["miou"][-1], color=c, linestyle="--", linewidth=0.8)
    for a, t in zip(axes[:2], ("student IoU (%)", "student mIoU (%)")):
        a.set_xlabel("range crop (m)")
        a.set_ylabel(t)
        a.set_xticks([12.8, 25.6, 51.2])
        a.grid(alpha=0.3, linewidth=0.4)
    axes[2].set_xlabel("pseudo-label mIoU at 51.2 m (%)")
    axes[2].set_ylabel("student mIoU at 51.2 m (%)")
    axes[2].grid(alpha=0.3, linewidth=0.4)
    axes[2].text(
        0.03,
        0.97,
        "dashed: GT-Train only\n(no pseudo-labels)",
        transform=axes[2].transAxes,
        va="top",
        fontsize=FONT - 1.5,
    )
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False, bbox_to_anchor=(0.5, 0.0))
    if title:
        fig.suptitle(title, fontsize=FONT)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return save_figure(fig, path, dpi=DPI, data_digest=plot_digest("autolabel", {**data, "title": title}))


def autolabel_curve_data(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The pseudo-label curve (:mod:`occbench.autolabel.curve`): per line (GT-only base, oracle, each source and
    format) the added frames and mean / std over seeds of IoU and mIoU at the largest range."""
    from occbench.autolabel.curve import curve_rows
    from occbench.results import RANGES

    last = RANGES[-1]
    lines: dict[str, dict[str, Any]] = {}
    for r in curve_rows(results):
        name = {"gt": "GT only", "oracle": "oracle: the added frames' true labels"}.get(
            r["kind"], f"PL {r['format']} ({r['source']})"
        )
        ent = lines.setdefault(name, {"name": name, "kind": r["kind"], "x": [], "gt_frames": r["gt_frames"]})
        ent["x"].append(r["added_frames"])
        for m in ("iou", "miou"):
            v = np.asarray(r[f"{m}_{last}"], float)
            ent.setdefault(m, []).append(round(float(v.mean()), 8))
            ent.setdefault(m + "_std", []).append(round(float(v.std()), 8))
    return {"range": last, "lines": list(lines.values())}


def autolabel_curve_plot(
    results: list[dict[str, Any]], path: str | Path, title: str | None = None, width: float = 7.0
) -> Path:
    """Student IoU and mIoU at the largest range against the number of frames added to the GT set: one line per
    pseudo-label format, the oracle line (the same frames with their human labels) and GT-only (dashed), mean ±
    std over seeds."""
    data = autolabel_curve_data(results)
    plt = _style()
    fig, axes = plt.subplots(1, 2, figsize=(width, width * 0.4), dpi=DPI)
    base = next((ln for ln in data["lines"] if ln["kind"] == "gt"), None)
    styles = {"oracle": ("k", "s", "-")}
    colours = iter(["C0", "C3", "C2", "C4", "C1"])
    for ln in data["lines"]:
        if ln["kind"] == "gt":
            continue
        c, mk, ls = styles.get(ln["kind"]) or (next(colours), "o", "-")
        x, first = list(ln["x"]), 0
        for a, key in zip(axes, ("iou", "miou")):
            y, e = list(ln[key]), list(ln[key + "_std"])
            if base is not None:  # every line starts at the GT-only point (no frames added)
                x0, y, e = [0, *x], [base[key][0], *y], [base[key + "_std"][0], *e]
            else:
                x0 = x
            a.errorbar(
                x0,
                100 * np.asarray(y),
                yerr=100 * np.asarray(e),
                color=c,
                marker=mk,
                linestyle=ls,
                capsize=2,
                label=ln["name"] if first == 0 else None,
            )
        first += 1
    for a, key, t in zip(axes, ("iou", "miou"), ("IoU", "mIoU")):
        if base is not None:
            a.axhline(
                100 * base[key][0],
                color="0.4",
                linestyle="--",
                linewidth=0.8,
                label=f"GT only ({base['gt_frames']} frames)" if key == "iou" else None,
            )
        a.set_xlabel(f"frames added to the {base['gt_frames'] if base else ''} GT frames")
        a.set_xticks(sorted({0, *(x for ln in data["lines"] for x in ln["x"])}))
        a.set_ylabel(f"student {t} at {data['range']} m (%)")
        a.grid(alpha=0.3, linewidth=0.4)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False, bbox_to_anchor=(0.5, 0.0))
    if title:
        fig.suptitle(title, fontsize=FONT)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    return save_figure(fig, path, dpi=DPI, data_digest=plot_digest("autolabel-curve", {**data, "title": title}))

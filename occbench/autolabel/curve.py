"""The pseudo-label curve's rows and table (``occbench autolabel --curve``; docs/autolabel.md "The curve").

A curve's results (one document per (row, seed)) are grouped into rows by (source, stored format, GT frames,
pseudo-labelled or oracle frames). The GT line is GT-only plus the oracle rows (the GT set and the pseudo-labelled
frames with their human labels): a row's "worth" is the number of human-labelled frames at which that line,
interpolated linearly, reaches the row's mIoU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from occbench.results import RANGES

KINDS = ("gt", "oracle", "pl")


def is_curve(results: list[dict[str, Any]]) -> bool:
    """Results of ``run_curve``: fixed-step training and an oracle row."""
    return any(r["header"]["source"]["name"] == "oracle" for r in results) and all(
        r["header"]["autolabel"]["hyper_parameters"].get("steps", 0) > 0 for r in results
    )


def _key(r: dict[str, Any]) -> tuple[str, str, str, int, int]:
    h = r["header"]
    name = h["source"]["name"]
    kind = "gt" if name == "gt" else "oracle" if name == "oracle" else "pl"
    tf = h["training_frames"]
    extra = tf.get("oracle", 0) if kind == "oracle" else tf.get("pl", 0)
    fmt = (h["pseudo_labels"] or {}).get("format", "–") if kind == "pl" else "–"
    return kind, name, fmt, int(tf["gt"]), int(extra)


def curve_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (kind, source, format, GT frames, added frames), sorted GT-only, then by added frames with the
    oracle first and top-1 before top-2; each with per-seed scores and their mean / std."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(_key(r), []).append(r)
    rows = []
    for (kind, name, fmt, n_gt, n_extra), runs in groups.items():
        runs = sorted(runs, key=lambda r: r["header"]["seed"])
        row: dict[str, Any] = {
            "kind": kind,
            "source": name,
            "format": fmt,
            "gt_frames": n_gt,
            "added_frames": n_extra,
            "seeds": [r["header"]["seed"] for r in runs],
            "steps": sorted({r["header"]["training"].get("steps") for r in runs}, key=str),
            "pl": runs[0]["header"]["pseudo_labels"],
        }
        for rg in RANGES:
            for m in ("iou", "miou"):
                v = [float(r["metrics"]["ssc"][rg][m]) for r in runs]
                row[f"{m}_{rg}"] = v
        rows.append(row)
    order = {"gt": 0, "oracle": 1, "pl": 2}
    rows.sort(key=lambda x: (x["kind"] != "gt", x["added_frames"], order[x["kind"]], x["format"], x["source"]))
    return rows


def gt_line(rows: list[dict[str, Any]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(human-labelled frames, mean score) of GT-only and the oracle rows, sorted by frames."""
    pts = sorted(
        (r["gt_frames"] + r["added_frames"], float(np.mean(r[metric]))) for r in rows if r["kind"] in ("gt", "oracle")
    )
    return np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)


def worth(rows: list[dict[str, Any]], value: float, metric: str) -> str:
    """How many human-labelled frames give ``value`` on the GT line (linear interpolation), as text."""
    x, y = gt_line(rows, metric)
    if len(x) < 2 or not np.all(np.diff(y) > 0):  # a line that does not rise cannot be inverted
        i = int(np.argmin(np.abs(y - value))) if len(x) else None
        return "–" if i is None else f"≈{x[i]:.0f} (GT line not monotone)"
    if value < y[0]:
        return f"< {x[0]:.0f}"
    if value > y[-1]:
        return f"> {x[-1]:.0f}"
    return f"{float(np.interp(value, y, x)):.0f}"


def _fmt(v: list[float]) -> str:
    m = 100 * float(np.mean(v))
    return f"{m:.2f}" if len(v) == 1 else f"{m:.2f} ± {100 * float(np.std(v)):.2f}"


def _delta(v: list[float], base: list[float]) -> str:
    """Mean difference, marked ``*`` where every seed of the row lies beyond every seed of GT-only (same sign)."""
    d = 100 * (float(np.mean(v)) - float(np.mean(base)))
    sep = min(v) > max(base) or max(v) < min(base)
    return f"{d:+.2f}{' *' if sep else ''}"


def curve_delta(row: dict[str, Any], rows: list[dict[str, Any]], metric: str) -> str:
    """``row``'s difference against GT only in ``metric`` as the table shows it ("–" without a GT-only row)."""
    base = next((r for r in rows if r["kind"] == "gt"), None)
    return "–" if base is None or row is base else _delta(row[metric], base[metric])


def curve_table(rows: list[dict[str, Any]]) -> list[str]:
    """The curve as a markdown table (numbers in %)."""
    from occbench.page_text import md_text

    base = next((r for r in rows if r["kind"] == "gt"), None)
    last = RANGES[-1]
    head = ["Training labels", "GT frames", "added frames", "format", "seeds", "steps", "PL KiB/frame"]
    head += [f"PL mIoU {last} (vs GT)"]
    for rg in RANGES:
        head += [f"IoU {rg}", f"mIoU {rg}"]
    head += [f"ΔIoU {last}", f"ΔmIoU {last}", f"worth (GT frames, mIoU {last})"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r["kind"] == "gt":
            label = "GT only"
        elif r["kind"] == "oracle":
            label = "GT + oracle (true labels of the PL frames)"
        else:
            label = f"GT + PL ({md_text(r['source'])})"
        pl = r["pl"] or {}
        q = pl.get("quality")
        cells = [
            label,
            str(r["gt_frames"]),
            str(r["added_frames"]),
            r["format"] if r["kind"] == "pl" else "–",
            ",".join(map(str, r["seeds"])),
            ",".join(map(str, r["steps"])),
            f"{pl['disk']['bytes_per_frame'] / 1024:.1f}" if pl.get("disk") else "–",
            f"{100 * q[last]['miou']:.2f}" if q else "–",
        ]
        for rg in RANGES:
            cells += [_fmt(r[f"iou_{rg}"]), _fmt(r[f"miou_{rg}"])]
        if base is None or r is base:
            cells += ["–", "–", "–"]
        else:
            cells += [
                _delta(r[f"iou_{last}"], base[f"iou_{last}"]),
                _delta(r[f"miou_{last}"], base[f"miou_{last}"]),
                "–" if r["kind"] != "pl" else worth(rows, float(np.mean(r[f"miou_{last}"])), f"miou_{last}"),
            ]
        out.append("| " + " | ".join(cells) + " |")
    return out

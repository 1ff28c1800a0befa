"""Terminal tables of a results document (percent, two decimals, like the papers)."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def range_table(results: dict[str, Any]) -> str:
    ssc = results["metrics"]["ssc"]
    rows = [[f"{r} m", pct(v["iou"]), pct(v["precision"]), pct(v["recall"]), pct(v["miou"])] for r, v in ssc.items()]
    return tabulate(rows, headers=["range", "IoU", "precision", "recall", "mIoU"], tablefmt="github")


def class_table(results: dict[str, Any]) -> str:
    ssc = results["metrics"]["ssc"]
    ranges = list(ssc)
    names = list(next(iter(ssc.values()))["per_class_iou"])
    rows = [[n] + [pct(ssc[r]["per_class_iou"][n]) for r in ranges] for n in names]
    return tabulate(rows, headers=["class"] + [f"IoU {r} m" for r in ranges], tablefmt="github")


def extras_table(results: dict[str, Any]) -> str:
    m = results["metrics"]
    out = []
    city = m.get("city_map")
    if city:
        out.append(f"city-level static map: IoU {pct(city.get('iou'))}  mIoU {pct(city.get('miou'))}")
    tc = m.get("temporal_consistency")
    if tc:
        if tc.get("pair_agreement") is not None:
            out.append(f"temporal consistency (pair agreement of static world voxels): {pct(tc['pair_agreement'])}")
    return "\n".join(out)


def full_report(results: dict[str, Any]) -> str:
    h = results.get("header", results)
    ds = h.get("dataset", {})
    what = (
        f"predictions: {h['predictions']}" if h.get("predictions") is not None else f"{h.get('method', {}).get('name')}"
    )
    source = "" if h.get("predictions") is not None else f" (onboard: {ds.get('onboard')})"
    title = (
        f"{what} on {ds.get('dataset')} {ds.get('split')}{source}"
        f"{' [SYNTHETIC mini data]' if ds.get('synthetic') else ''}"
    )
    part = h.get("partial")
    if part:
        if part.get("scans"):
            limit = f", at most {part['max_frames']}" if part.get("max_frames") else ""
            title += (
                f"\nPARTIAL RUN: {part.get('frames')} chosen frames (--frames {part['scans']}{limit}) of the "
                f"split's {part.get('frames_in_split')}; not comparable with full results"
            )
        else:
            title += (
                f"\nPARTIAL RUN: the first {part.get('frames')} of the split's {part.get('frames_in_split')} "
                "frames (--max-frames); not comparable with full results"
            )
    parts = [title, "", range_table(results), "", class_table(results)]
    ex = extras_table(results)
    if ex:
        parts += ["", ex]
    return "\n".join(parts)

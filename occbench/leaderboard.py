"""Markdown leaderboards rendered from results JSON files.

One page per dataset/split (``leaderboards/<dataset>-<split>.md``), one section per onboard model with
rows per method. Measured rows come only from results files; numbers reported in the OccFiner paper
come only from ``leaderboards/reported/*.json`` and are rendered in their own marked section.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from tabulate import tabulate

RANGES = ("12.8", "25.6", "51.2")
TC_FRACTIONS = ("pair_agreement", "modal_agreement", "all_agree")
# Order of reference methods in tables; others follow alphabetically.
METHOD_ORDER = {"onboard": 0, "average-fusion": 1, "occfiner-voting": 2, "occfiner-stage1": 3, "occfiner": 4}
DATASET_TITLES = {"occbench-mini": "occbench-mini (SYNTHETIC)", "semantickitti": "SemanticKITTI", "sscbench-kitti360": "SSCBench-KITTI360"}


def load_results(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for p in sorted(Path(folder).glob("*.json")):
        d = json.loads(p.read_text())
        if d.get("schema") != "occbench.results":
            raise ValueError(f"{p}: not an occbench results file (schema != 'occbench.results')")
        part = d.get("header", {}).get("partial")
        if part:
            raise ValueError(f"{p}: results of a partial run ({part.get('frames')} of {part.get('frames_in_split')} frames, "
                             "evaluate --max-frames) cannot be a leaderboard row; run without --max-frames")
        out.append((p, d))
    return out


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _gain(x: float | None, base: float | None) -> str:
    if x is None or not base:
        return "–"
    return f"{100 * (x - base) / base:+.1f}%"


def _method_key(name: str) -> tuple[int, str]:
    return (METHOD_ORDER.get(name, 99), name)


def _section(onboard: str, rows: list[tuple[Path, dict[str, Any]]], rel: Path) -> list[str]:
    rows = sorted(rows, key=lambda r: _method_key(r[1]["header"]["method"]["name"]))
    base = next((d for _, d in rows if d["header"]["method"]["name"] == "onboard"), None)
    base_miou = base["metrics"]["ssc"]["51.2"]["miou"] if base else None
    lines = [f"### Onboard model: `{onboard}`", ""]
    table = []
    for p, d in rows:
        m = d["metrics"]["ssc"]
        table.append([f"[{d['header']['method']['name']}]({rel / p.name})"]
                     + [_pct(m[r]["iou"]) for r in RANGES] + [_pct(m[r]["miou"]) for r in RANGES]
                     + [_gain(m["51.2"]["miou"], base_miou)])
    lines.append(tabulate(table, headers=["method"] + [f"IoU {r} m" for r in RANGES] + [f"mIoU {r} m" for r in RANGES]
                          + ["rel. mIoU gain (51.2 m)"], tablefmt="github", disable_numparse=True))
    lines += ["", "Per-class IoU at 51.2 m:", ""]
    names = [n for n in rows[0][1]["metrics"]["ssc"]["51.2"]["per_class_iou"] if n != "empty"]  # classes of the mean
    ct = [[d["header"]["method"]["name"]] + [_pct(d["metrics"]["ssc"]["51.2"]["per_class_iou"][n]) for n in names] for _, d in rows]
    lines.append(tabulate(ct, headers=["method"] + names, tablefmt="github", disable_numparse=True))
    city_rows = [(p, d) for p, d in rows if d["metrics"].get("city_map")]
    if city_rows:
        cnames = list(city_rows[0][1]["metrics"]["city_map"]["per_class_iou"])
        lines += ["", "City-level static-class map (static classes only):", ""]
        cm = [[d["header"]["method"]["name"]] + [_pct(d["metrics"]["city_map"]["per_class_iou"][n]) for n in cnames]
              + [_pct(d["metrics"]["city_map"]["iou"]), _pct(d["metrics"]["city_map"]["miou"])] for _, d in city_rows]
        lines.append(tabulate(cm, headers=["method"] + cnames + ["IoU", "mIoU"], tablefmt="github", disable_numparse=True))
    tc_rows = [(p, d) for p, d in rows if d["metrics"].get("temporal_consistency")]
    if tc_rows:
        lines += ["", "Temporal consistency (static world voxels seen by several frames):", ""]
        keys = ["pair_agreement", "modal_agreement", "all_agree", "n_static_voxels", "n_observations"]
        fmt = lambda k, v: _pct(v) if k in TC_FRACTIONS else ("–" if v is None else f"{v:,}")  # noqa: E731
        tt = [[d["header"]["method"]["name"]] + [fmt(k, d["metrics"]["temporal_consistency"].get(k)) for k in keys]
              for _, d in tc_rows]
        lines.append(tabulate(tt, headers=["method"] + keys, tablefmt="github", disable_numparse=True))
    cmds = sorted({d["header"].get("command") or "" for _, d in rows} - {""})
    if cmds:
        lines += ["", "Produced by:", ""] + [f"    {c}" for c in cmds]
    return lines + [""]


def _reported(reported: list[dict[str, Any]], dataset: str) -> list[str]:
    real = "semantickitti" if dataset == "occbench-mini" else dataset
    tables = [t for r in reported for t in r["tables"] if t["dataset"] == real]
    if not tables:
        return []
    lines = ["## Reported in the OccFiner paper (not measured by occbench)", ""]
    if dataset == "occbench-mini":
        lines += ["These are REAL SemanticKITTI numbers copied from the paper, shown for orientation only: "
                  "they are not comparable with the synthetic mini rows above.", ""]
    for t in tables:
        lines += [f"**{t['title']}** (percent)", ""]
        lines.append(tabulate(t["rows"], headers=["method"] + t["columns"], tablefmt="github", floatfmt=".2f"))
        lines.append("")
    src = {r["source"] for r in reported}
    lines += [f"Source: {s}" for s in sorted(src)] + [""]
    return lines


def data_generation_lines(generators: list[dict | None]) -> list[str]:
    """Markdown naming the generated data rows were measured on (``header.dataset.generator`` of each row:
    generator version, seed, size), with a warning when they come from different generations (their numbers are
    not comparable). Empty for real data (no generator)."""
    gens: dict[tuple, int] = defaultdict(int)
    for g in generators:
        if g:
            gens[(g.get("name", "?"), g.get("generator_version", "?"), g.get("seed", "?"), g.get("size", "?"))] += 1
    if not gens:
        return []
    desc = [f"{n} generator {v} (seed {s}, size {z}): {k} row{'s' if k != 1 else ''}" for (n, v, s, z), k in sorted(gens.items())]
    if len(gens) == 1:
        return ["Data: " + desc[0].rsplit(":", 1)[0] + ".", ""]
    return ["> **Rows from different data generations; numbers across them are not comparable.** "
            + "; ".join(desc) + ".", ""]


def render_pages(results_dir: Path, reported_dir: Path, link_base: Path = Path("results"),
                 plots_dir: Path | None = None) -> dict[str, str]:
    """Render every page; returns {file name: markdown}. PNGs named ``<dataset>-<split>-*.png`` in
    ``plots_dir`` are linked from the page they belong to."""
    results = load_results(results_dir)
    reported = [json.loads(p.read_text()) for p in sorted(Path(reported_dir).glob("*.json"))]
    groups: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    protos: dict[tuple[str, str], dict] = {}
    for p, d in results:
        ds = d["header"]["dataset"]
        key = (ds["dataset"], ds["split"])
        groups[key][ds["onboard"] or "-"].append((p, d))
        protos[key] = d.get("protocol", {})
    # pages for real datasets exist even before anything was measured on them (reported rows only)
    for name in ("semantickitti",):
        groups.setdefault((name, "val"), defaultdict(list))
    pages: dict[str, str] = {}
    for (dataset, split), by_onboard in sorted(groups.items()):
        synthetic = dataset == "occbench-mini"
        title = DATASET_TITLES.get(dataset, dataset)
        lines = [f"# Leaderboard: {title}, split `{split}`", "",
                 "<!-- generated by `occbench leaderboard`; do not edit by hand -->", ""]
        if synthetic:
            lines += ["> **Synthetic data.** occbench-mini is a procedurally generated world with simulated onboard models. "
                      "Its numbers say how methods behave on mini, not how they perform on real SemanticKITTI.", ""]
        lines += data_generation_lines([d["header"]["dataset"].get("generator") for rows in by_onboard.values() for _, d in rows])
        pr = protos.get((dataset, split), {})
        if pr:
            lines += ["Protocol: " + ", ".join(f"{k} `{v}`" for k, v in pr.items() if isinstance(v, (str, int, float)) and k in
                                                ("id", "version", "epsilon", "units", "averaging", "ignore_policy")) , ""]
        lines += ["Numbers are percent (results files hold fractions). IoU = completion IoU (occupied vs empty); "
                  "mIoU = mean IoU over classes 1..C-1 from one confusion matrix accumulated over all frames; "
                  "ranges are the VoxFormer crops (12.8 m: x<64, 96<=y<160; 25.6 m: x<128, 64<=y<192; 51.2 m: full grid). "
                  "Relative gain is (mIoU - mIoU_onboard) / mIoU_onboard at 51.2 m.", ""]
        if by_onboard:
            lines += ["## Measured by occbench", ""]
            for onboard, rows in sorted(by_onboard.items()):
                lines += _section(onboard, rows, link_base)
        else:
            lines += ["## Measured by occbench", "", "No results on this dataset yet (the real data cannot be downloaded by CI).", ""]
        plots = sorted(Path(plots_dir).glob(f"{dataset}-{split}-*.png")) if plots_dir is not None else []
        if plots:
            lines += ["## Pictures", "", "Made with `occbench render` from the runs above (commands in `plots/README.md`).", ""]
            lines += [f"![{p.stem}](plots/{p.name})" for p in plots] + [""]
        lines += _reported(reported, dataset)
        pages[f"{dataset}-{split}.md"] = "\n".join(lines).rstrip() + "\n"
    return pages


def write_pages(pages: dict[str, str], out_dir: Path) -> list[Path]:
    from occbench.io.atomic import atomic_write_text

    out = []
    for name, text in pages.items():
        p = Path(out_dir) / name
        atomic_write_text(p, text)
        out.append(p)
    return out


def stale_pages(pages: dict[str, str], out_dir: Path) -> list[str]:
    """Names of pages whose file differs from the rendering (or is missing), plus generated pages no longer produced."""
    stale = [n for n, t in pages.items() if not (Path(out_dir) / n).is_file() or (Path(out_dir) / n).read_text() != t]
    for p in Path(out_dir).glob("*.md"):
        if p.name not in pages and "generated by `occbench leaderboard`" in p.read_text():
            stale.append(p.name)
    return sorted(stale)

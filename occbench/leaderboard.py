"""Markdown leaderboards rendered from results JSON files.

One page per dataset/split (``leaderboards/<dataset>-<split>.md``), one section per onboard model with
rows per method. Measured rows come only from results files; numbers reported in the OccFiner paper
come only from ``leaderboards/reported/*.json`` and are rendered in their own marked section.
"""

from __future__ import annotations

import os
import re
import shlex
from collections import defaultdict
from pathlib import Path
from typing import Any

from tabulate import tabulate

from occbench.dataset_cards import dataset_cards
from occbench.errors import FormatError, OccbenchError
from occbench.io.files import read_json_document
from occbench.page_text import data_generation_lines, md_text  # noqa: F401 - part of this module's interface
from occbench.results import (
    DATASETS,
    PROTOCOL_SHOWN,
    RANGES,
    SPLITS,
    TC_FRACTIONS,
    Results,
    reported_problems,
)

# Order of reference methods in tables; others follow alphabetically.
METHOD_ORDER = {"onboard": 0, "average-fusion": 1, "occfiner-voting": 2, "occfiner-stage1": 3, "occfiner": 4}
DATASET_TITLES = {c.results_name: c.title for c in dataset_cards().values()}  # results name -> title (dataset files)
_SYNTHETIC = {c.results_name for c in dataset_cards().values() if c.synthetic}


class InvalidResultsError(OccbenchError):
    """One or more results (or reported-numbers) files are invalid; ``errors`` holds one error per file."""

    def __init__(self, errors: list[FormatError]):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __reduce__(self):
        return (type(self), (self.errors,))


def load_results(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every results file of ``folder``, validated; raises :class:`InvalidResultsError` naming each bad one."""
    out, bad = [], []
    for p in sorted(Path(folder).glob("*.json")):
        try:
            d = Results.read(p).to_dict()
        except FormatError as e:
            bad.append(e)
            continue
        part = d.get("header", {}).get("partial")
        if part:
            bad.append(
                FormatError(
                    p,
                    "the results of a complete run (evaluate without --max-frames or --frames)",
                    f"results of a partial run ({part.get('frames')} of {part.get('frames_in_split')} "
                    "frames), which cannot be a leaderboard row (for a quick one, score every frame of a small "
                    "split: `occbench synth -o DIR --size tiny`, then `occbench evaluate --root DIR`)",
                )
            )
            continue
        out.append((p, d))
    if bad:
        raise InvalidResultsError(bad)
    return out


def load_reported(folder: Path) -> list[dict[str, Any]]:
    """Every reported-numbers file of ``folder``, validated like results files."""
    out, bad = [], []
    for p in sorted(Path(folder).glob("*.json")):
        try:
            d = read_json_document(p, "a reported-numbers file", follow=False)
            problems = reported_problems(d)
            if problems:
                raise FormatError(
                    p, "a reported-numbers file (source, tables of title, dataset, columns, rows)", "; ".join(problems)
                )
            out.append(d)
        except FormatError as e:
            bad.append(e)
    if bad:
        raise InvalidResultsError(bad)
    return out


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _gain(x: float | None, base: float | None) -> str:
    if x is None or not base:
        return "–"
    return f"{100 * (x - base) / base:+.1f}%"


def _method_key(name: str) -> tuple[int, str]:
    return (METHOD_ORDER.get(name, 99), name)


def _name(d: dict[str, Any]) -> str:
    return md_text(d["header"]["method"]["name"])


def _fingerprint(d: dict[str, Any]) -> dict[str, Any] | None:
    return d["header"]["dataset"].get("fingerprint")


def command_with_output(command: str, output: str) -> str:
    """``command`` (an ``occbench evaluate`` command line as a results header records it) with its output path
    (``-o``/``--output``) replaced by ``output``, or ``-o output`` added when it has none: the command that writes
    the results file where it is now, whatever scratch path it was first written to. Other commands, and text
    that does not split like a command line, are returned unchanged."""
    try:
        args = shlex.split(command)
    except ValueError:
        return command
    if args[:2] != ["occbench", "evaluate"]:
        return command
    out: list[str] = []
    found = False
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-o", "--output") and i + 1 < len(args):
            out += [a, output]
            i += 2
            found = True
            continue
        if a.startswith("--output="):
            a, found = f"--output={output}", True
        out.append(a)
        i += 1
    if not found:
        out += ["-o", output]
    return " ".join(shlex.quote(a) for a in out)


def _class_group_miou(d: dict[str, Any], r: str, static: bool) -> float | None:
    """Mean of the per-class IoUs (range ``r``) of the static classes of the protocol (``static``) or of the other
    classes of the mean (dynamic: vehicles and people); None if the file has no per-class IoUs."""
    pc = d["metrics"]["ssc"][r].get("per_class_iou") or {}
    st = set(d.get("protocol", {}).get("static_classes") or [])
    vals = [v for n, v in pc.items() if n != "empty" and (n in st) == static and v is not None]
    return sum(vals) / len(vals) if vals and st else None


def _static_dynamic_table(rows: list[tuple[Path, dict[str, Any]]]) -> list[str]:
    """The mIoU over the static classes and over the dynamic classes, per range, from the per-class IoUs."""
    if not any(d.get("protocol", {}).get("static_classes") for _, d in rows):
        return []
    t = [[_name(d)] + [_pct(_class_group_miou(d, r, st)) for r in RANGES for st in (True, False)] for _, d in rows]
    heads = [f"{'static' if st else 'dynamic'} mIoU {r} m" for r in RANGES for st in (True, False)]
    return [
        "",
        "mIoU over the static classes and over the dynamic classes (vehicles and people), from the per-class "
        "IoUs of the results file:",
        "",
        tabulate(t, headers=["method"] + heads, tablefmt="github", disable_numparse=True),
    ]


def _section(
    onboard: str,
    rows: list[tuple[Path, dict[str, Any]]],
    rel: Path,
    data: dict[int, str] | None = None,
    shown: dict[Path, str] | None = None,
) -> list[str]:
    """``data`` (only when some row of the page has a fingerprint): id(results dict) -> label of its data.
    ``shown``: results file -> its path as the "Produced by" commands show it (None: commands as recorded)."""
    rows = sorted(rows, key=lambda r: _method_key(r[1]["header"]["method"]["name"]))
    base = next((d for _, d in rows if d["header"]["method"]["name"] == "onboard"), None)
    base_miou = base["metrics"]["ssc"][RANGES[-1]].get("miou") if base else None
    lines = [f"### Onboard model: `{onboard}`", ""]
    table = []
    for p, d in rows:
        m = d["metrics"]["ssc"]
        same_data = data is None or base is None or data[id(d)] == data[id(base)]
        table.append(
            [f"[{_name(d)}]({(rel / p.name).as_posix()})"]
            + [_pct(m[r].get("iou")) for r in RANGES]
            + [_pct(m[r].get("miou")) for r in RANGES]
            + [_gain(m[RANGES[-1]].get("miou"), base_miou) if same_data else "–"]
            + ([data[id(d)]] if data is not None else [])
        )
    lines.append(
        tabulate(
            table,
            headers=["method"]
            + [f"IoU {r} m" for r in RANGES]
            + [f"mIoU {r} m" for r in RANGES]
            + [f"rel. mIoU gain ({RANGES[-1]} m)"]
            + (["data"] if data is not None else []),
            tablefmt="github",
            disable_numparse=True,
        )
    )
    lines += _static_dynamic_table(rows)
    lines += ["", f"Per-class IoU at {RANGES[-1]} m:", ""]
    names = [
        n for n in rows[0][1]["metrics"]["ssc"][RANGES[-1]].get("per_class_iou", {}) if n != "empty"
    ]  # classes of the mean
    ct = [
        [_name(d)] + [_pct(d["metrics"]["ssc"][RANGES[-1]].get("per_class_iou", {}).get(n)) for n in names]
        for _, d in rows
    ]
    lines.append(
        tabulate(ct, headers=["method"] + [md_text(n) for n in names], tablefmt="github", disable_numparse=True)
    )
    city_rows = [(p, d) for p, d in rows if d["metrics"].get("city_map")]
    if city_rows:
        cnames = list(city_rows[0][1]["metrics"]["city_map"].get("per_class_iou", {}))
        lines += ["", "City-level static-class map (static classes only):", ""]
        cm = [
            [_name(d)]
            + [_pct(d["metrics"]["city_map"].get("per_class_iou", {}).get(n)) for n in cnames]
            + [_pct(d["metrics"]["city_map"].get("iou")), _pct(d["metrics"]["city_map"].get("miou"))]
            for _, d in city_rows
        ]
        lines.append(
            tabulate(
                cm,
                headers=["method"] + [md_text(n) for n in cnames] + ["IoU", "mIoU"],
                tablefmt="github",
                disable_numparse=True,
            )
        )
    tc_rows = [(p, d) for p, d in rows if d["metrics"].get("temporal_consistency")]
    if tc_rows:
        lines += ["", "Temporal consistency (static world voxels seen by several frames):", ""]
        keys = ["pair_agreement", "modal_agreement", "all_agree", "n_static_voxels", "n_observations"]
        fmt = lambda k, v: _pct(v) if k in TC_FRACTIONS else ("–" if v is None else f"{v:,}")  # noqa: E731
        tt = [[_name(d)] + [fmt(k, d["metrics"]["temporal_consistency"].get(k)) for k in keys] for _, d in tc_rows]
        lines.append(tabulate(tt, headers=["method"] + keys, tablefmt="github", disable_numparse=True))
    cmds = sorted(
        {
            (command_with_output(d["header"]["command"], shown[p]) if shown is not None else d["header"]["command"])
            for p, d in rows
            if d["header"].get("command")
        }
    )
    if cmds:
        lines += ["", "Produced by:", ""] + [f"    {c}" for c in cmds]
    return lines + [""]


def _reported(reported: list[dict[str, Any]], dataset: str) -> list[str]:
    """One marked section per document of ``reported/`` that has tables for ``dataset`` (the mini page shows only
    documents without ``"mini": false``, as real-data numbers for orientation)."""
    real = "semantickitti" if dataset == "occbench-mini" else dataset
    lines: list[str] = []
    for doc in reported:
        if dataset == "occbench-mini" and not doc.get("mini", True):
            continue
        tables = [t for t in doc["tables"] if t["dataset"] == real]
        if not tables:
            continue
        lines += [f"## {md_text(doc.get('heading', 'Reported in the OccFiner paper (not measured by occbench)'))}", ""]
        if dataset == "occbench-mini":
            lines += [
                "These are REAL SemanticKITTI numbers copied from the paper, shown for orientation only: "
                "they are not comparable with the synthetic mini rows above.",
                "",
            ]
        for t in tables:
            lines += [f"**{md_text(t['title'])}** (percent)", ""]
            rows = [[md_text(x) if isinstance(x, str) else x for x in r] for r in t["rows"]]
            lines.append(
                tabulate(
                    rows,
                    headers=["method"] + [md_text(c) for c in t["columns"]],
                    tablefmt="github",
                    floatfmt=t.get("floatfmt", ".2f"),
                    missingval="–",
                )
            )
            lines.append("")
            if t.get("source"):
                lines += [f"Source: {md_text(t['source'])}", ""]
        lines += [f"Source: {md_text(doc['source'])}", ""]
    return lines


def data_fingerprint_lines(rows: list[dict[str, Any]]) -> tuple[list[str], dict[int, str] | None]:
    """The page's note on the data its rows were scored on (``header.dataset.fingerprint``, see
    :mod:`occbench.fingerprint`) and each row's label for the ``data`` column; ``([], None)`` when no row has a
    fingerprint (results written before fingerprints existed: their pages render as before). Rows with different
    fingerprints are flagged: their numbers come from different data and are not to be ranked together."""
    from occbench.fingerprint import short

    if not any(_fingerprint(d) for d in rows):
        return [], None
    groups: dict[str, list[str]] = defaultdict(list)
    labels: dict[int, str] = {}
    by_files: dict[str, str] = {}
    by_content: dict[str, str] = {}
    for d in rows:
        fp = _fingerprint(d)
        if not fp:
            labels[id(d)] = "unknown"
            continue
        key = by_content.get(fp.get("content") or "") or by_files.get(fp["files"]) or short(fp) or "?"
        by_files.setdefault(fp["files"], key)
        if fp.get("content"):
            by_content.setdefault(fp["content"], key)
        labels[id(d)] = f"`{key}`"
        groups[key].append(_name(d))
    lines = []
    if len(groups) > 1:
        lines += [
            "> **Rows scored on different data** (dataset fingerprints differ: other frames or other files); "
            "compare only rows with the same `data`. "
            + "; ".join(f"`{k}`: {', '.join(v)}" for k, v in groups.items())
            + ".",
            "",
        ]
    if "unknown" in labels.values():
        lines += ["Data `unknown`: results files written before occbench recorded dataset fingerprints.", ""]
    return lines, labels


def render_pages(
    results_dir: Path,
    reported_dir: Path,
    link_base: Path = Path("results"),
    plots_dir: Path | None = None,
    pages_dir: Path | None = None,
) -> dict[str, str]:
    """Render every page; returns {file name: markdown}. With ``plots_dir``, each page links its plots there
    (:mod:`occbench.leaderboard_plots`: planned from the results files and ``plots_dir/../autolabel/*.json``) and the
    pictures of ``plots_dir/../pictures`` named ``<dataset>-<split>-*.png``. ``link_base``: the results folder
    relative to the pages (links). ``pages_dir``: the folder the pages go to (default: the one ``link_base`` leads
    from, when it is relative and goes down only); the "Produced by" commands then show each results file's path
    relative to the folder that holds ``pages_dir`` (``-o leaderboards/results/NAME.json`` for the shipped pages,
    run from the repository root), not where the file was first written."""
    from occbench.leaderboard_plots import figure_lines

    if pages_dir is None and not link_base.is_absolute() and ".." not in link_base.parts:
        pages_dir = Path(os.path.normpath(Path(results_dir).resolve().joinpath(*[".."] * len(link_base.parts))))
    base = Path(pages_dir).resolve().parent if pages_dir is not None else None
    results = load_results(results_dir)
    shown = (
        {p: Path(os.path.relpath(Path(p).resolve(), base)).as_posix() for p, _ in results} if base is not None else None
    )
    plans = leaderboard_plots(results, plots_dir) if plots_dir is not None else []
    reported = load_reported(reported_dir)
    groups: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    protos: dict[tuple[str, str], dict] = {}
    for p, d in results:
        ds = d["header"]["dataset"]
        key = (ds["dataset"], ds["split"])
        groups[key][ds["onboard"] or "-"].append((p, d))
        protos[key] = d.get("protocol", {})
    # pages for real datasets exist even before anything was measured on them (reported rows only)
    for card in dataset_cards().values():
        for split in card.leaderboard_splits:
            groups.setdefault((card.results_name, split), defaultdict(list))
    pages: dict[str, str] = {}
    for (dataset, split), by_onboard in sorted(groups.items()):
        synthetic = dataset in _SYNTHETIC
        title = DATASET_TITLES.get(dataset, dataset)
        lines = [
            f"# Leaderboard: {title}, split `{split}`",
            "",
            "<!-- generated by `occbench leaderboard`; do not edit by hand -->",
            "",
        ]
        if synthetic:
            lines += [
                "> **Synthetic data.** occbench-mini is a procedurally generated world with simulated onboard models. "
                "Its numbers say how methods behave on mini, not how they perform on real SemanticKITTI.",
                "",
            ]
        lines += data_generation_lines(
            [d["header"]["dataset"].get("generator") for rows in by_onboard.values() for _, d in rows]
        )
        fp_lines, data = data_fingerprint_lines([d for rows in by_onboard.values() for _, d in rows])
        lines += fp_lines
        pr = protos.get((dataset, split), {})
        if pr:
            lines += [
                "Protocol: "
                + ", ".join(
                    f"{k} `{v}`" for k, v in pr.items() if isinstance(v, (str, int, float)) and k in PROTOCOL_SHOWN
                ),
                "",
            ]
        lines += [
            "Numbers are percent (results files hold fractions). IoU = completion IoU (occupied vs empty); "
            "mIoU = mean IoU over classes 1..C-1 from one confusion matrix accumulated over all frames; "
            "ranges are the VoxFormer crops (12.8 m: x<64, 96<=y<160; 25.6 m: x<128, 64<=y<192; 51.2 m: full grid). "
            "Relative gain is (mIoU - mIoU_onboard) / mIoU_onboard at 51.2 m.",
            "",
        ]
        if by_onboard:
            lines += ["## Measured by occbench", ""]
            for onboard, rows in sorted(by_onboard.items()):
                lines += _section(onboard, rows, link_base, data, shown)
        else:
            lines += [
                "## Measured by occbench",
                "",
                "No results on this dataset yet (the real data cannot be downloaded by CI).",
                "",
            ]
        if plots_dir is not None:
            lines += figure_lines(f"{dataset}-{split}.md", plans, Path(plots_dir).parent / "pictures")
        lines += _reported(reported, dataset)
        pages[f"{dataset}-{split}.md"] = "\n".join(lines).rstrip() + "\n"
    return pages


def leaderboard_plots(results: list[tuple[Path, dict[str, Any]]], plots_dir: Path) -> list:
    """The plots of the pages (:func:`occbench.leaderboard_plots.plan_plots`), auto-labeling files from
    ``plots_dir/../autolabel``."""
    from occbench.leaderboard_plots import plan_plots

    return plan_plots(results, Path(plots_dir).parent / "autolabel", _method_key)


_PAGE_NAME = re.compile("(" + "|".join(map(re.escape, DATASETS)) + ")-(" + "|".join(SPLITS) + r")\.md")


def write_pages(pages: dict[str, str], out_dir: Path) -> list[Path]:
    from occbench.io.atomic import atomic_write_text

    out = []
    for name, text in pages.items():
        if not _PAGE_NAME.fullmatch(name):  # render_pages only makes these; never a path out of out_dir
            raise ValueError(f"refusing to write a leaderboard page named {name!r}")
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

"""The plots of the leaderboards, written by ``occbench leaderboard`` into ``leaderboards/plots/`` and linked from
the pages, and the links to the committed pictures of ``leaderboards/pictures/``.

Per page and onboard model: IoU / mIoU against distance (``<dataset>-<split>-distance-<onboard>.png``) and per-class
IoU at the largest range (``<dataset>-<split>-classes-<onboard>.png``); per auto-labeling results file
``autolabel/<name>.json``, the auto-labeling curve (``autolabel-<name>.png``), linked from the page of the split its
students were evaluated on.

Staleness (``occbench leaderboard --check``): a plot is up to date when its file exists and the digest of the numbers
it shows, stored in the PNG's ``occbench-data`` text chunk, equals the digest of the numbers the results files give
now (:func:`occbench.render.plots.plot_digest`). PNG bytes are not compared: they differ across matplotlib and
FreeType versions while the plotted numbers do not. A generated plot that is no longer planned is stale too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, cast

from occbench.io.files import read_json_document

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class PlannedPlot:
    name: str  # file name in the plots folder
    page: str  # page file name that links it
    section: str  # "distance", "classes" or "autolabel"
    caption: str
    digest: str
    draw: Callable[[Path], Any]


def _safe(s: str) -> str:
    return _SAFE.sub("_", s)


def _label(d: dict[str, Any]) -> str:
    return d["header"]["method"]["name"]


def plan_plots(
    results: list[tuple[Path, dict[str, Any]]],
    autolabel_dir: Path | None = None,
    method_key: Callable[[str], Any] | None = None,
) -> list[PlannedPlot]:
    """Every plot the leaderboards show, from the (validated) results files and the auto-labeling files."""
    from collections import defaultdict

    from occbench.autolabel.curve import is_curve
    from occbench.render.plots import (
        autolabel_curve_data,
        autolabel_curve_plot,
        autolabel_data,
        autolabel_plot,
        class_bars,
        class_data,
        distance_data,
        distance_plot,
        plot_digest,
    )
    from occbench.results import RANGES

    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for _, d in results:
        ds = d["header"]["dataset"]
        groups[(ds["dataset"], ds["split"], ds["onboard"] or "-")].append(d)
    key = method_key or (lambda n: n)
    out: list[PlannedPlot] = []
    for (dataset, split, onboard), rows in sorted(groups.items()):
        rows = sorted(rows, key=lambda d: key(_label(d)))
        runs = [(_label(d), d) for d in rows]
        page = f"{dataset}-{split}.md"
        stem = f"{dataset}-{split}"
        if all(d["metrics"].get("distance") for d in rows):
            title = f"{dataset} {split}, onboard model {onboard}"
            out.append(
                PlannedPlot(
                    f"{stem}-distance-{_safe(onboard)}.png",
                    page,
                    "distance",
                    f"IoU and mIoU against distance, onboard model {onboard}",
                    plot_digest("distance", {**distance_data(runs), "title": title}),
                    partial(distance_plot, runs, title=title),
                )
            )
        title = f"{dataset} {split}, onboard model {onboard}: per-class IoU at {RANGES[-1]} m"
        out.append(
            PlannedPlot(
                f"{stem}-classes-{_safe(onboard)}.png",
                page,
                "classes",
                f"Per-class IoU at {RANGES[-1]} m, onboard model {onboard}",
                plot_digest("classes", {**class_data(runs, RANGES[-1]), "title": title}),
                partial(class_bars, runs, range_key=RANGES[-1], title=title),
            )
        )
    if autolabel_dir is not None and Path(autolabel_dir).is_dir():
        for f in sorted(Path(autolabel_dir).glob("*.json")):
            al_runs = read_json_document(f, "an auto-labeling results file (a list of results)", follow=False)
            if not isinstance(al_runs, list) or not al_runs:
                continue
            ev = al_runs[0]["header"]["dataset"]["eval"]
            title = f"auto-labeling ({f.stem}): student evaluated on {ev['dataset']} {ev['split']}"
            if is_curve(
                cast(list[dict[str, Any]], al_runs)
            ):  # drawn on the auto-labeling page (occbench.autolabel.page)
                out.append(
                    PlannedPlot(
                        autolabel_plot_name(f),
                        f"autolabel-{f.stem.split('-', 1)[0]}.md",
                        "autolabel",
                        f"Pseudo-label curve, from autolabel/{f.name}",
                        plot_digest("autolabel-curve", {**autolabel_curve_data(cast(Any, al_runs)), "title": title}),
                        partial(autolabel_curve_plot, al_runs, title=title),
                    )
                )
                continue
            out.append(
                PlannedPlot(
                    f"autolabel-{_safe(f.stem)}.png",
                    f"{ev['dataset']}-{ev['split']}.md",
                    "autolabel",
                    f"Auto-labeling: students retrained with pseudo-labels, from autolabel/{f.name}",
                    plot_digest("autolabel", {**autolabel_data(al_runs), "title": title}),
                    partial(autolabel_plot, al_runs, title=title),
                )
            )
    return out


def autolabel_plot_name(json_file: Path) -> str:
    """The PNG of an auto-labeling results file ``autolabel/<stem>.json``."""
    return f"autolabel-{_safe(Path(json_file).stem)}.png"


def write_plots(plans: list[PlannedPlot], plots_dir: Path, only_stale: bool = True) -> list[Path]:
    """Draw the planned plots (by default only those not up to date) and remove generated plots no longer planned."""
    plots_dir = Path(plots_dir)
    stale = set(stale_plots(plans, plots_dir)) if only_stale else {p.name for p in plans}
    out = []
    for p in plans:
        if p.name in stale:
            out.append(p.draw(plots_dir / p.name))
    for name in stale - {p.name for p in plans}:
        (plots_dir / name).unlink()
    return out


def stale_plots(plans: list[PlannedPlot], plots_dir: Path) -> list[str]:
    """Names of planned plots missing or showing other numbers, and of generated plots no longer planned."""
    from occbench.render.figure import PNG_DATA_KEY, png_text

    plots_dir = Path(plots_dir)
    stale = []
    for p in plans:
        f = plots_dir / p.name
        try:
            if not f.is_file() or png_text(f).get(PNG_DATA_KEY) != p.digest:
                stale.append(p.name)
        except ValueError:
            stale.append(p.name)
    planned = {p.name for p in plans}
    for f in sorted(plots_dir.glob("*.png")) if plots_dir.is_dir() else []:
        try:
            generated = PNG_DATA_KEY in png_text(f)
        except ValueError:
            generated = False
        if generated and f.name not in planned:
            stale.append(f.name)
    return sorted(stale)


SECTION_TITLES = {
    "distance": "IoU and mIoU against distance from the sensor",
    "classes": "Per-class IoU",
    "autolabel": "Auto-labeling: onboard students retrained with pseudo-labels (evaluated on this split)",
}


def figure_lines(
    page: str,
    plans: list[PlannedPlot],
    pictures_dir: Path | None,
    plots_link: str = "plots",
    pictures_link: str = "pictures",
) -> list[str]:
    """The page's "Plots" section (the planned plots of ``page``) and "Pictures" section (PNGs of ``pictures_dir``
    named ``<dataset>-<split>-*.png``, with the commands in its README)."""
    from occbench.page_text import md_text

    lines: list[str] = []
    mine = [p for p in plans if p.page == page]
    if mine:
        lines += ["## Plots", "", "Drawn by `occbench leaderboard` from the results files above.", ""]
        for sec in ("distance", "classes", "autolabel"):
            ps = [p for p in mine if p.section == sec]
            if ps:
                lines += [f"### {SECTION_TITLES[sec]}", ""]
                lines += [f"![{md_text(p.caption)}]({plots_link}/{p.name})" for p in ps] + [""]
    stem = page[:-3]
    pics = (
        sorted(Path(pictures_dir).glob(f"{stem}-*.png"))
        if pictures_dir is not None and Path(pictures_dir).is_dir()
        else []
    )
    if pics:
        lines += [
            "## Pictures",
            "",
            f"Made with `occbench render` from saved predictions (commands in "
            f"[{pictures_link}/README.md]({pictures_link}/README.md)).",
            "",
        ]
        lines += [f"![{p.stem}]({pictures_link}/{p.name})" for p in pics] + [""]
    return lines

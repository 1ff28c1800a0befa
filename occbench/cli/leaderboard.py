"""``occbench leaderboard``: render (or check) the markdown leaderboards."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from occbench.cli.options import EXIT_INVALID_RESULTS, EXIT_STALE


@click.command()
@click.option(
    "--results",
    "results_dir",
    type=click.Path(path_type=Path),
    default=Path("leaderboards/results"),
    show_default=True,
    help="Folder of results JSON files.",
)
@click.option(
    "--reported",
    "reported_dir",
    type=click.Path(path_type=Path),
    default=Path("leaderboards/reported"),
    show_default=True,
    help="Folder of numbers reported in papers.",
)
@click.option("--output", "out_dir", type=click.Path(path_type=Path), default=Path("leaderboards"), show_default=True)
@click.option(
    "--check",
    is_flag=True,
    help="Do not write; exit 4 if a committed page differs from its rendering or a plot "
    "shows other numbers than the results files give (plots are compared by the digest of their numbers, "
    "not by their bytes).",
)
def leaderboard(results_dir: Path, reported_dir: Path, out_dir: Path, check: bool) -> None:
    """Render leaderboards/*.md from result files (one page per dataset/split) and their plots (leaderboards/plots/).

    Every results file is validated first; if any is invalid, each is reported by name and nothing is
    written (exit 5).
    """
    from occbench.leaderboard import InvalidResultsError, render_pages, stale_pages, write_pages

    if not Path(results_dir).is_dir():
        raise click.BadParameter(
            f"no folder of results JSON files at {results_dir}; run it from the repository root "
            "or give --results DIR (and --output DIR for the pages)",
            param_hint="'--results'",
        )
    # links relative to the pages, wherever the results are: a page and its results can move together
    rel = Path(os.path.relpath(Path(results_dir).resolve(), Path(out_dir).resolve()))
    try:
        pages = render_pages(results_dir, reported_dir, rel, Path(out_dir) / "plots", pages_dir=Path(out_dir))
    except InvalidResultsError as e:
        for err in e.errors:
            click.echo(f"invalid: {err}", err=True)
        click.echo(f"{len(e.errors)} invalid file(s); nothing written", err=True)
        sys.exit(EXIT_INVALID_RESULTS)
    from occbench.autolabel.page import autolabel_pages
    from occbench.leaderboard import leaderboard_plots, load_results
    from occbench.leaderboard_plots import stale_plots, write_plots

    plots_dir = Path(out_dir) / "plots"
    plans = leaderboard_plots(load_results(results_dir), plots_dir)
    al_pages = autolabel_pages(Path(out_dir) / "autolabel")  # autolabel-<name>.md from autolabel/<name>-*.json
    if check:
        stale = stale_pages({**pages, **al_pages}, out_dir) + [f"plots/{n}" for n in stale_plots(plans, plots_dir)]
        if stale:
            click.echo("stale leaderboards (run `occbench leaderboard`): " + ", ".join(stale), err=True)
            sys.exit(EXIT_STALE)
        click.echo(
            f"leaderboards up to date ({len(pages) + len(al_pages)} pages, {len(plans)} plots: the numbers they show)"
        )
        return
    for p in write_pages(pages, out_dir):
        click.echo(f"wrote {p}")
    from occbench.io.atomic import atomic_write_text

    for name, text in al_pages.items():
        atomic_write_text(Path(out_dir) / name, text)
        click.echo(f"wrote {Path(out_dir) / name}")
    for p in write_plots(plans, plots_dir):
        click.echo(f"wrote {p}")

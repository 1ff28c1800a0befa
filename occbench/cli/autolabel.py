"""``occbench autolabel``: the auto-labeling retraining protocol from the command line.

A command of the ``occbench`` CLI group (loaded on use); it also runs alone as
``python -m occbench.cli.autolabel``.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from occbench.cli.options import ROOT_HELP
from occbench.dataset_cards import dataset_cards, dataset_names
from occbench.errors import OccbenchError
from occbench.runtime.progress import set_quiet

DEFAULT_SOURCES = ("onboard:voxformer-sim", "onboard:sscnet-sim", "occfiner:voxformer-sim")
DATASET_TITLES = {n: dataset_cards()[n].title for n in dataset_names(trainable=True)}  # the dataset files'


@click.command("autolabel")
@click.option("--dataset", default="mini", show_default=True, type=click.Choice(dataset_names(trainable=True)))
@click.option("--root", type=click.Path(path_type=Path), default=None, help=ROOT_HELP)
@click.option(
    "--predictions-root",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder holding <onboard>/sequences/... (default <root>/predictions).",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="METHOD:ONBOARD[:k=v,...]",
    help="Pseudo-label source (repeatable), e.g. onboard:voxformer-sim, average-fusion:voxformer-sim, "
    "occfiner-voting:voxformer-sim, occfiner:voxformer-sim. Default: " + ", ".join(DEFAULT_SOURCES) + ".",
)
@click.option("--gt/--no-gt", "with_gt", default=True, show_default=True, help="Also run the GT-Train-only row.")
@click.option(
    "--preset",
    default=None,
    type=click.Choice(["ci", "full", "curve", "curve-ci"]),
    help="Hyper-parameter preset (default: full; with --curve: curve).",
)
@click.option(
    "--curve",
    "curve",
    default=None,
    metavar="N,N,...",
    help="Run the pseudo-label curve of one --source: GT-only, then for each number of pseudo-labelled frames the "
    "oracle row and the source as top-1 and top-2, all with the same --steps (docs/autolabel.md).",
)
@click.option("--steps", type=int, default=None, help="Fixed number of optimiser steps (0: --epochs decide).")
@click.option(
    "--pl-pool",
    default=None,
    metavar="SEQ,SEQ,...",
    help="Read the unlabeled split from a pool of extra sequences of the same generator (e.g. 12,13; "
    "150 scans each), generated into the data cache on first use (mini only; occbench.autolabel.pool).",
)
@click.option(
    "--pl-root",
    type=click.Path(path_type=Path),
    default=None,
    help="Read the unlabeled split from this root of the same dataset (a pool of extra sequences).",
)
@click.option("--seed", "seeds", multiple=True, type=int, help="Training seed (repeatable; default: the preset's).")
@click.option("--epochs", type=int, default=None, help="Override the preset's epochs.")
@click.option("--crop", type=int, default=None, help="Override the preset's training crop (multiple of 8).")
@click.option("--width", type=int, default=None, help="Override the preset's student width.")
@click.option("--lr", type=float, default=None, help="Override the preset's learning rate (Adam).")
@click.option(
    "--pl-format",
    type=click.Choice(["top1", "top2"]),
    default=None,
    help="Pseudo-label storage (top2 where the source has scores); with --curve: only the rows of this format "
    "(default both).",
)
@click.option("--max-train-frames", type=int, default=None, help="Evenly spaced subset of train frames (0 = all).")
@click.option(
    "--max-pl-frames", type=int, default=None, help="Evenly spaced subset of pseudo-labelled frames (0 = all)."
)
@click.option("--max-eval-frames", type=int, default=None, help="Evenly spaced subset of val frames (0 = all).")
@click.option("--threads", type=int, default=None, help="torch CPU threads (part of the protocol header).")
@click.option(
    "--eval-split",
    default=None,
    help="Split the student is scored on (default: the preset's, val). 'train' scores the labelled train frames "
    "that are not GT training frames: a held-out set for choosing hyper-parameters without val.",
)
@click.option("--train-sequence", multiple=True, help="Override the train split's sequences (repeatable).")
@click.option("--pl-sequence", multiple=True, help="Override the unlabeled split's sequences (repeatable).")
@click.option("--eval-sequence", multiple=True, help="Override the val split's sequences (repeatable).")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Runs folder (default runs/autolabel/<dataset>); resumable.",
)
@click.option(
    "--markdown",
    type=click.Path(path_type=Path),
    default=None,
    help="Table path (default <out>/autolabel-<dataset>.md; the page leaderboards/autolabel-<dataset>.md is "
    "rendered by `occbench leaderboard` from the files of leaderboards/autolabel/).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write all results as one JSON list here.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def autolabel(
    dataset,
    root,
    predictions_root,
    sources,
    with_gt,
    preset,
    curve,
    steps,
    pl_pool,
    pl_root,
    seeds,
    epochs,
    crop,
    width,
    lr,
    pl_format,
    max_train_frames,
    max_pl_frames,
    max_eval_frames,
    threads,
    eval_split,
    train_sequence,
    pl_sequence,
    eval_sequence,
    out,
    markdown,
    json_path,
    quiet,
):
    """Auto-labeling protocol (OccFiner Table 6): retrain an onboard model on GT-Train (+ pseudo-labels of a split)."""
    import json

    from occbench.autolabel.protocol import SourceSpec
    from occbench.autolabel.protocol import preset as make_preset
    from occbench.autolabel.runner import AutolabelData, run_curve, run_protocol
    from occbench.autolabel.table import markdown as make_markdown
    from occbench.io.atomic import atomic_write_text

    set_quiet(quiet)
    argv = sys.argv[1:]
    argv = argv[argv.index("autolabel") + 1 :] if "autolabel" in argv else argv
    command = "occbench autolabel " + " ".join(shlex.quote(a) for a in argv)
    try:
        amounts = [int(a) for a in curve.split(",") if a.strip()] if curve else None
        cfg = make_preset(
            preset or ("curve" if amounts else "full"),
            seeds=tuple(seeds) or None,
            steps=steps,
            epochs=epochs,
            crop=crop,
            width=width,
            lr=lr,
            pl_format=pl_format,
            max_train_frames=max_train_frames,
            max_pl_frames=max_pl_frames,
            max_eval_frames=max_eval_frames,
            threads=threads,
            eval_split=eval_split,
        )
        specs = ([SourceSpec.parse("gt")] if with_gt else []) + [
            SourceSpec.parse(s) for s in (sources or DEFAULT_SOURCES)
        ]
        kw = {} if predictions_root is None else {"predictions_root": str(predictions_root)}
        seq = {
            k: list(v)
            for k, v in (
                (cfg.train_split, train_sequence),
                (cfg.pl_split, pl_sequence),
                (cfg.eval_split, eval_sequence),
            )
            if v
        }
        roots = {} if pl_root is None else {cfg.pl_split: str(pl_root)}
        if pl_pool:
            if pl_root is not None or dataset != "mini":
                raise ValueError(
                    "--pl-pool generates occbench-mini sequences: use it with --dataset mini, not --pl-root"
                )
            from occbench.autolabel.pool import ensure_pool

            onboards = sorted({s.onboard for s in specs if s.onboard})
            seqs = [q.strip() for q in pl_pool.split(",") if q.strip()]
            roots = {cfg.pl_split: str(ensure_pool(seqs, onboards, progress=not quiet))}
        data = AutolabelData(dataset, None if root is None else str(root), kw, seq, roots)
        out = out or Path("runs") / "autolabel" / dataset
        if amounts:
            if len(sources) != 1:
                raise ValueError(f"--curve takes exactly one --source, got {len(sources)}")
            formats = (pl_format,) if pl_format else ("top1", "top2")  # --pl-format: the rows of one format only
            results = run_curve(data, specs[-1], cfg, amounts, out, formats, progress=not quiet, command=command)
        else:
            results = run_protocol(data, specs, cfg, out, progress=not quiet, command=command)
        if json_path is not None:
            atomic_write_text(json_path, json.dumps(results, indent=1) + "\n")
        if amounts:
            from occbench.autolabel.curve import curve_rows, curve_table

            md = (
                "\n".join(
                    [
                        f"# Pseudo-label curve — {DATASET_TITLES.get(dataset, dataset)}",
                        "",
                        *curve_table(curve_rows(results)),
                    ]
                )
                + "\n"
            )
        else:
            md = make_markdown(results, DATASET_TITLES.get(dataset, dataset), command=command)
        mpath = markdown or Path(out) / f"autolabel-{dataset}.md"
        atomic_write_text(mpath, md)
    except (OccbenchError, KeyError, ValueError, RuntimeError, FileNotFoundError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    if not quiet:
        click.echo(md)
    click.echo(f"wrote {mpath}", err=True)


if __name__ == "__main__":  # pragma: no cover
    autolabel()

"""The ``occbench`` command line.

Exit codes: 0 success; 1 the run failed (a data or method error, message on stderr);
2 usage error (click); 3 an invalid submission (``evaluate --predictions``); 4 stale leaderboards (``leaderboard --check``).
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from occbench import __version__
from occbench.errors import OccbenchError
from occbench.progress import set_quiet

EXIT_FAILED, EXIT_INVALID_SUBMISSION, EXIT_STALE = 1, 3, 4


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _dataset_options(f):
    f = click.option("--dataset", "dataset", default="mini", show_default=True,
                     type=click.Choice(["mini", "semantickitti", "sscbench-kitti360"]), help="Which dataset.")(f)
    f = click.option("--root", type=click.Path(path_type=Path), default=None,
                     help="Dataset root (mini: defaults to $OCCBENCH_MINI or $OCCBENCH_DATA/mini-vX, generated on first use).")(f)
    f = click.option("--split", default="val", show_default=True, help="train / val / test.")(f)
    f = click.option("--onboard", default=None, help="Onboard model whose predictions are refined (mini: voxformer-sim).")(f)
    f = click.option("--predictions-root", type=click.Path(path_type=Path), default=None,
                     help="Folder holding <onboard>/sequences/XX/predictions (default <root>/predictions).")(f)
    f = click.option("--sequence", "sequences", multiple=True, help="Restrict to these sequences (repeatable).")(f)
    return f


def _dspec(dataset, root, split, onboard, predictions_root, sequences):
    from occbench.evaluate import DatasetSpec

    kw = {}
    if predictions_root is not None:
        kw["predictions_root"] = str(predictions_root)
    if sequences:
        kw["sequences"] = list(sequences)
    if dataset == "mini" and onboard is None:
        onboard = "voxformer-sim"
    return DatasetSpec(dataset, None if root is None else str(root), split, onboard, kw)


def _fail(e: Exception) -> None:
    click.echo(f"error: {e}", err=True)
    sys.exit(EXIT_FAILED)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="occbench")
def main() -> None:
    """occbench: datasets, metrics, baselines and leaderboards for offboard 3D semantic scene completion."""


@main.command()
@_dataset_options
@click.option("--method", default=None, help="Registered offboard method (see `occbench methods`).")
@click.option("--predictions", "predictions_dir", type=click.Path(path_type=Path), default=None,
              help="Score an existing folder of predictions (<DIR>/sequences/XX/predictions/NNNNNN.label[.gz]) instead of running a method.")
@click.option("--option", "-O", "options", multiple=True, metavar="KEY=VALUE", help="Method option (repeatable).")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None, help="Write the results JSON here.")
@click.option("--save-predictions", type=click.Path(path_type=Path), default=None,
              help="Also write the refined predictions here (resumable: existing frames are reused).")
@click.option("--compressed/--plain", default=False, show_default=True, help="Variant of saved predictions (.label.gz or .label).")
@click.option("--workers", "-j", type=int, default=None, help="Worker processes (default: number of CPUs, at most 8).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local worker processes, or Ray tasks (one per block of frames) on a cluster.")
@click.option("--address", default=None, help="Ray cluster address (with --executor ray; default: start a local Ray instance).")
@click.option("--city/--no-city", default=True, show_default=True, help="City-level static-class map metric.")
@click.option("--consistency/--no-consistency", default=True, show_default=True, help="Temporal consistency metric.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars and no tables; errors still go to stderr.")
def evaluate(dataset, root, split, onboard, predictions_root, sequences, method, predictions_dir, options, output,
             save_predictions, compressed, workers, executor, address, city, consistency, quiet):
    """Run an offboard METHOD on a split and score it (default: occfiner on occbench-mini val)."""
    from occbench.evaluate import MethodSpec
    from occbench.evaluate import evaluate as run_evaluate
    from occbench.evaluate import write_results
    from occbench.methods import method_class, parse_options
    from occbench.report import full_report

    set_quiet(quiet)
    workers = workers or _default_workers()
    if method and predictions_dir:
        raise click.UsageError("give either --method or --predictions, not both")
    try:
        dspec = _dspec(dataset, root, split, onboard, predictions_root, sequences)
        extras = tuple(x for x, on in (("city", city), ("consistency", consistency)) if on)
        command = "occbench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        from occbench.datasets.check import dataset_warnings

        ds = dspec.open()
        for w in dataset_warnings(ds):  # e.g. ground truth absent from part of a sequence: only what is present is scored
            click.echo(w, err=True)
        if predictions_dir is not None:
            from occbench.evaluate import DatasetSpec
            from occbench.io.predictions import PredictionStore
            from occbench.submission import InvalidSubmission, check_submission_contents, check_submission_names

            # names and sizes first; contents are checked while they are scored (each file is read once)
            rep, files = check_submission_names(ds, PredictionStore(predictions_dir))
            if not rep.ok:
                click.echo(check_submission_contents(ds, rep, files).summary(), err=True)
                sys.exit(EXIT_INVALID_SUBMISSION)
            kw = dict(dspec.kwargs, predictions_root=str(Path(predictions_dir).parent))
            sub = DatasetSpec(dspec.name, dspec.root, dspec.split, Path(predictions_dir).name, kw)
            try:
                results = run_evaluate(sub, None, workers, None, extras, command, executor, address, validate=True)
            except InvalidSubmission as e:
                click.echo(e.report.summary(), err=True)
                sys.exit(EXIT_INVALID_SUBMISSION)
            if not quiet:
                click.echo(rep.summary(), err=True)
        else:
            method = method or "occfiner"
            cls = method_class(method)
            opts = parse_options(options)
            cls(**opts)  # validate options before starting workers
            results = run_evaluate(dspec, MethodSpec(method, opts), workers,
                                   (str(save_predictions), compressed) if save_predictions else None, extras, command,
                                   executor, address)
    except (OccbenchError, KeyError, ValueError, RuntimeError) as e:
        _fail(e)
    if output is not None:
        write_results(output, results)
    if not quiet:
        click.echo(full_report(results))
        if output is not None:
            click.echo(f"\nresults written to {output}")


@main.command()
@_dataset_options
@click.option("--method", required=True, help="Registered offboard method.")
@click.option("--option", "-O", "options", multiple=True, metavar="KEY=VALUE", help="Method option (repeatable).")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True,
              help="Folder receiving sequences/XX/predictions/NNNNNN.label[.gz] (raw ids, submission layout).")
@click.option("--compressed/--plain", default=False, show_default=True)
@click.option("--targets", type=click.Choice(["labelled", "all"]), default="labelled", show_default=True)
@click.option("--workers", "-j", type=int, default=None)
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local worker processes, or Ray tasks (one per block of frames) on a cluster.")
@click.option("--address", default=None, help="Ray cluster address (with --executor ray; default: start a local Ray instance).")
@click.option("--quiet", "-q", is_flag=True)
def refine(dataset, root, split, onboard, predictions_root, sequences, method, options, output, compressed, targets,
           workers, executor, address, quiet):
    """Write a method's refined predictions for a split (resumable; atomic files)."""
    from occbench.evaluate import MethodSpec
    from occbench.methods import method_class, parse_options
    from occbench.refine import refine_split

    set_quiet(quiet)
    try:
        opts = parse_options(options)
        method_class(method)(**opts)
        n, total = refine_split(_dspec(dataset, root, split, onboard, predictions_root, sequences),
                                MethodSpec(method, opts), str(output), compressed, workers or _default_workers(), targets,
                                executor, address)
    except (OccbenchError, KeyError, ValueError, RuntimeError) as e:
        _fail(e)
    if not quiet:
        click.echo(f"{n} of {total} frames written to {output} ({total - n} already present)")


@main.command()
def methods():
    """List the registered offboard methods."""
    from occbench.methods import available_methods, method_class

    for name in available_methods():
        try:
            desc = method_class(name).description
        except Exception as e:  # a broken third-party entry point must not hide the others
            desc = f"(cannot load: {e})"
        click.echo(f"{name:20s} {desc}")


@main.command()
@click.argument("src", type=click.Path(path_type=Path, exists=True))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--compressed/--plain", default=True, show_default=True, help="Target variant.")
@click.option("--quiet", "-q", is_flag=True)
def convert(src, dst, compressed, quiet):
    """Convert a prediction folder (SRC/sequences/XX/predictions) between .label and .label.gz."""
    from occbench.io.predictions import convert_store

    set_quiet(quiet)
    try:
        n = convert_store(src, dst, compressed, progress=not quiet)
    except OccbenchError as e:
        _fail(e)
    if not quiet:
        click.echo(f"{n} files written to {dst}")


def _add_optional_commands() -> None:
    """Commands living in their own modules."""
    from occbench.leaderboard_cli import leaderboard
    from occbench.render_cli import render

    from baselines.occfiner.command import train
    from occbench.autolabel.command import autolabel

    main.add_command(leaderboard)
    main.add_command(train)
    main.add_command(render)
    main.add_command(autolabel)
    from occbench.synth.command import synth

    main.add_command(synth)


_add_optional_commands()

if __name__ == "__main__":  # pragma: no cover
    main()

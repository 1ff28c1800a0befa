"""``occbench evaluate``: run an offboard method on a split (or read a submission) and score it."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from occbench.cli.options import (
    EXIT_FAILED,
    EXIT_INVALID_SUBMISSION,
    dataset_options,
    dataset_spec,
    default_workers,
    execution_options,
    fail,
    foreign_format,
    format_options,
    method_options,
    metric_extras,
)
from occbench.errors import OccbenchError
from occbench.runtime.progress import set_quiet


@click.command()
@dataset_options
@click.option("--method", default=None, help="Registered offboard method (see `occbench methods`).")
@click.option(
    "--predictions",
    "predictions_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Score an existing folder of predictions (<DIR>/sequences/XX/predictions/NNNNNN.label[.gz]) "
    "instead of running a method.",
)
@click.option(
    "--format",
    "pred_format",
    type=click.Choice(["label", "monoscene-pkl", "npy"]),
    default="label",
    show_default=True,
    help="With --predictions: files written by another codebase (see `occbench convert --help`).",
)
@format_options
@click.option(
    "--fingerprint-content", is_flag=True, help="Also hash the content of the scored ground truth (reads it all)."
)
@click.option(
    "--ground-truth",
    type=click.Choice(["auto", "voxels", "sscbench-npy"]),
    default="auto",
    show_default=True,
    help="sscbench-kitti360: data_2d_raw/<drive>/voxels (.label/.invalid) "
    "or SSCBench preprocess/labels/<drive>/*_1_1.npy.",
)
@click.option("--option", "-O", "options", multiple=True, metavar="KEY=VALUE", help="Method option (repeatable).")
@click.option(
    "--output",
    "-o",
    type=click.Path(),  # a str: a trailing '/' (a folder, created if missing) must survive
    default=None,
    help="Results JSON file, or a folder to put it in (an existing folder, or a path ending in '/', created if "
    "missing). Default: ./occbench-results/<dataset>-<split>-<onboard>-<method>-<time>.json. Checked writable "
    "before any work starts.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the -o file if it exists (by default an existing results file is never replaced).",
)
@click.option(
    "--save-predictions",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the refined predictions here (resumable: existing frames are reused).",
)
@click.option(
    "--compressed/--plain", default=False, show_default=True, help="Variant of saved predictions (.label.gz or .label)."
)
@execution_options
@click.option(
    "--metric",
    "metric_names",
    multiple=True,
    metavar="NAME",
    help="A metric to compute (repeatable): ssc (always computed), city, consistency, or one registered under "
    "the occbench.metrics entry points. Default: ssc, city and consistency.",
)
@click.option(
    "--city/--no-city", default=None, help="Add or leave out the city-level static-class map metric (default: on)."
)
@click.option(
    "--consistency/--no-consistency",
    default=None,
    help="Add or leave out the temporal consistency metric (default: on).",
)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="No progress bars and no tables; errors and the results path still go to stderr.",
)
@click.option(
    "--max-frames",
    type=click.IntRange(min=1),
    default=None,
    help="Quick partial run: only the first N frames of the split. The results say so and are kept off leaderboards.",
)
@click.option(
    "--frames",
    "frames_text",
    default=None,
    metavar="SCANS",
    help="Score only these scans of each sequence: numbers (each must have ground truth) and ranges (the "
    "labelled scans in them), e.g. 0,5,10-20; with --predictions only their files are needed. "
    "The results say so and are kept off leaderboards.",
)
def evaluate(
    dataset,
    root,
    split,
    onboard,
    predictions_root,
    sequences,
    frame_map,
    method,
    predictions_dir,
    pred_format,
    ids,
    pkl_key,
    fingerprint_content,
    ground_truth,
    options,
    output,
    overwrite,
    save_predictions,
    compressed,
    workers,
    executor,
    address,
    metric_names,
    city,
    consistency,
    max_frames,
    frames_text,
    quiet,
):
    """Run an offboard METHOD on a split and score it (default: occfiner on occbench-mini val).

    The results JSON is always written (see --output); its path is printed at the end.
    """
    from occbench.evaluation.config import EvalConfig
    from occbench.evaluation.results_path import check_writable, default_results_path, names_folder, resolve_output
    from occbench.evaluation.run import MethodSpec
    from occbench.evaluation.run import evaluate as run_evaluate

    set_quiet(quiet)
    if method and predictions_dir:
        raise click.UsageError("give either --method or --predictions, not both")
    if pred_format != "label" and predictions_dir is None:
        raise click.UsageError(
            "--format applies to --predictions (convert onboard predictions with `occbench convert`)"
        )
    if ground_truth != "auto" and dataset != "sscbench-kitti360":
        raise click.UsageError("--ground-truth applies to --dataset sscbench-kitti360")
    frames = scan_ranges = None
    if frames_text is not None:
        from occbench.evaluation.jobs import parse_scans

        try:
            scan_ranges = parse_scans(frames_text)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="'--frames'") from None
    opts = None if predictions_dir is not None else method_options(method or "occfiner", options)
    dspec = dataset_spec(dataset, root, split, onboard, predictions_root, sequences, frame_map)
    if ground_truth != "auto":
        dspec.kwargs["ground_truth"] = ground_truth
    label = f"predictions-{Path(predictions_dir).name}" if predictions_dir is not None else method or "occfiner"
    default = default_results_path(dataset, split, dspec.onboard if opts is not None else None, label)
    out_path = resolve_output(output, default)
    number = output is None or names_folder(output)  # a default name: the next free one at write time
    try:
        check_writable(out_path, overwrite=overwrite or number)
    except OSError as e:
        raise click.BadParameter(str(e), param_hint="'-o' / '--output'") from None
    workers = default_workers(None if predictions_dir else (method or "occfiner"), workers, executor)
    run = dict(  # what every EvalConfig of this command shares
        metrics=metric_extras(metric_names, city, consistency),
        workers=workers,
        executor=executor,
        address=address,
        fingerprint_content=fingerprint_content,
        max_frames=max_frames,
        command="occbench " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    try:
        from occbench.datasets.check import dataset_warnings

        ds = dspec.open()
        for w in dataset_warnings(
            ds
        ):  # e.g. ground truth absent from part of a sequence: only what is present is scored
            click.echo(w, err=True)
        targets = None
        if scan_ranges is not None or max_frames is not None:
            from occbench.evaluation.jobs import select_scans, split_targets

            if scan_ranges is not None:  # a range: the labelled scans in it
                frames = select_scans(scan_ranges, (t for _, ts in split_targets(ds) for t in ts))
            # scans without ground truth are refused before any work; a partial run needs only its frames' files
            targets = dict(split_targets(ds, max_frames, frames))
        if predictions_dir is not None:
            from occbench.evaluation.specs import Submission
            from occbench.evaluation.submission import InvalidSubmission

            sub = Submission(str(predictions_dir), dspec, foreign_format(pred_format, ids, pkl_key))
            # names, kinds and sizes first; contents are checked while they are scored (each file is read once)
            rep, files = sub.check_names(ds, targets)
            if not rep.ok:
                click.echo(sub.check_contents(ds, rep, files).summary(), err=True)
                sys.exit(EXIT_INVALID_SUBMISSION)
            try:
                results = run_evaluate(EvalConfig(submission=sub, validate=True, frames=frames, **run))
            except InvalidSubmission as e:
                click.echo(e.report.summary(), err=True)
                sys.exit(EXIT_INVALID_SUBMISSION)
            if not quiet:
                click.echo(rep.summary(), err=True)
        else:
            results = run_evaluate(
                EvalConfig(
                    dataset=dspec,
                    method=MethodSpec(method or "occfiner", opts),
                    save_predictions_dir=str(save_predictions) if save_predictions else None,
                    save_compressed=compressed,
                    frames=frames,
                    **run,
                )
            )
    except (OccbenchError, KeyError, ValueError, RuntimeError) as e:
        fail(e)

    def report() -> str:  # the terminal tables (tabulate's import and all) only where they are printed
        from occbench.report import full_report

        return full_report(results.to_dict())

    clash = False
    try:  # before anything is printed: the results are never lost to a closed terminal
        try:
            written = results.write(out_path, overwrite=overwrite, number=number)
        except FileExistsError:  # another run wrote -o while this one ran: both results are kept
            written, clash = results.write(out_path, number=True), True
    except OSError as e:
        click.echo(report())
        click.echo(
            f"error: the results JSON could not be written to {out_path} ({e.strerror or e}); "
            "the scores are printed above",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    if not quiet:
        click.echo(report())
    if clash:
        click.echo(
            f"error: {out_path} was created by another run while this one ran (it is left as it is); these "
            f"results were written to {written}",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    click.echo(f"results written to {written}", err=True)

"""The ``occbench`` command line.

Exit codes (also in ``occbench --help``): 0 success; 1 the run failed (a data or method error, message on stderr);
2 usage error (unknown command, method, dataset, split or option, a bad option value, an unwritable output);
3 an invalid submission (``evaluate --predictions``); 4 stale leaderboards (``leaderboard --check``);
5 invalid results files (``leaderboard``: each named, nothing written).

Start-up imports only click: every command imports what it needs when it runs, and commands defined elsewhere
are imported only when used (:class:`occbench.lazy_group.LazyGroup`).
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from occbench import __version__
from occbench.dataset_cards import dataset_names
from occbench.errors import OccbenchError, UnknownNameError
from occbench.lazy_group import LazyGroup
from occbench.progress import set_quiet

EXIT_FAILED, EXIT_INVALID_SUBMISSION, EXIT_STALE = 1, 3, 4

# built-in commands living in their own modules: name -> ("module:command", first line of its help)
LAZY_COMMANDS = {
    "autolabel": ("occbench.autolabel.command:autolabel",
                  "Auto-labeling protocol (OccFiner Table 6): retrain an onboard model on GT-Train (+ pseudo-labels of the test split)."),
    "leaderboard": ("occbench.leaderboard_cli:leaderboard", "Render leaderboards/*.md from result files (one page per dataset/split)."),
    "render": ("occbench.render_cli:render", "Bird's-eye-view pictures and plots (PNG)."),
    "synth": ("occbench.synth.command:synth",
              "Generate occbench-mini, the synthetic SemanticKITTI-layout data set with simulated onboard predictions."),
}

EPILOG = """\b
Data: occbench-mini, the default dataset, is generated on first use
(about 1.3 GB) into the data cache, $OCCBENCH_DATA/mini-v<generator version>;
$OCCBENCH_DATA defaults to ~/.cache/occbench.

\b
Exit codes:
  0  success
  1  the run failed (data or method error; the message is on stderr)
  2  usage error: unknown command, method, dataset, split or option,
     a bad option value, an unwritable output
  3  invalid submission (evaluate --predictions)
  4  stale leaderboards (leaderboard --check)
  5  invalid results files (leaderboard: each named, nothing written)
"""


# the names of occbench.datasets.DATASETS, from the dataset files (start-up imports no loader; a test keeps them equal)
DATASET_NAMES = dataset_names()

# --root of every command that opens a dataset
ROOT_HELP = ("Dataset root. mini: a folder holding a generated occbench-mini (default: the data cache, "
             "$OCCBENCH_DATA/mini-v<generator version>, generated there on first use; `occbench synth --output DIR` "
             "generates one elsewhere). Real datasets: where the downloaded data lives (required).")


def _default_workers(method: str | None = None, requested: int | None = None, executor: str = "local") -> int:
    """``requested`` (warned about when above the cores or the memory), else the cores, at most 8, over the threads
    a worker of the method keeps busy, bounded by the available memory over the method's per-worker estimate
    (occbench.resources; ``method`` None: scoring)."""
    if executor != "local":
        return requested or max(1, min(os.cpu_count() or 1, 8))
    from occbench.resources import choose_workers

    n, warnings = choose_workers(requested, method)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    return n


def _dataset_options(f):
    f = click.option("--dataset", "dataset", default="mini", show_default=True,
                     type=click.Choice(DATASET_NAMES), help="Which dataset.")(f)
    f = click.option("--root", type=click.Path(path_type=Path), default=None, help=ROOT_HELP)(f)
    f = click.option("--split", default="val", show_default=True, help="train / val / test.")(f)
    f = click.option("--onboard", default=None, help="Onboard model whose predictions are refined (mini: voxformer-sim).")(f)
    f = click.option("--predictions-root", type=click.Path(path_type=Path), default=None,
                     help="Folder holding <onboard>/sequences/XX/predictions (default <root>/predictions).")(f)
    f = click.option("--sequence", "sequences", multiple=True, help="Restrict to these sequences (repeatable).")(f)
    return f


def _format_options(f):
    """--ids / --pkl-key: how files of another codebase hold their grids (occbench.io.formats)."""
    f = click.option("--ids", type=click.Choice(["train", "raw"]), default=None,
                     help="Id space of the files (default: raw for label, train for monoscene-pkl and npy).")(f)
    f = click.option("--pkl-key", default="y_pred", show_default=True,
                     help="monoscene-pkl: dict key of the grid (OccFormer: output_voxel, Symphonies: pred).")(f)
    return f


def _foreign_format(kind, ids, key):
    from occbench.io.formats import ForeignFormat

    return ForeignFormat(kind, ids or "", key)


def _dspec(dataset, root, split, onboard, predictions_root, sequences):
    from occbench.evaluate import DatasetSpec

    kw = {}
    if predictions_root is not None:
        kw["predictions_root"] = str(predictions_root)
    if sequences:
        kw["sequences"] = list(sequences)
    if dataset == "mini" and onboard is None:
        from occbench.datasets.mini import DEFAULT_ONBOARD

        onboard = DEFAULT_ONBOARD
    return DatasetSpec(dataset, None if root is None else str(root), split, onboard, kw)


def _method_options(method: str, options: tuple[str, ...]) -> dict:
    """The method's options from ``-O key=value``, checked against its declared types before any work starts.
    An unknown method or option, or a value of the wrong type, is a usage error (exit 2)."""
    from occbench.errors import FormatError, MissingDataError
    from occbench.methods import method_class, parse_options
    from occbench.methods.options import OptionError

    try:
        cls = method_class(method)
    except UnknownNameError as e:
        raise click.BadParameter(f"{e}; see `occbench methods`", param_hint="'--method'") from None
    try:
        opts = parse_options(options, cls, method)
        cls(**opts)
    except (OptionError, UnknownNameError) as e:
        raise click.BadParameter(str(e), param_hint="'-O' / '--option'") from None
    except (FormatError, MissingDataError) as e:  # a file the method reads (e.g. its checkpoint): a failed run
        _fail(e)
    except (TypeError, ValueError) as e:
        raise click.BadParameter(f"method {method!r}: {e}", param_hint="'-O' / '--option'") from None
    except (OccbenchError, RuntimeError) as e:
        _fail(e)
    return opts


def _fail(e: Exception) -> None:
    if isinstance(e, UnknownNameError):  # a name the user typed (e.g. --split): usage error, exit 2
        raise click.UsageError(str(e))
    click.echo(f"error: {e}", err=True)
    sys.exit(EXIT_FAILED)


@click.group(cls=LazyGroup, lazy=LAZY_COMMANDS, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="occbench")
def main() -> None:
    """occbench: datasets, metrics, baselines and leaderboards for offboard 3D semantic scene completion."""


def _metric_extras(names: tuple[str, ...], city: bool | None, consistency: bool | None) -> tuple[str, ...]:
    """The metrics evaluate computes besides ssc: the ``--metric`` names (default city and consistency), with
    ``--city``/``--consistency`` adding and ``--no-city``/``--no-consistency`` removing theirs."""
    from occbench.metrics.registry import BUILTIN, metric_class

    chosen = dict.fromkeys(names or ("city", "consistency"))
    for n in chosen:
        if n not in BUILTIN:
            try:
                metric_class(n)
            except UnknownNameError as e:
                raise click.BadParameter(str(e), param_hint="'--metric'") from None
    for n, on in (("city", city), ("consistency", consistency)):
        if on is True:
            chosen[n] = None
        elif on is False:
            chosen.pop(n, None)
    return tuple(n for n in chosen if n != "ssc")


@main.command()
@_dataset_options
@click.option("--method", default=None, help="Registered offboard method (see `occbench methods`).")
@click.option("--predictions", "predictions_dir", type=click.Path(path_type=Path), default=None,
              help="Score an existing folder of predictions (<DIR>/sequences/XX/predictions/NNNNNN.label[.gz]) instead of running a method.")
@click.option("--format", "pred_format", type=click.Choice(["label", "monoscene-pkl", "npy"]), default="label", show_default=True,
              help="With --predictions: files written by another codebase (see `occbench convert --help`).")
@_format_options
@click.option("--fingerprint-content", is_flag=True, help="Also hash the content of the scored ground truth (reads it all).")
@click.option("--ground-truth", type=click.Choice(["auto", "voxels", "sscbench-npy"]), default="auto", show_default=True,
              help="sscbench-kitti360: data_2d_raw/<drive>/voxels (.label/.invalid) or SSCBench preprocess/labels/<drive>/*_1_1.npy.")
@click.option("--option", "-O", "options", multiple=True, metavar="KEY=VALUE", help="Method option (repeatable).")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Results JSON file, or a folder to put it in. Default: ./occbench-results/"
                   "<dataset>-<split>-<onboard>-<method>-<time>.json. Checked writable before any work starts.")
@click.option("--save-predictions", type=click.Path(path_type=Path), default=None,
              help="Also write the refined predictions here (resumable: existing frames are reused).")
@click.option("--compressed/--plain", default=False, show_default=True, help="Variant of saved predictions (.label.gz or .label).")
@click.option("--workers", "-j", type=int, default=None, help="Worker processes (default: number of CPUs, at most 8, over the threads a worker of the method uses "
                   "(occfiner 2), fewer if the method's workers would not fit in memory).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local worker processes, or Ray tasks (one per block of frames) on a cluster.")
@click.option("--address", default=None, help="Ray cluster address (with --executor ray; default: start a local Ray instance).")
@click.option("--metric", "metric_names", multiple=True, metavar="NAME",
              help="A metric to compute (repeatable): ssc (always computed), city, consistency, or one registered under "
                   "the occbench.metrics entry points. Default: ssc, city and consistency.")
@click.option("--city/--no-city", default=None, help="Add or leave out the city-level static-class map metric (default: on).")
@click.option("--consistency/--no-consistency", default=None, help="Add or leave out the temporal consistency metric (default: on).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars and no tables; errors and the results path still go to stderr.")
@click.option("--max-frames", type=click.IntRange(min=1), default=None,
              help="Quick partial run: only the first N frames of the split. The results say so and are kept off leaderboards.")
def evaluate(dataset, root, split, onboard, predictions_root, sequences, method, predictions_dir, pred_format, ids, pkl_key,
             fingerprint_content, ground_truth, options, output, save_predictions, compressed, workers, executor, address,
             metric_names, city, consistency, max_frames, quiet):
    """Run an offboard METHOD on a split and score it (default: occfiner on occbench-mini val).

    The results JSON is always written (see --output); its path is printed at the end.
    """
    from occbench.evaluate import MethodSpec
    from occbench.evaluate import evaluate as run_evaluate
    from occbench.evaluate import write_results
    from occbench.report import full_report
    from occbench.results_path import check_writable, default_results_path, resolve_output

    set_quiet(quiet)
    if method and predictions_dir:
        raise click.UsageError("give either --method or --predictions, not both")
    if pred_format != "label" and predictions_dir is None:
        raise click.UsageError("--format applies to --predictions (convert onboard predictions with `occbench convert`)")
    if ground_truth != "auto" and dataset != "sscbench-kitti360":
        raise click.UsageError("--ground-truth applies to --dataset sscbench-kitti360")
    opts = None if predictions_dir is not None else _method_options(method or "occfiner", options)
    dspec = _dspec(dataset, root, split, onboard, predictions_root, sequences)
    if ground_truth != "auto":
        dspec.kwargs["ground_truth"] = ground_truth
    label = f"predictions-{Path(predictions_dir).name}" if predictions_dir is not None else method or "occfiner"
    out_path = resolve_output(output, default_results_path(dataset, split, dspec.onboard if opts is not None else None, label))
    try:
        check_writable(out_path)
    except OSError as e:
        raise click.BadParameter(str(e), param_hint="'-o' / '--output'") from None
    workers = _default_workers(None if predictions_dir else (method or "occfiner"), workers, executor)
    extras = _metric_extras(metric_names, city, consistency)
    try:
        command = "occbench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        from occbench.datasets.check import dataset_warnings

        ds = dspec.open()
        for w in dataset_warnings(ds):  # e.g. ground truth absent from part of a sequence: only what is present is scored
            click.echo(w, err=True)
        if predictions_dir is not None:
            from occbench.evaluate import DatasetSpec
            from occbench.io.formats import open_prediction_store
            from occbench.submission import InvalidSubmission, check_submission_contents, check_submission_names

            fmt = _foreign_format(pred_format, ids, pkl_key)
            store = open_prediction_store(predictions_dir, fmt, ds.label_map)
            # names, kinds and sizes first; contents are checked while they are scored (each file is read once)
            rep, files = check_submission_names(ds, store)
            if not rep.ok:
                click.echo(check_submission_contents(ds, rep, files, store=store).summary(), err=True)
                sys.exit(EXIT_INVALID_SUBMISSION)
            kw = dict(dspec.kwargs, predictions_root=str(Path(predictions_dir).parent))
            if not fmt.is_submission:
                kw["predictions_format"] = fmt
            sub = DatasetSpec(dspec.name, dspec.root, dspec.split, Path(predictions_dir).name, kw)
            try:
                results = run_evaluate(sub, None, workers=workers, extras=extras, command=command, executor=executor,
                                       address=address, fingerprint_content=fingerprint_content, max_frames=max_frames,
                                       validate=True)
            except InvalidSubmission as e:
                click.echo(e.report.summary(), err=True)
                sys.exit(EXIT_INVALID_SUBMISSION)
            if not quiet:
                click.echo(rep.summary(), err=True)
        else:
            results = run_evaluate(dspec, MethodSpec(method or "occfiner", opts), workers=workers,
                                   save=(str(save_predictions), compressed) if save_predictions else None, extras=extras,
                                   command=command, executor=executor, address=address,
                                   fingerprint_content=fingerprint_content, max_frames=max_frames)
    except (OccbenchError, KeyError, ValueError, RuntimeError) as e:
        _fail(e)
    report = full_report(results)
    try:
        write_results(out_path, results)  # before anything is printed: the results are never lost to a closed terminal
    except OSError as e:
        click.echo(report)
        click.echo(f"error: the results JSON could not be written to {out_path} ({e.strerror or e}); "
                   "the scores are printed above", err=True)
        sys.exit(EXIT_FAILED)
    if not quiet:
        click.echo(report)
    click.echo(f"results written to {out_path}", err=True)


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
    from occbench.refine import refine_split

    set_quiet(quiet)
    opts = _method_options(method, options)
    try:
        n, total = refine_split(_dspec(dataset, root, split, onboard, predictions_root, sequences),
                                MethodSpec(method, opts), str(output), compressed, _default_workers(method, workers, executor), targets,
                                executor, address)
    except (OccbenchError, KeyError, ValueError, RuntimeError) as e:
        _fail(e)
    if not quiet:
        click.echo(f"{n} of {total} frames written to {output} ({total - n} already present)")


@main.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
def methods(names):
    """List the registered offboard methods and their options (give NAMEs to show only those).

    Options are set with `-O KEY=VALUE` (repeatable) on `evaluate` and `refine`, e.g.
    `occbench evaluate --method average-fusion -O n=10`; `X | None` options take `null`, bool options true/false.
    """
    from occbench.methods import available_methods, method_class, option_infos
    from occbench.methods.options import format_default

    known = available_methods()
    for name in names:
        if name not in known:
            raise click.BadParameter(str(UnknownNameError("method", name, known)), param_hint="'NAME'")
    for i, name in enumerate(names or known):
        try:
            cls = method_class(name)
        except Exception as e:  # noqa: BLE001 - a broken third-party entry point must not hide the others
            click.echo(f"{name}\n  (cannot load: {e})\n")
            continue
        click.echo(name)
        if cls.description:
            click.echo(f"  {cls.description}")
        infos = option_infos(cls)
        if not infos:
            click.echo("  options: none")
        else:
            click.echo("  options (-O KEY=VALUE):")
            w_name, w_type = max(len(o.name) for o in infos), max(len(o.type) for o in infos)
            for o in infos:
                click.echo(f"    {o.name:{w_name}}  {o.type:{w_type}}  default {format_default(o.default)}")
        click.echo("")


@main.command()
@click.argument("src", type=click.Path(path_type=Path, exists=True))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--from", "src_format", type=click.Choice(["label", "monoscene-pkl", "npy"]), default="label", show_default=True,
              help="Format of SRC: label (submission layout), monoscene-pkl (MonoScene/SSCBench generate_output.py), npy.")
@click.option("--dataset", type=click.Choice(dataset_names(synthetic=False)), default=None,
              help="Label map and sequence names of SRC (required unless SRC is raw-id .label files).")
@_format_options
@click.option("--compressed/--plain", default=True, show_default=True, help="Target variant.")
@click.option("--quiet", "-q", is_flag=True)
def convert(src, dst, src_format, dataset, ids, pkl_key, compressed, quiet):
    """Write SRC's predictions to DST in the submission layout (DST/sequences/XX/predictions/NNNNNN.label[.gz], raw ids).

    SRC: raw-id .label files in the submission layout (converted byte for byte between .label and .label.gz), or
    the files of an onboard codebase (--from, --dataset): every valid frame is written, every problem listed
    (exit 3 if there was any). Pickles are read without running code. Frames already in DST are skipped.
    """
    from occbench.io.formats import convert_foreign
    from occbench.io.predictions import convert_store

    set_quiet(quiet)
    try:
        fmt = _foreign_format(src_format, ids, pkl_key)
        if fmt.is_submission and dataset is None:
            n = convert_store(src, dst, compressed, progress=not quiet)
            if not quiet:
                click.echo(f"{n} files written to {dst}")
            return
        if dataset is None:
            raise click.UsageError(f"--dataset is required with --from {src_format} --ids {fmt.ids}")
        rep = convert_foreign(src, dst, fmt, dataset, compressed, progress=not quiet)
    except (OccbenchError, ValueError) as e:
        _fail(e)
    if rep.problems:
        click.echo(rep.summary(dst), err=True)
        sys.exit(EXIT_INVALID_SUBMISSION)
    if not quiet:
        click.echo(rep.summary(dst))


if __name__ == "__main__":  # pragma: no cover
    main()

"""Options and helpers shared by the commands of the ``occbench`` command line.

Module-level imports stay light (click): ``occbench --help`` imports this module.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from occbench.dataset_cards import dataset_cards, dataset_names
from occbench.errors import OccbenchError, UnknownNameError

EXIT_FAILED, EXIT_INVALID_SUBMISSION, EXIT_STALE, EXIT_INVALID_RESULTS = 1, 3, 4, 5


# the names of occbench.datasets.DATASETS, from the dataset files (start-up imports no loader; a test keeps them equal)
DATASET_NAMES = dataset_names()

# --onboard of every command that opens a dataset; the defaults are the dataset files'
ONBOARD_HELP = (
    "Onboard model whose predictions are refined (default: "
    + ("; ".join(f"{c.name}: {c.default_onboard}" for c in dataset_cards().values() if c.default_onboard) or "none")
    + "; other datasets: required)."
)


def default_onboard(dataset: str, onboard: str | None) -> str | None:
    """``onboard``, else the dataset's default onboard model (its dataset file's ``default_onboard``)."""
    if onboard is None and dataset in dataset_cards():
        return dataset_cards()[dataset].default_onboard
    return onboard


# --root of every command that opens a dataset
ROOT_HELP = (
    "Dataset root. mini: a folder holding a generated occbench-mini (default: the data cache, "
    "$OCCBENCH_DATA/mini-v<generator version>, generated there on first use; `occbench synth --output DIR` "
    "generates one elsewhere). Real datasets: where the downloaded data lives (required)."
)


def default_workers(method: str | None = None, requested: int | None = None, executor: str = "local") -> int:
    """``requested`` (warned about when above the cores or the memory), else the cores, at most 8, over the threads
    a worker of the method keeps busy, bounded by the available memory over the method's per-worker estimate
    (occbench.evaluation.resources; ``method`` None: scoring)."""
    if executor != "local":
        return requested or max(1, min(os.cpu_count() or 1, 8))
    from occbench.evaluation.resources import choose_workers

    n, warnings = choose_workers(requested, method)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    return n


# --frame-map of every command that opens a dataset (sscbench-kitti360 only)
FRAME_MAP_HELP = (
    "sscbench-kitti360: which KITTI-360 frame each SSCBench frame is, to look its pose up in KITTI-360's "
    "cam0_to_world.txt: 'sscbench-release' (default: the public release's correspondence, shipped with "
    "occbench), a frame-map file, or 'identity' for poses files already numbered by SSCBench frame."
)


def frame_map_option(f):
    return click.option(
        "--frame-map", "frame_map", default=None, metavar="FILE|sscbench-release|identity", help=FRAME_MAP_HELP
    )(f)


def dataset_kwargs(dataset: str, frame_map: str | None) -> dict:
    """Loader arguments of the dataset options that only some datasets take (a usage error elsewhere)."""
    if frame_map is None:
        return {}
    if dataset != "sscbench-kitti360":
        raise click.UsageError("--frame-map applies to --dataset sscbench-kitti360")
    return {"frame_map": frame_map}


def dataset_options(f):
    f = frame_map_option(f)
    f = click.option("--sequence", "sequences", multiple=True, help="Restrict to these sequences (repeatable).")(f)
    f = click.option(
        "--predictions-root",
        type=click.Path(path_type=Path),
        default=None,
        help="Folder holding <onboard>/sequences/XX/predictions (default <root>/predictions).",
    )(f)
    f = click.option("--onboard", default=None, help=ONBOARD_HELP)(f)
    f = click.option("--split", default="val", show_default=True, help="train / val / test.")(f)
    f = click.option("--root", type=click.Path(path_type=Path), default=None, help=ROOT_HELP)(f)
    f = click.option(
        "--dataset",
        "dataset",
        default="mini",
        show_default=True,
        type=click.Choice(DATASET_NAMES),
        help="Which dataset.",
    )(f)
    return f


def execution_options(f):
    """--workers / --executor / --address: where a method's (or the scoring's) work runs."""
    f = click.option(
        "--address",
        default=None,
        help="Ray cluster address (with --executor ray; default: start a local Ray instance).",
    )(f)
    f = click.option(
        "--executor",
        type=click.Choice(["local", "ray"]),
        default="local",
        show_default=True,
        help="local worker processes, or Ray tasks (one per block of frames) on a cluster.",
    )(f)
    f = click.option(
        "--workers",
        "-j",
        type=click.IntRange(min=1),
        default=None,
        help="Worker processes (default: number of CPUs, at most 8, over the threads a worker of the method "
        "uses (occfiner 2), fewer if the method's workers would not fit in memory).",
    )(f)
    return f


def format_options(f):
    """--ids / --pkl-key: how files of another codebase hold their grids (occbench.io.formats)."""
    f = click.option(
        "--pkl-key",
        default="y_pred",
        show_default=True,
        help="monoscene-pkl: dict key of the grid (OccFormer: output_voxel, Symphonies: pred).",
    )(f)
    f = click.option(
        "--ids",
        type=click.Choice(["train", "raw"]),
        default=None,
        help="Id space of the files (default: raw for label, train for monoscene-pkl and npy).",
    )(f)
    return f


def foreign_format(kind, ids, key):
    from occbench.io.formats import ForeignFormat

    return ForeignFormat(kind, ids or "", key)


def dataset_spec(dataset, root, split, onboard, predictions_root, sequences, frame_map=None):
    from occbench.evaluation.run import DatasetSpec

    kw = dataset_kwargs(dataset, frame_map)
    if predictions_root is not None:
        kw["predictions_root"] = str(predictions_root)
    if sequences:
        kw["sequences"] = list(sequences)
    onboard = default_onboard(dataset, onboard)
    return DatasetSpec(dataset, None if root is None else str(root), split, onboard, kw)


def method_options(method: str, options: tuple[str, ...]) -> dict:
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
        fail(e)
    except (TypeError, ValueError) as e:
        raise click.BadParameter(f"method {method!r}: {e}", param_hint="'-O' / '--option'") from None
    except (OccbenchError, RuntimeError) as e:
        fail(e)
    return opts


def fail(e: Exception) -> None:
    if isinstance(e, UnknownNameError):  # a name the user typed (e.g. --split): usage error, exit 2
        raise click.UsageError(str(e))
    from occbench.runtime.progress import end_progress_lines

    end_progress_lines()  # a bar left mid-line by the failed run would share the message's line
    click.echo(f"error: {e}", err=True)
    sys.exit(EXIT_FAILED)


def metric_extras(names: tuple[str, ...], city: bool | None, consistency: bool | None) -> tuple[str, ...]:
    """The metrics evaluate computes besides ssc: the ``--metric`` names (default city and consistency), with
    ``--city``/``--consistency`` adding and ``--no-city``/``--no-consistency`` removing theirs."""
    from occbench.metrics.registry import metric_class

    chosen = dict.fromkeys(names or ("city", "consistency"))
    for n in chosen:
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

"""``occbench render``: pictures of frames and city maps from saved predictions, and plots of results files.

Reads what exists (the dataset's ground truth and onboard predictions, folders of saved predictions given with
``--predictions NAME=DIR``, results files); a method runs only when named with ``--method`` (through the
evaluation's workers, into ``--save-predictions`` or a temporary folder).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import click

from occbench.cli.options import (
    DATASET_NAMES,
    ONBOARD_HELP,
    ROOT_HELP,
    dataset_kwargs,
    default_onboard,
    default_workers,
    frame_map_option,
)


def _sequence_options(f):
    """--dataset / --root / --split / --onboard / --sequence: the one sequence a picture shows."""
    for opt in reversed(
        (
            click.option("--dataset", default="mini", show_default=True, type=click.Choice(DATASET_NAMES)),
            click.option("--root", type=click.Path(path_type=Path), default=None, help=ROOT_HELP),
            click.option("--split", default="val", show_default=True),
            click.option("--onboard", default=None, help=ONBOARD_HELP),
            click.option("--sequence", default=None, help="Sequence name (default: the split's first)."),
            frame_map_option,
        )
    ):
        f = opt(f)
    return f


def _source_options(f):
    """--predictions / --method / --save-predictions / --workers: the predictions a picture shows."""
    for opt in reversed(
        (
            click.option(
                "--predictions",
                "prediction_dirs",
                multiple=True,
                metavar="[NAME=]DIR",
                help="A folder of saved predictions (<DIR>/sequences/XX/predictions/NNNNNN.label[.gz], raw ids: what "
                "`occbench refine` or `evaluate --save-predictions` wrote, or a submission); NAME labels it "
                "(default: the folder's name). Repeatable.",
            ),
            click.option(
                "--method",
                "methods",
                multiple=True,
                help="Run this offboard method first (repeatable); only when asked, with the evaluation's workers.",
            ),
            click.option(
                "--option",
                "-O",
                "options",
                multiple=True,
                metavar="KEY=VALUE",
                help="Option of the --method run(s) (repeatable).",
            ),
            click.option(
                "--save-predictions",
                type=click.Path(path_type=Path),
                default=None,
                help="Where --method writes its predictions (<DIR>/<method>/; resumable, kept; default: a temporary "
                "folder removed afterwards).",
            ),
            click.option(
                "--workers", "-j", type=click.IntRange(min=1), default=None, help="Worker processes of a --method run."
            ),
        )
    ):
        f = opt(f)
    return f


def _fail(e: Exception) -> None:
    click.echo(f"error: {e}", err=True)
    sys.exit(1)


def _open(dataset, root, split, onboard, sequence, frame_map):
    from occbench.cli.options import dataset_spec
    from occbench.datasets import open_dataset

    onboard = default_onboard(dataset, onboard)
    ds = open_dataset(dataset, root, split=split, onboard=onboard, **dataset_kwargs(dataset, frame_map))
    seq = ds[sequence] if sequence else ds.sequences[0]
    return ds, seq, dataset_spec(dataset, root, split, onboard, None, (seq.name,), frame_map), onboard


def _sources(dspec, seq, onboard, onboard_column, prediction_dirs, methods, options, save, workers, targets, tmp):
    """The columns: onboard (if any and wanted), the folders, then each method's folder (run now)."""
    from occbench.cli.options import method_options
    from occbench.evaluation.specs import MethodSpec
    from occbench.render.sources import PredictionSource, parse_prediction_folders, run_method

    cols = []
    if onboard_column and onboard:
        cols.append(PredictionSource(f"onboard ({onboard})"))
    cols += parse_prediction_folders(prediction_dirs)
    for m in methods:
        out = Path(save if save is not None else tmp) / m
        cols.append(
            run_method(
                dspec, MethodSpec(m, method_options(m, options)), seq.name, targets, out, default_workers(m, workers)
            )
        )
    return cols


@click.group()
def render() -> None:
    """Pictures (frames, city maps) and plots of results files (PNG)."""


@render.command("frame")
@_sequence_options
@click.option(
    "--frame", "scan", type=int, default=None, help="Scan number (default: the sequence's first labelled scan)."
)
@_source_options
@click.option(
    "--onboard-column/--no-onboard-column",
    default=True,
    show_default=True,
    help="Show the onboard model's prediction as a column.",
)
@click.option(
    "--views",
    default="3d,bev,error",
    show_default=True,
    help="Rows, comma-separated, from: 3d (shaded voxels), bev (bird's-eye), error (BEV errors), error3d.",
)
@click.option(
    "--width",
    type=float,
    default=7.0,
    show_default=True,
    help="Figure width in inches (7: across a two-column page; 3.4: one column, with two or three columns of panels).",
)
@click.option("--dpi", type=int, default=200, show_default=True)
@click.option("--title", default=None, help="Title line (default: dataset, split, sequence, scan; '' for none).")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True)
def render_frame(
    dataset,
    root,
    split,
    onboard,
    sequence,
    frame_map,
    scan,
    prediction_dirs,
    methods,
    options,
    save_predictions,
    workers,
    onboard_column,
    views,
    width,
    dpi,
    title,
    output,
):
    """Ground truth and each prediction of one frame side by side: 3D voxel view, bird's-eye view and error view,
    the range crops drawn, a legend of the classes shown."""
    from occbench.render.frame import frame_figure

    t0 = time.perf_counter()
    try:
        ds, seq, dspec, onboard = _open(dataset, root, split, onboard, sequence, frame_map)
        t = seq.labelled_frames[0] if scan is None else scan
        if t not in seq.labelled_frames:
            lf = seq.labelled_frames
            raise ValueError(
                f"scan {t} of sequence {seq.name} has no ground truth (expected one of its {len(lf)} labelled "
                f"scans, {', '.join(map(str, lf[:3]))}{', ...' if len(lf) > 3 else ''})"
            )
        with tempfile.TemporaryDirectory(prefix="occbench-render-") as tmp:
            cols = _sources(
                dspec,
                seq,
                onboard,
                onboard_column,
                prediction_dirs,
                methods,
                options,
                save_predictions,
                workers,
                [t],
                tmp,
            )
            gt = seq.frame(t).ground_truth()
            preds = [(c.label, c.read(seq, t)) for c in cols]
        if title is None:
            title = f"{ds.describe().get('dataset', dataset)} {split}, sequence {seq.name}, scan {t:06d}"
        pic = frame_figure(
            gt,
            preds,
            ds.label_map,
            output,
            views=tuple(v.strip() for v in views.split(",") if v.strip()),
            title=title or None,
            width=width,
            dpi=dpi,
        )
    except Exception as e:  # noqa: BLE001 - the CLI reports any failure in words
        _fail(e)
    click.echo(f"wrote {pic.path} ({pic.size_px[0]}x{pic.size_px[1]} px, {time.perf_counter() - t0:.1f} s)")


@render.command("citymap")
@_sequence_options
@_source_options
@click.option(
    "--colour",
    "--color",
    "colour",
    type=click.Choice(["class", "error", "both"]),
    default="both",
    show_default=True,
    help="class: ground truth and prediction maps; error: the error map; both: all three.",
)
@click.option("--resolution", type=float, default=0.2, show_default=True, help="Metres per map pixel.")
@click.option("--title", default=None, help="Title line (default: dataset, split, sequence, source; '' for none).")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True)
def render_citymap(
    dataset,
    root,
    split,
    onboard,
    sequence,
    frame_map,
    prediction_dirs,
    methods,
    options,
    save_predictions,
    workers,
    colour,
    resolution,
    title,
    output,
):
    """City-level static-class map of a whole sequence (paper Fig. 7), streamed from saved predictions: the onboard
    model's, or one --predictions folder, or one --method run; scale bar, trajectory, legend."""
    import numpy as np

    from occbench.render.citymap import CityCanvas, city_figure, static_top
    from occbench.runtime.progress import progress_bar

    t0 = time.perf_counter()
    try:
        if len(prediction_dirs) + len(methods) > 1:
            raise click.UsageError("a city map shows one source: give at most one --predictions or --method")
        ds, seq, dspec, onboard = _open(dataset, root, split, onboard, sequence, frame_map)
        targets = list(seq.labelled_frames)
        static_ids = np.asarray(ds.label_map.static_ids)
        with tempfile.TemporaryDirectory(prefix="occbench-render-") as tmp:
            cols = _sources(
                dspec,
                seq,
                onboard,
                not (prediction_dirs or methods),
                prediction_dirs,
                methods,
                options,
                save_predictions,
                workers,
                targets,
                tmp,
            )
            if not cols:
                raise ValueError("no predictions to map: give --onboard, --predictions or --method")
            src = cols[0]
            canvas = CityCanvas(len(static_ids) + 1, resolution)
            poses = seq.poses
            for t in progress_bar(targets, desc=f"city map {src.label}"):
                gt = seq.frame(t).ground_truth()
                g, ev = static_top(gt, gt, static_ids)
                p, _ = static_top(src.read(seq, t), gt, static_ids)
                canvas.add(g, p, ev, poses[t])
        show = {"class": ("gt", "pred"), "error": ("error",), "both": ("gt", "pred", "error")}[colour]
        if title is None:
            title = (
                f"{ds.describe().get('dataset', dataset)} {split}, "
                f"sequence {seq.name}: {src.label}, {len(targets)} frames"
            )
        pic = city_figure(
            canvas,
            poses[:, :2, 3],
            ds.label_map,
            static_ids,
            output,
            show=show,
            titles={"pred": src.label, "error": f"errors of {src.label}"},
            title=title or None,
        )
    except click.UsageError:
        raise
    except Exception as e:  # noqa: BLE001
        _fail(e)
    click.echo(
        f"wrote {pic.path} ({pic.size_px[0]}x{pic.size_px[1]} px, {pic.resolution:g} m per pixel, "
        f"{time.perf_counter() - t0:.1f} s)"
    )


def _results(paths):
    """Results files through the bounded, validated reader: a stranger's file is refused naming it."""
    from occbench.errors import OccbenchError
    from occbench.results import Results

    out = []
    for p in paths:
        try:
            d = Results.read_for_plot(p).to_dict()
        except OccbenchError as e:
            _fail(e)
        out.append((d["header"]["method"]["name"], d))
    return out


@render.command("distance")
@click.argument("results", nargs=-1, type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--title", default=None)
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True)
def render_distance(results, title, output):
    """IoU and mIoU against distance for several results files."""
    from occbench.render.plots import distance_plot

    click.echo(f"wrote {distance_plot(_results(results), output, title=title)}")


@render.command("classes")
@click.argument("results", nargs=-1, type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--range", "range_key", default="51.2", show_default=True, help="Range crop (metres) of the IoUs.")
@click.option("--title", default=None)
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True)
def render_classes(results, range_key, title, output):
    """Per-class IoU bars for several results files."""
    from occbench.render.plots import class_bars

    click.echo(f"wrote {class_bars(_results(results), output, range_key, title=title)}")


@render.command("autolabel")
@click.argument("results", type=click.Path(path_type=Path, exists=True))
@click.option("--title", default=None)
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True)
def render_autolabel(results, title, output):
    """The auto-labeling curve of an `occbench autolabel --json` file."""
    from occbench.errors import FormatError, OccbenchError
    from occbench.regular_files import read_json_document
    from occbench.render.plots import autolabel_plot
    from occbench.results import Results

    try:
        doc = read_json_document(Path(results), "an occbench autolabel results file", follow=False)
        if not isinstance(doc, list) or not doc:
            found = "an empty list" if doc == [] else f"a JSON {type(doc).__name__}"
            raise FormatError(results, "a list of occbench autolabel results", found)
        runs = [Results.from_dict(d, kind="autolabel", source=results).to_dict() for d in doc]
        path = autolabel_plot(runs, output, title=title)
    except (OccbenchError, KeyError, TypeError, ValueError) as e:
        _fail(
            e
            if isinstance(e, OccbenchError)
            else ValueError(f"{results}: not an occbench autolabel results file ({e})")
        )
    click.echo(f"wrote {path}")

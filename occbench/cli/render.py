"""``occbench render``: pictures of frames, distance curves and city maps."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from occbench.cli.options import DATASET_NAMES, ONBOARD_HELP, ROOT_HELP, dataset_kwargs, default_onboard, frame_map_option


def _sequence_options(f):
    """--dataset / --root / --split / --onboard / --sequence: the one sequence a picture shows."""
    for opt in reversed((
        click.option("--dataset", default="mini", show_default=True, type=click.Choice(DATASET_NAMES)),
        click.option("--root", type=click.Path(path_type=Path), default=None, help=ROOT_HELP),
        click.option("--split", default="val", show_default=True),
        click.option("--onboard", default=None, help=ONBOARD_HELP),
        click.option("--sequence", default=None, help="Sequence name (default: the split's first)."),
        frame_map_option,
    )):
        f = opt(f)
    return f


@click.group()
def render() -> None:
    """Bird's-eye-view pictures and plots (PNG)."""


@render.command("frame")
@_sequence_options
@click.option("--frame", "scan", type=int, default=None, help="Scan number (default: the sequence's first labelled scan).")
@click.option("--method", "methods", multiple=True, help="Offboard method(s) whose refined frame is shown (repeatable).")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True)
def render_frame(dataset, root, split, onboard, sequence, frame_map, scan, methods, output):
    """Ground truth | onboard | refined | error map of one frame, side by side."""
    from occbench.datasets import open_dataset
    from occbench.methods import load_method
    from occbench.render import bev_image, error_image, panel

    onboard = default_onboard(dataset, onboard)
    kw = dataset_kwargs(dataset, frame_map)
    try:
        ds = open_dataset(dataset, root, split=split, onboard=onboard, **kw)
        seq = ds[sequence] if sequence else ds.sequences[0]
        t = seq.labelled_frames[0] if scan is None else scan
        f = seq.frame(t)
        gt = f.ground_truth()
        unknown = (gt == 255).all(axis=2)
        images, titles = [bev_image(gt, ds.label_map, unknown)], [f"ground truth {seq.name}/{t:06d}"]
        pred = f.prediction()
        images.append(bev_image(pred, ds.label_map))
        titles.append(f"onboard ({onboard})")
        last = pred
        for m in methods:
            (_, out), = list(load_method(m).refine(seq, [t]))
            images.append(bev_image(out, ds.label_map))
            titles.append(m)
            last = out
        images.append(error_image(last, gt))
        titles.append(f"error of {methods[-1] if methods else 'onboard'} (share of wrong voxels per column)")
    except Exception as e:  # noqa: BLE001 - the CLI reports any failure in words
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    click.echo(f"wrote {panel(images, titles, output)}")


@render.command("distance")
@click.argument("results", nargs=-1, type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True)
def render_distance(results, output):
    """IoU and mIoU against distance for several results files."""
    from occbench.errors import OccbenchError
    from occbench.render import distance_plot
    from occbench.results_schema import read_results_for_plot

    runs = []
    for p in results:
        try:  # bounded, validated: a stranger's file is refused naming it
            d = read_results_for_plot(p)
        except OccbenchError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        runs.append((d["header"]["method"]["name"], d))
    click.echo(f"wrote {distance_plot(runs, output)}")


@render.command("citymap")
@_sequence_options
@click.option("--method", default="onboard", show_default=True, help="Offboard method whose predictions are mapped.")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True)
def render_citymap(dataset, root, split, onboard, sequence, frame_map, method, output):
    """City-level static-class maps (ground truth | method) of a whole sequence, bird's-eye view (paper Fig. 7)."""
    from occbench.datasets import open_dataset
    from occbench.methods import load_method
    from occbench.metrics import PROTOCOLS, CityMapMetric
    from occbench.progress import progress_bar
    from occbench.render import city_map_images, panel

    onboard = default_onboard(dataset, onboard)
    kw = dataset_kwargs(dataset, frame_map)
    try:
        ds = open_dataset(dataset, root, split=split, onboard=onboard, **kw)
        seq = ds[sequence] if sequence else ds.sequences[0]
        city = CityMapMetric(PROTOCOLS[ds.protocol])
        seq.require_poses(seq.labelled_frames)
        outs = load_method(method).refine(seq, list(seq.labelled_frames))
        for t, pred in progress_bar(outs, desc=f"city map {method}", total=len(seq.labelled_frames)):
            city.add_frame(pred, seq.frame(t).ground_truth(), seq.poses[t])
        gt_img, pr_img = city_map_images(city, ds.label_map)
        res = city.compute()
    except Exception as e:  # noqa: BLE001
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    title = f"{method}: static IoU {100 * res['iou']:.1f}, mIoU {100 * res['miou']:.1f}"
    click.echo(f"wrote {panel([gt_img, pr_img], [f'ground truth, sequence {seq.name}', title], output, scale=3)}")

"""``occbench refine``: write a method's refined predictions for a split."""

from __future__ import annotations

from pathlib import Path

import click

from occbench.cli.options import dataset_options, dataset_spec, default_workers, execution_options, fail, method_options
from occbench.errors import OccbenchError
from occbench.runtime.progress import set_quiet


@click.command()
@dataset_options
@click.option("--method", required=True, help="Registered offboard method.")
@click.option("--option", "-O", "options", multiple=True, metavar="KEY=VALUE", help="Method option (repeatable).")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder receiving sequences/XX/predictions/NNNNNN.label[.gz] (raw ids, submission layout).",
)
@click.option("--compressed/--plain", default=False, show_default=True)
@click.option("--targets", type=click.Choice(["labelled", "all"]), default="labelled", show_default=True)
@execution_options
@click.option("--quiet", "-q", is_flag=True)
def refine(
    dataset,
    root,
    split,
    onboard,
    predictions_root,
    sequences,
    frame_map,
    method,
    options,
    output,
    compressed,
    targets,
    workers,
    executor,
    address,
    quiet,
):
    """Write a method's refined predictions for a split (resumable; atomic files)."""
    from occbench.evaluation.refine import refine_split
    from occbench.evaluation.run import MethodSpec

    set_quiet(quiet)
    opts = method_options(method, options)
    try:
        n, total = refine_split(
            dataset_spec(dataset, root, split, onboard, predictions_root, sequences, frame_map),
            MethodSpec(method, opts),
            str(output),
            compressed,
            default_workers(method, workers, executor),
            targets,
            executor,
            address,
        )
    except (OccbenchError, KeyError, ValueError, RuntimeError) as e:
        fail(e)
    if not quiet:
        click.echo(f"{n} of {total} frames written to {output} ({total - n} already present)")

"""``occbench convert``: write another codebase's predictions in the submission layout."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from occbench.cli.options import EXIT_INVALID_SUBMISSION, fail, foreign_format, format_options
from occbench.dataset_cards import dataset_names
from occbench.errors import OccbenchError
from occbench.runtime.progress import set_quiet


@click.command()
@click.argument("src", type=click.Path(path_type=Path, exists=True))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option(
    "--from",
    "src_format",
    type=click.Choice(["label", "monoscene-pkl", "npy"]),
    default="label",
    show_default=True,
    help="Format of SRC: label (submission layout), monoscene-pkl (MonoScene/SSCBench generate_output.py), npy.",
)
@click.option(
    "--dataset",
    type=click.Choice(dataset_names(synthetic=False)),
    default=None,
    help="Label map and sequence names of SRC (required unless SRC is raw-id .label files).",
)
@format_options
@click.option("--compressed/--plain", default=True, show_default=True, help="Target variant.")
@click.option("--quiet", "-q", is_flag=True)
def convert(src, dst, src_format, dataset, ids, pkl_key, compressed, quiet):
    """Write SRC's predictions to DST in the submission layout (DST/sequences/XX/predictions/NNNNNN.label[.gz],
    raw ids).

    SRC: raw-id .label files in the submission layout (converted byte for byte between .label and .label.gz), or
    the files of an onboard codebase (--from, --dataset): every valid frame is written, every problem listed
    (exit 3 if there was any). Pickles are read without running code. Frames already in DST are skipped.
    """
    from occbench.io.folder_lock import exclusive_writer
    from occbench.io.formats import convert_foreign
    from occbench.io.predictions import PREDICTION_TEMPS, convert_store

    set_quiet(quiet)
    try:
        fmt = foreign_format(src_format, ids, pkl_key)
        if not fmt.is_submission and dataset is None:
            raise click.UsageError(f"--dataset is required with --from {src_format} --ids {fmt.ids}")
        with exclusive_writer(dst, PREDICTION_TEMPS):  # a second writer gets an error; an interrupted one's temps go
            if fmt.is_submission and dataset is None:
                n = convert_store(src, dst, compressed, progress=not quiet)
                if not quiet:
                    click.echo(f"{n} files written to {dst}")
                return
            rep = convert_foreign(src, dst, fmt, dataset, compressed, progress=not quiet)
    except (OccbenchError, ValueError) as e:
        fail(e)
    if rep.problems:
        click.echo(rep.summary(dst), err=True)
        sys.exit(EXIT_INVALID_SUBMISSION)
    if not quiet:
        click.echo(rep.summary(dst))

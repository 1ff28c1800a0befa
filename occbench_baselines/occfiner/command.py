"""``occbench occfiner-train --onboard NAME``: train OccFiner stage 1 on a split's labelled scans, on any dataset
occbench loads (``--dataset``: every dataset file's name; the class count and class weights follow the dataset's
label map).

It joins the ``occbench`` CLI through the ``occbench.commands`` entry point (``pyproject.toml``), named for its
method::

    [project.entry-points."occbench.commands"]
    occfiner-train = "occbench_baselines.occfiner.command:train"

Module-level imports stay light (click): ``occbench --help`` imports this module to list the command.

Writes into ``--output``: ``checkpoint-last.pt`` (every epoch and every ``--checkpoint-every`` steps; the
run resumes from it with ``--resume``, the default), ``checkpoint-epoch-N.pt``, ``metrics.jsonl`` (one line
per epoch) and ``run.json`` (the command and settings). ``--export auto`` writes the final model to the
shipped location ``occbench_baselines/occfiner/checkpoints/<onboard>.pt`` (``--export PATH``: elsewhere), which the
``occfiner`` / ``occfiner-stage1`` methods load with ``checkpoint=auto``.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

import click

from occbench.cli.options import ROOT_HELP
from occbench.dataset_cards import dataset_names

COMMAND = "occfiner-train"


@click.command(COMMAND)
@click.option(
    "--dataset",
    default="mini",
    show_default=True,
    type=click.Choice(dataset_names()),
    help="Which dataset (any that occbench loads).",
)
@click.option("--root", type=click.Path(path_type=Path), default=None, help=ROOT_HELP)
@click.option(
    "--onboard", required=True, help="Onboard model whose predictions are the input (mini: voxformer-sim, sscnet-sim)."
)
@click.option(
    "--predictions-root",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder holding <onboard>/sequences/XX/predictions (default <root>/predictions).",
)
@click.option("--split", default="train", show_default=True)
@click.option("--sequence", "sequences", multiple=True, help="Restrict to these sequences (repeatable).")
@click.option(
    "--config",
    "model_config",
    default="small",
    show_default=True,
    type=click.Choice(["small", "tiny", "paper"]),
    help="Network size (paper: 4.5 M parameters; small: 0.32 M; tiny: 0.10 M).",
)
@click.option("--epochs", default=10, show_default=True, type=int)
@click.option(
    "--input-skip",
    default=0.0,
    show_default=True,
    type=float,
    help="Identity prior: initial learned logit bonus of each voxel's input class (0 = off, the paper's network).",
)
@click.option("--lr", default=1e-3, show_default=True, type=float)
@click.option(
    "--lr-decay", default=0.98, show_default=True, type=float, help="Multiplied into the lr after every epoch."
)
@click.option("--local", default=4, show_default=True, type=int, help="T_l local scans per window.")
@click.option("--reference", default=2, show_default=True, type=int, help="T_r reference scans per window.")
@click.option("--reference-radius", default=10, show_default=True, type=int)
@click.option(
    "--lovasz-voxels",
    default="auto",
    show_default=True,
    help="Lovász term on this many random valid voxels per step; 'exact' = all; 'auto' = 131072 on CPU, exact on CUDA.",
)
@click.option("--max-steps-per-epoch", type=int, default=None)
@click.option(
    "--checkpoint-every",
    default=50,
    show_default=True,
    type=int,
    help="Also save checkpoint-last.pt every N steps (0: only per epoch).",
)
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True, help="Run folder.")
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Continue from <output>/checkpoint-last.pt if present.",
)
@click.option(
    "--export",
    "export",
    default=None,
    help="After training, export the final model: "
    "'auto' = occbench_baselines/occfiner/checkpoints/<onboard>.pt, or a path.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True, help="auto (cuda if available), cpu, cuda, cuda:1 ...")
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
@click.option("--workers", "-j", default=0, show_default=True, type=int, help="DataLoader worker processes.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-epoch lines.")
def train(
    dataset,
    root,
    onboard,
    predictions_root,
    split,
    sequences,
    model_config,
    epochs,
    input_skip,
    lr,
    lr_decay,
    local,
    reference,
    reference_radius,
    lovasz_voxels,
    max_steps_per_epoch,
    checkpoint_every,
    output,
    resume,
    export,
    seed,
    device,
    threads,
    workers,
    quiet,
):
    """Train OccFiner stage 1 on the labelled scans of a split (default: occbench-mini train).

    The network predicts the dataset's classes (its label map: 20 on SemanticKITTI and mini, 19 on
    SSCBench-KITTI360) with its class weights."""
    import torch

    from occbench.datasets import open_dataset
    from occbench.errors import OccbenchError
    from occbench.runtime.progress import set_quiet
    from occbench_baselines.occfiner.train import TrainConfig, run_training, select_device
    from occbench_baselines.occfiner.windows import WindowConfig

    set_quiet(quiet)
    if threads:
        torch.set_num_threads(threads)
    try:
        kw = {}
        if predictions_root is not None:
            kw["predictions_root"] = str(predictions_root)
        if sequences:
            kw["sequences"] = list(sequences)
        ds = open_dataset(dataset, None if root is None else str(root), split=split, onboard=onboard, **kw)
        dev = select_device(device)
        if lovasz_voxels == "auto":
            lmv = None if dev.type == "cuda" else 131072
        elif lovasz_voxels == "exact":
            lmv = None
        else:
            lmv = int(lovasz_voxels)
        wcfg = WindowConfig(local=local, reference=reference, reference_radius=reference_radius)
        cfg = TrainConfig(
            epochs=epochs,
            lr=lr,
            lr_decay=lr_decay,
            seed=seed,
            device=device,
            lovasz_max_voxels=lmv,
            checkpoint_every_steps=checkpoint_every or None,
            max_steps_per_epoch=max_steps_per_epoch,
            progress=not quiet,
            label_map=ds.label_map.name,
        )
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        n_pivots = sum(len(s.labelled_frames) for s in ds.sequences)
        if n_pivots == 0:
            raise click.ClickException(f"split {split!r} of {dataset} has no labelled scans to train on")
        run = {
            "command": f"occbench {COMMAND} " + " ".join(shlex.quote(a) for a in _args()),
            "dataset": ds.describe(),
            "onboard": onboard,
            "model_config": model_config,
            "window_config": asdict(wcfg),
            "input_skip": input_skip,
            "train_config": asdict(cfg),
            "pivots": n_pivots,
        }
        (out / "run.json").write_text(json.dumps(run, indent=1, default=str) + "\n")
        from occbench_baselines.occfiner.model import OccFinerConfig

        mcfg = OccFinerConfig.named(model_config, input_skip=float(input_skip), num_classes=ds.label_map.num_classes)
        history = run_training(ds.sequences, out, mcfg, cfg, wcfg, num_workers=workers, resume=resume)
    except OccbenchError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    if not quiet:
        for h in history:
            click.echo(
                f"epoch {h['epoch']:3d}  loss {h['loss']:.4f}  ce {h['ce']:.4f}  lovasz {h['lovasz']:.4f}  "
                f"train mIoU {100 * h['train_miou']:.2f}  IoU {100 * h['train_iou']:.2f}  {h['seconds']:.0f} s"
            )
    if export:
        path = export_run(
            out,
            onboard if export == "auto" else None,
            None if export == "auto" else Path(export),
            meta={"command": run["command"], "dataset": dataset, "split": split, "onboard": onboard},
        )
        if not quiet:
            click.echo(f"exported {path}")


def _args() -> list[str]:
    """The options of this invocation (``occbench occfiner-train ...`` or
    ``python -m occbench_baselines.occfiner.command ...``)."""
    args = sys.argv[1:]
    return args[1:] if args[:1] == [COMMAND] else args


def export_run(run_dir: Path, onboard: str | None = None, dst: Path | None = None, meta: dict | None = None) -> Path:
    """Export ``<run_dir>/checkpoint-last.pt`` to ``dst`` (default: the shipped checkpoint of ``onboard``)."""
    from occbench_baselines.occfiner.export import export_checkpoint
    from occbench_baselines.occfiner.method import shipped_checkpoint

    if dst is None:
        if not onboard:
            raise ValueError("give an onboard model name or a destination path")
        dst = shipped_checkpoint(onboard)
    return export_checkpoint(Path(run_dir) / "checkpoint-last.pt", dst, meta=meta)


if (
    __name__ == "__main__"
):  # pragma: no cover - `python -m occbench_baselines.occfiner.command` = `occbench occfiner-train`
    train()

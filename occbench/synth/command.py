"""``occbench synth``: generate occbench-mini (the lead adds :data:`synth` to the ``occbench`` CLI group)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from occbench.synth.config import SIZES, config_for_size
from occbench.synth.onboard import MODELS


@click.command("synth")
@click.option("--output", "-o", "output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Root to write (default: the cache folder of the default mini split, $OCCBENCH_MINI).")
@click.option("--seed", type=int, default=0, show_default=True, help="World and model seed.")
@click.option("--size", type=click.Choice(SIZES), default="default", show_default=True,
              help="tiny: 100 scans (CI); small: 500 scans; default: the mini split (1,000 scans).")
@click.option("--onboard", "onboard", multiple=True, type=click.Choice(sorted(MODELS)),
              help="Simulated onboard model(s) whose predictions to write (repeatable; default: all).")
@click.option("--split", "splits", multiple=True,
              help="Generate only this split (repeatable; default: all). Later runs add the missing splits.")
@click.option("--workers", type=int, default=None, help="Processes (default: min(2, CPUs)).")
@click.option("--overwrite", is_flag=True, help="Replace a data set generated with another configuration.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def synth(output: Path | None, seed: int, size: str, onboard: tuple[str, ...], splits: tuple[str, ...],
          workers: int | None, overwrite: bool, quiet: bool) -> None:
    """Generate occbench-mini, the synthetic SemanticKITTI-layout data set with simulated onboard predictions."""
    import dataclasses

    from occbench.synth.generate import default_mini_root, generate_mini

    if quiet:
        from occbench.progress import set_quiet

        set_quiet(True)
    cfg = config_for_size(size, seed)
    if onboard:
        cfg = dataclasses.replace(cfg, onboard=tuple(dict.fromkeys(onboard)))
    root = output if output is not None else default_mini_root()
    t0 = time.perf_counter()
    try:
        m = generate_mini(root, cfg, progress=not quiet, workers=workers, overwrite=overwrite, splits=splits or None)
    except (FileExistsError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    if not quiet:
        from occbench.datasets.mini import present_splits

        n = sum(m["scans"][q] for sp in present_splits(m) for q in m["splits"][sp])
        have = present_splits(m)
        click.echo(f"{m['name']} ({m['size']}, seed {m['seed']}): {n} scans, splits "
                   f"{json.dumps(m['splits'])} (generated: {', '.join(have) or '-'}), onboard {', '.join(m['onboard']) or '-'}")
        click.echo(f"root: {root}  ({time.perf_counter() - t0:.1f} s)")

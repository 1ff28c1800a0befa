"""``occbench synth``: generate occbench-mini (a command of the ``occbench`` CLI group)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from occbench.errors import OccbenchError
from occbench.synth.config import GENERATORS, ONBOARD_DEFAULT, SIZES, config_for_size


@click.command("synth")
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Root to write: a new or empty folder, or one holding a mini generated earlier (a started "
    "generation resumes). Default: the data cache, $OCCBENCH_DATA/mini-v<generator> "
    "($OCCBENCH_DATA defaults to ~/.cache/occbench).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="World and model seed.")
@click.option(
    "--size",
    type=click.Choice(SIZES),
    default="default",
    show_default=True,
    help="tiny: 100 scans (about 130 MB, for tests and CI); small: 500 scans; default: the benchmark's mini "
    "split (1,000 scans, about 1.3 GB).",
)
@click.option(
    "--onboard",
    "onboard",
    multiple=True,
    metavar="MODEL",
    help=f"Simulated onboard model(s) whose predictions to write (repeatable; default: all, "
    f"{', '.join(ONBOARD_DEFAULT)}).",
)
@click.option(
    "--split",
    "splits",
    multiple=True,
    help="Generate only this split (repeatable; default: all). Later runs add the missing splits.",
)
@click.option(
    "--generator",
    type=click.Choice(GENERATORS),
    default=None,
    help="Generator version (default: $OCCBENCH_GENERATOR, else 1.1). 1.2 is the opt-in onboard error model, 1.3 "
    "the same with its calibrated parameters; the default root of version V is $OCCBENCH_DATA/mini-vV.",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Processes (default: min(2, CPUs)).")
@click.option("--overwrite", is_flag=True, help="Replace an occbench-mini generated there with another configuration.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def synth(
    output: Path | None,
    seed: int,
    size: str,
    onboard: tuple[str, ...],
    splits: tuple[str, ...],
    generator: str | None,
    workers: int | None,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Generate occbench-mini, the synthetic SemanticKITTI-layout data set with simulated onboard predictions."""
    import dataclasses

    from occbench.synth.cache import announce_generation, check_generation_target, default_mini_root
    from occbench.synth.generate import generate_mini

    if quiet:
        from occbench.runtime.progress import set_quiet

        set_quiet(True)
    cfg = config_for_size(size, seed) if generator is None else config_for_size(size, seed, generator)
    if onboard:
        from occbench.errors import UnknownNameError
        from occbench.synth.onboard import MODELS

        for name in onboard:
            if name not in MODELS:
                raise click.BadParameter(
                    str(UnknownNameError("onboard model", name, sorted(MODELS))), param_hint="'--onboard'"
                )
        cfg = dataclasses.replace(cfg, onboard=tuple(dict.fromkeys(onboard)))
    root = output if output is not None else default_mini_root().with_name(f"mini-v{cfg.generator}")
    t0 = time.perf_counter()
    try:
        check_generation_target(root)  # --overwrite too: it replaces a mini, never a folder of other files
        if not quiet and not (root / "mini.json").is_file():
            announce_generation(root, cfg, splits=list(splits) or None)
        m = generate_mini(root, cfg, progress=not quiet, workers=workers, overwrite=overwrite, splits=splits or None)
    except (
        FileExistsError,
        ValueError,
        OccbenchError,
    ) as e:  # OccbenchError: e.g. another process writes into the folder
        raise click.ClickException(str(e)) from None
    if not quiet:
        from occbench.io.mini_manifest import present_splits

        n = sum(m["scans"][q] for sp in present_splits(m) for q in m["splits"][sp])
        have = present_splits(m)
        click.echo(
            f"{m['name']} ({m['size']}, seed {m['seed']}): {n} scans, splits "
            f"{json.dumps(m['splits'])} (generated: {', '.join(have) or '-'}), onboard {', '.join(m['onboard']) or '-'}"
        )
        click.echo(f"root: {root}  ({time.perf_counter() - t0:.1f} s)")

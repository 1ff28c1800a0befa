"""Where occbench-mini lives and generating it on first use: the one ``default_mini_root`` and ``ensure_mini``.

The loader (:class:`occbench.datasets.OccbenchMini`) only reads; it reaches :func:`ensure_mini` through the
``occbench-mini`` entry point of the ``occbench.data`` group. Light: the generator itself is imported only when
something is generated.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from occbench.errors import FormatError, MissingDataError, OccbenchError
from occbench.io.mini_manifest import MANIFEST, PARTIAL, generated, read_manifest

DATA_ENV = "OCCBENCH_DATA"

# measured: disk per scan (the default mini, 1,000 scans: 1.28 GB), seconds per scan on 2 cores idle (the default
# val sequence, docs/mini.md "Generation cost") and busy (the default mini in 1,758 s at load average 9-12)
MB_PER_SCAN, S_PER_SCAN_IDLE, S_PER_SCAN_BUSY = 1.28, 0.30, 1.76


def default_data_dir() -> Path:
    """The data cache: ``$OCCBENCH_DATA``, default ``~/.cache/occbench``."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "occbench").expanduser()


def default_mini_root() -> Path:
    """Where the default mini lives: ``<data cache>/mini-v<generator version>`` (the active generator,
    ``$OCCBENCH_GENERATOR``, default 1.1; 1.2 data thus lives in ``mini-v1.2``)."""
    from occbench.synth.config import active_generator

    return default_data_dir() / f"mini-v{active_generator()}"


def check_generation_target(root: Path) -> None:
    """Generation may write into ``root`` only if it is new, empty, or holds an occbench-mini (complete or started)."""
    if (root / MANIFEST).is_file() or (root / PARTIAL).is_dir():
        return
    if root.exists() and not root.is_dir():
        raise OccbenchError(f"{root}: expected a folder to generate occbench-mini into, found a file")
    from occbench.io.folder_lock import LOCK_NAME

    other = sorted(p.name for p in root.iterdir() if p.name != LOCK_NAME) if root.is_dir() else []
    if other:
        raise OccbenchError(
            f"{root}: expected a new or empty folder to generate occbench-mini into, found other files "
            f"(e.g. {other[0]}); choose another folder"
        )


def generation_estimate(cfg, splits: list[str] | None = None) -> str:
    """Disk size and time of generating ``cfg`` (a ``MiniConfig``; only ``splits`` if given), in words, from the
    measured per-scan costs of the whole default mini."""
    seqs = [q for k, v in cfg.splits.items() if splits is None or k in splits for q in v]
    n = sum(cfg.scans[q] for q in seqs)
    gb = n * MB_PER_SCAN / 1000
    size = f"{gb:.1f} GB" if gb >= 0.95 else f"{gb * 1000:.0f} MB"
    lo, hi = (max(1, round(n * s / 60)) for s in (S_PER_SCAN_IDLE, S_PER_SCAN_BUSY))
    what = f"split(s) {', '.join(splits)}: " if splits is not None else ""
    return f"{what}{n:,} scans, about {size}, {lo}-{hi} minutes on 2 CPU cores (idle to busy)"


def announce_generation(root: Path, cfg, why: str = "", splits: list[str] | None = None) -> None:
    """One line on stderr before a generation starts: where, how big, how long."""
    print(
        f"{why}generating occbench-mini ({generation_estimate(cfg, splits)}) into {root}; "
        f"set ${DATA_ENV} to keep the data cache elsewhere",
        file=sys.stderr,
        flush=True,
    )


def ensure_mini(
    root: str | Path | None = None,
    progress: bool = True,
    generate: bool | None = None,
    splits: list[str] | None = None,
    onboard: list[str] | None = None,
) -> Path:
    """The root of occbench-mini, holding at least ``splits`` (default: all) with the predictions of the ``onboard``
    models (default: all).

    ``root`` None: the default mini in the data cache, generated there on first use, split by split and model by
    model as commands need them. An explicit ``root`` must hold a generated mini (``mini.json``; what it lacks is
    added with the configuration it was made with); with ``generate=True`` the default configuration is generated
    there if it is a new or empty folder. ``generate=False`` never generates.
    """
    explicit = root is not None
    root = Path(root).expanduser() if root is not None else default_mini_root()
    cfg = None
    if (root / MANIFEST).is_file():
        m = read_manifest(root)
        have = generated(m)
        if generate is False or all(
            s in have and set(onboard if onboard is not None else m["onboard"]) <= set(have[s])
            for s in (splits if splits is not None else m["splits"])
        ):
            return root
        from occbench.synth.config import config_from_identity

        try:
            cfg = config_from_identity(m["config"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise FormatError(
                root / MANIFEST, "'config': the generator configuration it was made with", f"{type(e).__name__}: {e}"
            ) from None
    elif generate is False or (explicit and not generate):
        raise MissingDataError(
            root / MANIFEST,
            "occbench-mini (its manifest)",
            f"{root} holds no generated occbench-mini. Generate one there with `occbench synth --output {root}`, or "
            f"leave out --root to use the data cache ({default_mini_root()}; ${DATA_ENV} moves it).",
        )
    check_generation_target(root)
    from occbench.synth import default_mini_config, generate_mini  # through the package: tests replace it there

    cfg = cfg or default_mini_config()
    if onboard is not None:  # a model the configuration does not have is reported by the loader
        onboard = [o for o in onboard if o in cfg.onboard]
    if splits is not None:  # a split the configuration does not have is reported by the loader
        splits = [s for s in splits if s in cfg.splits]
    from occbench.io.folder_lock import folder_lock

    with folder_lock(root):  # another generator at work, or no folder can be made here: said before any announcement
        pass
    announce_generation(
        root,
        cfg,
        "" if explicit or (root / MANIFEST).is_file() else "occbench-mini is not in the data cache yet: ",
        splits,
    )
    generate_mini(root, cfg, progress=progress, splits=splits, onboard=onboard)
    return root

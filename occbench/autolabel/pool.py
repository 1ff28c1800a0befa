"""A pool of unlabeled sequences for the pseudo-label curve: extra occbench-mini sequences, generated apart.

The default mini's test split (sequence 11, 30 labelled scans) is too small for a curve whose largest amount is
several times the GT set, and its train split is what the offboard method was trained on (pseudo-labels there
would be in-sample). The pool is a separate occbench-mini root with the same generator and seed, whose ``test``
split holds new sequences (their worlds are seeded by the sequence number, so they are other drives), with test
ground truth kept apart (the pseudo-labels' quality and the oracle row read it) and the predictions of the
onboard model the source refines. It lives in the data cache, named by its configuration's digest, and is
generated on first use (resumable, like the default mini).
"""

from __future__ import annotations

from pathlib import Path

POOL_SCANS = 150  # per sequence, as the default mini's test sequence 11 (30 labelled scans)


def pool_config(sequences: list[str], onboard: list[str], seed: int = 0, generator: str | None = None):
    """The :class:`~occbench.synth.config.MiniConfig` of a pool: ``sequences`` of ``POOL_SCANS`` scans as the
    ``test`` split, predictions of ``onboard``."""
    from occbench.synth.config import MiniConfig, active_generator

    if not sequences:
        raise ValueError("a pseudo-label pool needs at least one sequence")
    return MiniConfig(
        seed=seed,
        scans={s: POOL_SCANS for s in sequences},
        splits={"test": tuple(sequences)},
        onboard=tuple(onboard),
        size="custom",
        generator=generator or active_generator(),
    )


def pool_root(cfg) -> Path:
    """``<data cache>/mini-v<generator>-plpool-<config digest>``."""
    from occbench.synth.cache import default_data_dir

    return default_data_dir() / f"mini-v{cfg.generator}-plpool-{cfg.digest()}"


def ensure_pool(sequences: list[str], onboard: list[str], progress: bool = True, workers: int | None = None) -> Path:
    """The root of the pool, generated (or completed) on first use; a finished pool is returned as is."""
    from occbench.synth.cache import announce_generation
    from occbench.synth.generate import generate_mini

    cfg = pool_config(sequences, onboard)
    root = pool_root(cfg)
    if not (root / "mini.json").is_file():
        announce_generation(root, cfg, "pseudo-label pool: ")
    generate_mini(root, cfg, progress=progress, workers=workers)
    return root

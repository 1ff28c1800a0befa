"""Configuration of an occbench-mini generation."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

GENERATOR_VERSION = "1.3"  # the default generator (the committed results were made with it)
GENERATORS = ("1.1", "1.2", "1.3")  # 1.2: opt-in onboard error model; 1.3: 1.2 with its calibrated parameters
# (docs/mini.md, "Generator 1.2" and "Generator 1.3")
GENERATOR_ENV = "OCCBENCH_GENERATOR"  # selects the generator of the default mini and of its cache folder
SIZES = ("tiny", "small", "default")
ONBOARD_DEFAULT = ("voxformer-sim", "sscnet-sim")


@dataclass(frozen=True)
class MiniConfig:
    """What to generate. Everything written is a function of this object (and of the generator version).

    ``scans``: number of scans per sequence (every ``label_every``-th one, starting at 0, is labelled).
    ``splits``: split name -> sequences (names like the real benchmark: train / val / test).
    ``lookahead``/``view_every``: the ``.invalid`` mask of labelled scan i is the complement of what is in
    line of sight of scans i, i+view_every, ..., i+lookahead (real data: scans i..i+70).
    ``azimuths``: LiDAR azimuth steps per revolution for the ``.bin`` input (HDL-64E at 10 Hz: ~2,000).
    ``follow_poses``: sequence -> path of a real ``poses.txt`` (at least one pose per scan, with its ``calib.txt``
    next to it); scan i of that sequence then follows the planar projection of line i of the real trajectory,
    relative to line 0 (:func:`occbench.synth.world.planar_poses`; docs/mini.md "Real trajectories").
    """

    seed: int = 0
    scans: dict[str, int] = field(default_factory=lambda: {"00": 40, "08": 40, "11": 20})
    splits: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {"train": ("00",), "val": ("08",), "test": ("11",)}
    )
    onboard: tuple[str, ...] = ONBOARD_DEFAULT
    label_every: int = 5
    lookahead: int = 50
    view_every: int = 5
    azimuths: int = 2048
    follow_poses: dict[str, str] = field(default_factory=dict)
    size: str = "custom"
    generator: str = GENERATOR_VERSION  # "1.3" (default: 1.2 with calibrated parameters), "1.2" or "1.1"

    def __post_init__(self) -> None:
        from occbench.synth.onboard import MODELS

        seqs = [s for v in self.splits.values() for s in v]
        if sorted(seqs) != sorted(self.scans):
            raise ValueError(
                f"splits {dict(self.splits)} must list exactly the sequences of scans {sorted(self.scans)}"
            )
        if len(set(seqs)) != len(seqs):
            raise ValueError("a sequence appears in two splits")
        for s in seqs:
            if len(s) != 2 or not s.isdigit():
                raise ValueError(f"sequence names are two digits like the real benchmark, got {s!r}")
        for n in self.scans.values():
            if n < 1:
                raise ValueError("every sequence needs at least one scan")
        unknown = [m for m in self.onboard if m not in MODELS]
        if unknown:
            raise ValueError(f"unknown onboard model(s) {unknown}; available: {sorted(MODELS)}")
        extra = sorted(set(self.follow_poses) - set(self.scans))
        if extra:
            raise ValueError(
                f"follow_poses names sequence(s) {extra} that are not generated (scans: {sorted(self.scans)})"
            )
        if self.generator not in GENERATORS:
            raise ValueError(f"unknown generator {self.generator!r}; choose one of {GENERATORS}")
        if self.label_every < 1 or self.view_every < 1 or self.lookahead < 0:
            raise ValueError("label_every and view_every must be >= 1, lookahead >= 0")

    def identity(self) -> dict[str, Any]:
        """JSON-able dict of everything that determines the output."""
        d = asdict(self)
        d["splits"] = {k: list(v) for k, v in self.splits.items()}
        d["onboard"] = list(self.onboard)
        d["generator_version"] = d.pop("generator")  # 1.1 identities are those written before 1.2 existed
        return d

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]


def active_generator() -> str:
    """The generator of the default mini: ``$OCCBENCH_GENERATOR`` (``1.1``, ``1.2``, ``1.3``), else the default
    (``GENERATOR_VERSION``)."""
    import os

    g = os.environ.get(GENERATOR_ENV, "").strip() or GENERATOR_VERSION
    if g not in GENERATORS:
        raise ValueError(f"${GENERATOR_ENV}={g!r}: expected one of {', '.join(GENERATORS)}")
    return g


def tiny_mini_config(seed: int = 0, generator: str | None = None) -> MiniConfig:
    """For tests and CI: 100 scans (20 labelled frames), a few seconds per sequence."""
    return MiniConfig(
        seed=seed,
        scans={"00": 40, "08": 40, "11": 20},
        splits={"train": ("00",), "val": ("08",), "test": ("11",)},
        size="tiny",
        generator=generator or active_generator(),
    )


def small_mini_config(seed: int = 0, generator: str | None = None) -> MiniConfig:
    return MiniConfig(
        seed=seed,
        scans={"00": 150, "01": 100, "08": 150, "11": 100},
        splits={"train": ("00", "01"), "val": ("08",), "test": ("11",)},
        size="small",
        generator=generator or active_generator(),
    )


def default_mini_config(seed: int = 0, generator: str | None = None) -> MiniConfig:
    """The benchmark's mini split: 1,000 scans, 200 labelled frames, about 1.3 GB. ``generator`` None: the
    active one (:func:`active_generator`)."""
    return MiniConfig(
        seed=seed,
        scans={"00": 350, "01": 200, "08": 300, "11": 150},
        splits={"train": ("00", "01"), "val": ("08",), "test": ("11",)},
        size="default",
        generator=generator or active_generator(),
    )


def config_for_size(size: str, seed: int = 0, generator: str | None = None) -> MiniConfig:
    if size == "tiny":
        return tiny_mini_config(seed, generator)
    if size == "small":
        return small_mini_config(seed, generator)
    if size == "default":
        return default_mini_config(seed, generator)
    raise ValueError(f"unknown size {size!r}; choose one of {SIZES}")


def config_from_identity(d: dict[str, Any]) -> MiniConfig:
    """Inverse of :meth:`MiniConfig.identity` (e.g. the ``config`` entry of ``mini.json``)."""
    kw = {k: v for k, v in d.items() if k != "generator_version"}
    kw["generator"] = d.get("generator_version", "1.1")  # identities without a version predate 1.2
    kw["splits"] = {k: tuple(v) for k, v in kw["splits"].items()}
    kw["onboard"] = tuple(kw["onboard"])
    return MiniConfig(**kw)

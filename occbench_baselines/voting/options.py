"""Options shared by the voting methods (``average-fusion``, ``occfiner-voting``, ``occfiner``'s stage 2) and presets.

A preset is a named set of defaults; options given explicitly win over it. ``-O preset=paper`` is the paper-literal
configuration (eq. 9's argmax over all classes, ``empty_policy=vote``; appendix D.2 weights; exact registration with
voxel centres). The default preset ``occbench`` holds the values selected on occbench-mini **train**
(sequences 00 and 01) where the paper is silent; the selection protocol and its numbers are in
``docs/baselines/voting.md``. The resolved values (not ``None``) are what a results header records.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .config import EMPTY_POLICIES, EmptyPolicy, SensorWeights, VotingConfig, is_empty_policy
from .engines import ENGINES, EXACT_ENGINES, make_engine

PRESETS: tuple[str, ...] = ("occbench", "paper")
_PAPER_WEIGHTS = SensorWeights()  # appendix D.2 (max_range: not given in the paper; the benchmark range)

# per preset: option -> value (options a method does not have are ignored)
PRESET_VALUES: dict[str, dict[str, Any]] = {
    "occbench": {"n": 25, "empty_policy": "occupancy", "engine": "exact", "max_range": 25.6},
    "paper": {"n": 25, "empty_policy": "vote", "engine": "exact", "max_range": _PAPER_WEIGHTS.max_range},
}


@dataclass(frozen=True)
class VotingSettings:
    """The voting options with the preset applied and checked: what an engine is built from."""

    n: int
    empty_policy: EmptyPolicy
    engine: str
    device: str | None


@dataclass(frozen=True)
class VotingOptions:
    """``n`` (window radius), ``empty_policy`` (``vote``, ``occupancy``, ``ignore``), ``engine`` (``exact``,
    ``lattice``: approximate, ``reference``: slow), ``preset`` (``occbench``, ``paper``), ``device`` (None: CUDA
    if available, else CPU). ``None`` = the preset's value: the fields are filled from the preset on construction
    (what a results header records); :attr:`settings` is the same values, typed."""

    preset: str = "occbench"
    n: int | None = None
    empty_policy: str | None = None
    engine: str | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"option preset={self.preset!r}: expected one of {PRESETS}")
        names = {f.name for f in dataclasses.fields(self)}
        for key, value in PRESET_VALUES[self.preset].items():
            if key in names and getattr(self, key) is None:
                object.__setattr__(self, key, value)
        self.settings  # checks the values

    @property
    def settings(self) -> VotingSettings:
        """The voting options with the preset applied, checked (``ValueError`` names the option)."""
        empty_policy, engine, n = self.empty_policy, self.engine, self.n
        if not is_empty_policy(empty_policy):
            raise ValueError(f"option empty_policy={empty_policy!r}: expected one of {EMPTY_POLICIES}")
        if not isinstance(engine, str) or engine not in ENGINES:
            raise ValueError(f"option engine={engine!r}: expected one of {ENGINES}")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"option n={n!r}: expected an integer >= 0")
        return VotingSettings(n=n, empty_policy=empty_policy, engine=engine, device=self.device)


def registration_note(engine: str) -> str:
    """What a results header says about the registration of an engine."""
    if engine in EXACT_ENGINES:
        return "exact: eqs. 7-9 with voxel centres, labels identical to the reference"
    return "APPROXIMATE: lattice engine (world-lattice vote map; differs from eqs. 7-9 on rotated poses)"


def voting_engine(o: VotingOptions, sequence: Any, cfg: VotingConfig, frames: Any = None) -> Any:
    """The engine the options name over ``sequence`` (``frames``: the grids that vote, default its predictions)."""
    s = o.settings
    return make_engine(
        s.engine,
        sequence.prediction if frames is None else frames,
        sequence.poses,
        sequence.calib,
        cfg,
        device=s.device,
        pose_valid=getattr(sequence, "pose_valid", None),
    )

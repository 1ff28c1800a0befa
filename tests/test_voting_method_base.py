"""The voting methods share one base, and OccFiner's options are the stage-1 and voting options, not copies."""

from __future__ import annotations

import dataclasses

import pytest

from occbench_baselines.average_fusion import AverageFusion, AverageFusionOptions
from occbench_baselines.occfiner.method import OccFinerOptions, OccFinerStage1Options
from occbench_baselines.occfiner_voting import OccFinerVoting, OccFinerVotingOptions
from occbench_baselines.voting.method import VotingMethod
from occbench_baselines.voting.options import PRESET_VALUES, PRESETS, VotingOptions


@pytest.mark.parametrize("cls", [AverageFusion, OccFinerVoting])
def test_voting_methods_take_engine_refine_and_top2_from_the_base(cls):
    assert issubclass(cls, VotingMethod)
    for name in ("engine", "refine", "refine_top2"):
        assert name not in vars(cls), f"{cls.__name__} re-declares {name}"
        assert getattr(cls, name) is getattr(VotingMethod, name)


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def test_occfiner_options_extend_the_stage1_and_voting_options():
    assert issubclass(OccFinerOptions, OccFinerStage1Options)
    assert issubclass(OccFinerOptions, OccFinerVotingOptions)
    assert set(vars(OccFinerOptions).get("__annotations__", {})) == set()  # declares no field of its own
    # field order (what `occbench methods` lists and results headers record): the voting options, then stage 1's
    voting = _fields(OccFinerVotingOptions)
    stage1_only = [f for f in _fields(OccFinerStage1Options) if f not in voting]
    assert _fields(OccFinerOptions) == voting + stage1_only
    expected = ["checkpoint", "local", "reference", "reference_radius", "reference_stride", "stride", "amp", "threads"]
    assert stage1_only == expected
    # and the defaults of each base hold in the combined options
    both = OccFinerOptions()
    for base in (OccFinerStage1Options(), OccFinerVotingOptions()):
        for f in _fields(type(base)):
            assert getattr(both, f) == getattr(base, f), f


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("cls", [AverageFusionOptions, OccFinerVotingOptions, OccFinerOptions])
def test_settings_are_the_preset_filled_options(cls: type[VotingOptions], preset: str):
    o = cls(preset=preset)
    s = o.settings
    values = PRESET_VALUES[preset]
    assert (s.n, s.empty_policy, s.engine, s.device) == (values["n"], values["empty_policy"], values["engine"], None)
    assert (o.n, o.empty_policy, o.engine) == (s.n, s.empty_policy, s.engine)  # what a results header records
    given = cls(preset=preset, n=3, empty_policy="ignore", engine="lattice", device="cpu").settings
    assert (given.n, given.empty_policy, given.engine, given.device) == (3, "ignore", "lattice", "cpu")


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"n": -1}, "option n=-1"),
        ({"n": True}, "option n=True"),
        ({"engine": "fast"}, "option engine='fast'"),
        ({"empty_policy": "maybe"}, "option empty_policy='maybe'"),
        ({"preset": "nope"}, "option preset='nope'"),
    ],
)
def test_invalid_voting_options_are_refused_naming_the_option(kw, message):
    with pytest.raises(ValueError, match=message):
        OccFinerVotingOptions(**kw)


def test_occfiner_voting_lidar_range_follows_the_preset_unless_given():
    assert OccFinerVotingOptions().lidar_max_range == PRESET_VALUES["occbench"]["max_range"]
    assert OccFinerVotingOptions(preset="paper").lidar_max_range == PRESET_VALUES["paper"]["max_range"]
    assert OccFinerVotingOptions(max_range=30).lidar_max_range == 30.0

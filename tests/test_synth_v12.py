"""Generator 1.2 (opt-in): selection, cache folder, and the pieces of its onboard error model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from occbench.synth import world as Wd
from occbench.synth.config import MiniConfig, config_from_identity, default_mini_config

MICRO12 = MiniConfig(
    seed=3,
    scans={"00": 6, "08": 11},
    splits={"train": ("00",), "val": ("08",)},
    lookahead=10,
    size="custom",
    generator="1.2",
)


def test_default_generator_is_1_3_and_the_others_are_selected_by_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from occbench.synth.cache import default_mini_root

    monkeypatch.setenv("OCCBENCH_DATA", str(tmp_path))
    monkeypatch.delenv("OCCBENCH_GENERATOR", raising=False)
    cfg = default_mini_config()
    assert cfg.generator == "1.3" and cfg.identity()["generator_version"] == "1.3"
    assert default_mini_root() == tmp_path / "mini-v1.3"
    for g in ("1.1", "1.2"):
        monkeypatch.setenv("OCCBENCH_GENERATOR", g)
        other = default_mini_config()
        assert other.generator == g and other.identity()["generator_version"] == g
        assert default_mini_root() == tmp_path / f"mini-v{g}"
        assert other.digest() != cfg.digest()
        assert config_from_identity(other.identity()) == other and config_from_identity(cfg.identity()) == cfg
    # an identity written before generator versions existed is generator 1.1's, whatever the default is now
    legacy = {k: v for k, v in default_mini_config(generator="1.1").identity().items() if k != "generator_version"}
    assert config_from_identity(legacy).generator == "1.1"
    monkeypatch.setenv("OCCBENCH_GENERATOR", "1.4")
    with pytest.raises(ValueError, match="OCCBENCH_GENERATOR"):
        default_mini_config()
    with pytest.raises(ValueError, match="unknown generator"):
        MiniConfig(generator="2.0")


def test_confusion_rows() -> None:
    from occbench.synth.onboard12 import CATEGORIES, confusion_rows, draw_from_rows

    rows = confusion_rows()
    assert np.allclose(rows[1:].sum(axis=1), 1) and np.all(np.diag(rows) == 0) and np.all(rows[:, 0] == 0)
    cat = {c: k for k, cs in CATEGORIES.items() for c in cs}
    for i in range(1, 20):
        same = sum(rows[i, j] for j in range(1, 20) if cat[j] == cat[i])
        if len(CATEGORIES[cat[i]]) > 1:
            assert same > 0.5, i  # a confused voxel mostly stays in its category
    # drawing: u spread over [0, 1) reproduces the row
    u = (np.arange(100_000) + 0.5) / 100_000
    got = np.bincount(draw_from_rows(np.full(u.size, Wd.CAR, np.uint8), u.astype(np.float32)), minlength=20) / u.size
    assert np.allclose(got, rows[Wd.CAR], atol=1e-3)


def test_sequence_rules_differ_between_sequences() -> None:
    from occbench.synth.onboard import MODELS
    from occbench.synth.onboard12 import sequence_spec

    specs = [sequence_spec(MODELS["voxformer-sim"], np.random.default_rng([0, s])) for s in range(20)]
    assert len({s.sys_parking_to_road for s in specs}) == 20
    assert {s.sys_smear for s in specs} == {0, 1, 2}
    assert all(0.4 <= s.sys_parking_to_road <= 1.6 and 18 <= s.sys_thicken_from <= 36 for s in specs)


def test_thin_moving_vehicles_keeps_everything_else() -> None:
    agents = [
        Wd.Agent(0, 0.0, 1.0, 0.0, code, 1.0, 1.0, 1.0)
        for code in [Wd.MOVING_CAR] * 400 + [Wd.MOVING_PERSON] * 50 + [Wd.MOVING_BICYCLIST] * 50
    ]
    kept = Wd.thin_moving_vehicles(agents, [1, 2], 0.3)
    cars = sum(a.code == Wd.MOVING_CAR for a in kept)
    assert 90 <= cars <= 150 and sum(a.code != Wd.MOVING_CAR for a in kept) == 100
    assert kept == Wd.thin_moving_vehicles(agents, [1, 2], 0.3)


def test_stop_agents_stops_a_share_and_labels_them_static() -> None:
    codes = [Wd.MOVING_CAR, Wd.MOVING_PERSON, Wd.MOVING_BICYCLIST, Wd.MOVING_MOTORCYCLIST]
    agents = [Wd.Agent(0, float(i), 2.0, 0.5, codes[i % 4], 1.0, 1.0, 1.0) for i in range(800)]
    out = Wd.stop_agents(agents, [1, 2], 0.8)
    assert len(out) == len(agents) and out == Wd.stop_agents(agents, [1, 2], 0.8)
    stopped = [(a, b) for a, b in zip(agents, out) if b != a]
    assert 560 <= len(stopped) <= 720  # binomial(800, 0.8): mean 640, sd 11
    static = {Wd.CAR, Wd.PERSON, Wd.BICYCLIST, Wd.MOTORCYCLIST}
    for a, b in stopped:
        assert b.speed == 0.0 and b.code in static and b.code == Wd.STOPPED_CODE[a.code]
        assert (b.path, b.s0, b.offset, b.L, b.Wd, b.H) == (a.path, a.s0, a.offset, a.L, a.Wd, a.H)
    assert Wd.stop_agents(agents, [1, 2], 0.0) == agents
    assert all(a.speed == 0.0 for a in Wd.stop_agents(agents, [1, 2], 1.0))


def test_a_stopped_car_stands_still_and_is_stamped_with_the_shape_of_a_moving_one() -> None:
    from occbench.synth.generate import get_world

    w = get_world(MICRO12, "08")
    car = next(a for a in w.agents if a.code in (Wd.MOVING_CAR, Wd.CAR))
    stopped = Wd.stop_agents([car], [0], 1.0)[0]
    moving = dataclasses.replace(stopped, speed=5.0, code=Wd.MOVING_CAR)
    assert w.agent_state(stopped, 0) == w.agent_state(stopped, 50) == w.agent_state(moving, 0)
    assert w.agent_state(moving, 0) != w.agent_state(moving, 50)
    before, keep = w.W.copy(), w.agents
    cells = {}
    try:
        for a in (stopped, moving):
            w.agents = [a]
            undo = w.stamp_agents(0, radius=1e9)
            changed = w.W != before
            cells[a.code] = (changed, np.unique(w.W[changed]))
            w.unstamp(undo)
            assert np.array_equal(w.W, before)
    finally:
        w.agents = keep
    (m_stop, c_stop), (m_move, c_move) = cells[Wd.CAR], cells[Wd.MOVING_CAR]
    assert m_stop.sum() > 100 and np.array_equal(m_stop, m_move)  # the same body and cabin
    assert c_stop.tolist() == [Wd.CAR] and c_move.tolist() == [Wd.MOVING_CAR]


@pytest.fixture(scope="module")
def micro12(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from occbench.synth import generate_mini

    root = tmp_path_factory.mktemp("mini12")
    return root, generate_mini(root, MICRO12, progress=False, workers=1)


def test_generation_1_2(micro12: tuple[Path, dict]) -> None:
    from occbench.synth.calibrate import measure

    root, m = micro12
    assert (
        m["generator_version"] == "1.2"
        and json.loads((root / "mini.json").read_text())["config"]["generator_version"] == "1.2"
    )
    # the written files are what the in-memory predictor makes (deterministic), and the scores are in a sane regime
    a = measure(root, ["voxformer-sim"], split="val")
    assert a == measure(root, ["voxformer-sim"], split="val", in_memory=True)
    assert 20 < a["voxformer-sim"][12.8]["iou"] < 95


def test_depth_error_grows_with_range_and_is_partly_world_anchored(micro12: tuple[Path, dict]) -> None:
    from occbench.synth.generate import get_world, grid_codes, line_of_sight
    from occbench.synth.onboard12 import Predictor12

    root, m = micro12
    cfg = config_from_identity(m["config"])
    w = get_world(cfg, "08")
    only_depth = dict(
        blob_scale=0.0,
        inst_miss0=0.0,
        inst_miss_r=0.0,
        inst_miss_class={},
        inst_relabel0=0.0,
        inst_relabel_r=0.0,
        fill_hidden=0.0,
        sys_random=False,
        depth_sigma=2.0,
    )
    pred = Predictor12(cfg.seed, "08", "voxformer-sim", w, only_depth)
    none = Predictor12(cfg.seed, "08", "voxformer-sim", w, {**only_depth, "depth_sigma": 0.0})
    codes = grid_codes(w, 0)
    truth = Wd.CODE_TO_TRAIN[codes]
    vis = line_of_sight(codes)
    p, q = pred(0, truth, vis), none(0, truth, vis)
    changed = (p != q).any(axis=2)
    near, far = changed[:64].mean(), changed[160:].mean()
    assert far > 2 * near and far > 0.05
    assert np.array_equal(p, Predictor12(cfg.seed, "08", "voxformer-sim", w, only_depth)(0, truth, vis))
    # the depth field's world-anchored share is its own parameter; the blob fields keep world_share
    assert pred.depth.spec.world_share == pred.s12.depth_world_share == 0.6 and pred.spec.world_share == 0.5

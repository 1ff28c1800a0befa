"""occbench-mini: layout, loaders, determinism, sensor geometry and the simulated onboard models."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from occbench.io.kitti import read_calib, read_poses, read_times
from occbench.io.predictions import PredictionStore
from occbench.io.voxels import read_bits, read_label
from occbench.labels import load_label_map
from occbench.synth import MiniConfig, generate_mini
from occbench.synth import world as W
from occbench.synth.sensor import Caster, Visibility

REAL_CALIB_08 = (
    Path(__file__).resolve().parent / "data" / "kitti-odometry" / "sequences" / "08" / "calib.txt"
)  # tests/data/README.md

MICRO = MiniConfig(
    seed=3,
    scans={"00": 11, "08": 11, "11": 6},
    splits={"train": ("00",), "val": ("08",), "test": ("11",)},
    size="micro",
)

# sha256 over (relative path, content) of every file of the MICRO generation, .gz files decompressed
# (the gzip container depends on the zlib build; its content does not), with the default generator (1.3). Update
# together with GENERATOR_VERSION whenever the generator changes on purpose.
MICRO_DIGEST = "88bc0d07ff17f171855adc1ca24828ab80fd7e8ce8cb23cfa3792ba59122de29"
# the same with generator 1.1 (the default before 1.3; still selectable, and unchanged since)
MICRO_DIGEST_1_1 = "5d1b6bd7aaabe4844cfe15cd2dc72ce664a70b29d6054f661ac3e61d83d9b7d9"


def content_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or rel.startswith(".synth/"):
            continue
        data = p.read_bytes()
        if p.name.endswith(".gz"):
            data = gzip.decompress(data)
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


@pytest.fixture(scope="module")
def micro(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("mini")
    m = generate_mini(root, MICRO, progress=False, workers=1)
    return root, m


def test_layout_and_manifest(micro: tuple[Path, dict]) -> None:
    root, m = micro
    assert json.loads((root / "mini.json").read_text()) == m
    assert m["name"] == "occbench-mini" and m["format_version"] == 1 and m["label_every"] == 5
    assert m["splits"] == {"train": ["00"], "val": ["08"], "test": ["11"]}
    assert m["onboard"] == ["voxformer-sim", "sscnet-sim"] and m["scans"] == {"00": 11, "08": 11, "11": 6}
    for seq, n in m["scans"].items():
        d = root / "sequences" / seq
        labelled = list(range(0, n, 5))
        bins = sorted(p.name for p in (d / "voxels").glob("*.bin"))
        assert bins == [f"{i:06d}.bin" for i in labelled]
        gt = root / "test-ground-truth" / "sequences" / seq / "voxels" if seq == "11" else d / "voxels"
        for i in labelled:
            for ext in ("label", "invalid", "occluded"):
                assert (gt / f"{i:06d}.{ext}").is_file()
        if seq == "11":  # test ground truth kept apart from the inputs
            assert not list((d / "voxels").glob("*.label")) and not list((d / "voxels").glob("*.invalid"))
        for model in m["onboard"]:
            store = PredictionStore(root / "predictions" / model)
            assert store.frames(seq) == list(range(n))
            assert store.find(seq, 0).name.endswith(".label.gz")


def test_real_loaders_read_it(micro: tuple[Path, dict]) -> None:
    root, m = micro
    d = root / "sequences" / "08"
    calib = read_calib(d / "calib.txt")
    assert (d / "calib.txt").read_bytes() == REAL_CALIB_08.read_bytes()
    poses = read_poses(d / "poses.txt", calib)
    assert poses.shape == (11, 4, 4)
    np.testing.assert_allclose(poses[0], np.eye(4), atol=1e-9)  # the world frame is the first LiDAR frame
    t = read_times(d / "times.txt")
    np.testing.assert_allclose(np.diff(t), 0.1, atol=1e-9)
    speed = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1) / 0.1
    assert 5.0 < speed.mean() < 12.5
    # planar LiDAR poses: sensor height constant, no roll/pitch
    np.testing.assert_allclose(poses[:, 2, 3], 0.0, atol=1e-6)
    np.testing.assert_allclose(poses[:, 2, 2], 1.0, atol=1e-9)


def test_ground_truth_content(micro: tuple[Path, dict]) -> None:
    root, m = micro
    lm = load_label_map("semantickitti")
    d = root / "sequences" / "08" / "voxels"
    label = read_label(d / "000005.label")
    invalid = read_bits(d / "000005.invalid").astype(bool)
    occluded = read_bits(d / "000005.occluded").astype(bool)
    binv = read_bits(d / "000005.bin").astype(bool)
    assert lm.unknown_raw_ids(label).size == 0
    train = lm.to_train(label)
    assert not (invalid & (label > 0)).any()  # labelled voxels are never invalid
    assert not (invalid & ~occluded).any()  # seen from the scan itself -> valid
    # the scan's own hits are occupied in the ground truth (a voxel hit from the sensor is visible)
    assert (train[binv] > 0).all()
    # below the road level nothing is observed; real data: ~24 % invalid, ~65 % occluded
    assert invalid[:, :, 0].mean() > 0.95
    assert 0.10 < invalid.mean() < 0.45 and 0.35 < occluded.mean() < 0.85
    present = set(np.unique(train).tolist())
    assert {0, 1, 9, 11, 13, 15}.issubset(present)  # empty, car, road, sidewalk, building, vegetation
    # moving objects are written with the real "moving" raw ids somewhere in the data set
    raws = set()
    for p in (root / "sequences").rglob("*.label"):
        raws |= set(np.unique(read_label(p)).tolist())
    assert raws & {252, 253, 254, 255}


def test_counts_in_manifest_match_files(micro: tuple[Path, dict]) -> None:
    root, m = micro
    lm = load_label_map("semantickitti")
    counts = np.zeros(20, np.int64)
    d = root / "sequences" / "08" / "voxels"
    for p in sorted(d.glob("*.label")):
        t = lm.to_train(read_label(p))
        ok = read_bits(p.with_suffix(".invalid")) == 0
        counts += np.bincount(t[ok & (t != 255)], minlength=256)[:20]
    assert counts.tolist() == m["voxel_counts"]["val"]


def test_deterministic_checksum(micro: tuple[Path, dict]) -> None:
    root, _ = micro
    assert MICRO.generator == "1.3"
    digest = content_digest(root)
    assert digest == MICRO_DIGEST, digest


def test_generator_1_1_is_unchanged(tmp_path: Path) -> None:
    generate_mini(tmp_path, dataclasses.replace(MICRO, generator="1.1"), progress=False, workers=1)
    digest = content_digest(tmp_path)
    assert digest == MICRO_DIGEST_1_1, digest


def test_world_is_deterministic_and_seeded() -> None:
    a = W.build_world([5, 7_130_111, 8], 5, 5)
    b = W.build_world([5, 7_130_111, 8], 5, 5)
    c = W.build_world([6, 7_130_111, 8], 5, 5)
    assert np.array_equal(a.W, b.W) and np.array_equal(a.poses, b.poses)
    assert a.W.shape != c.W.shape or not np.array_equal(a.W, c.W)


def test_world_has_all_classes() -> None:
    w = W.build_world([0, 7_130_111, 8], 300, 50)
    undo = w.stamp_agents(10)
    present = set(np.unique(W.CODE_TO_TRAIN[w.W]).tolist())
    w.unstamp(undo)
    assert set(range(20)).issubset(present), sorted(set(range(20)) - present)


def test_agents_move_and_unstamp_restores() -> None:
    w = W.build_world([1, 7_130_111, 8], 20, 0)
    before = w.W.copy()
    u0 = w.stamp_agents(0)
    at0 = w.W.copy()
    w.unstamp(u0)
    assert np.array_equal(w.W, before)
    u1 = w.stamp_agents(15)
    at15 = w.W.copy()
    w.unstamp(u1)
    assert not np.array_equal(at0, at15) and not np.array_equal(at0, before)


def _toy_volume() -> np.ndarray:
    occ = np.zeros((256, 256, 32), bool)
    occ[:, :, :2] = True  # flat ground (road top at level 1)
    occ[50:52, 118:138, 2:20] = True  # a wall 10 m ahead, 4 m wide, 3.6 m high
    return occ


def test_visibility_wall_occludes() -> None:
    vis = Visibility.build((0.0, 51.2), (-25.6, 25.6), max_range=80.0).visible(_toy_volume()).reshape(256, 256, 32)
    assert vis[30, 128, 10] and vis[50, 128, 10]  # free air in front, the wall's face
    assert not vis[51, 128, 10] and not vis[80, 128, 5]  # inside / behind the wall
    assert vis[80, 20, 5]  # off to the side: visible
    assert vis[40, 128, 1] and not vis[40, 128, 0]  # road surface seen at a grazing angle; below it not


def test_caster_hits_first_surface() -> None:
    c = Caster.build((0.0, 51.2), (-25.6, 25.6), 256, az_range=(-90.0, 90.0))
    obs, hit = c.cast(_toy_volume())
    hit = hit.reshape(256, 256, 32)
    obs = obs.reshape(256, 256, 32)
    assert hit[50, 118:138, 2:20].sum() > 20 and not hit[51:, 118:138, 2:20].any()
    assert hit[:, :, 1].sum() > 100 and not hit[:, :, 0].any()
    assert not obs[60:70, 125:131, 5].any()  # behind the wall


def test_onboard_errors_are_blobs_and_viewpoint_dependent() -> None:
    from occbench.synth.generate import MODEL_IDS, grid_codes, line_of_sight
    from occbench.synth.onboard import MODELS, FieldCache, _systematic, predict

    w = W.build_world([2, 7_130_111, 8], 31, 0)
    undo = w.stamp_agents(10)
    codes = grid_codes(w, 10)
    w.unstamp(undo)
    truth = W.CODE_TO_TRAIN[codes]
    vis = line_of_sight(codes)
    for name in ("voxformer-sim", "sscnet-sim"):
        spec = MODELS[name]
        fc = FieldCache([2, 7_130_112, 8, MODEL_IDS[name]], spec, world=w)
        p10 = predict(spec, truth, vis, fc.at(10))
        p10b = predict(spec, truth, vis, FieldCache([2, 7_130_112, 8, MODEL_IDS[name]], spec, world=w).at(10))
        p30 = predict(spec, truth, vis, fc.at(30))
        assert np.array_equal(p10, p10b)
        assert not np.array_equal(p10, p30)  # same scene, other viewpoint time: other errors
        # the systematic part does not depend on the fields
        T = np.where(truth == 255, 0, truth).astype(np.uint8)
        assert np.array_equal(_systematic(spec, T), _systematic(spec, T))
        # spatial coherence (blobs, not salt and pepper): among neighbouring pairs of visible occupied voxels,
        # a voxel next to a wrong one is wrong far more often than a voxel next to a right one
        m = vis & ((T > 0) | (p10 > 0))
        wrong = p10 != T
        valid = m[1:] & m[:-1]
        a, b = wrong[:-1][valid], wrong[1:][valid]
        p1, p0 = b[a].mean(), b[~a].mean()
        assert 0.02 < wrong[m].mean() < 0.9 and p1 > p0 + 0.2, (name, p1, p0)


def test_blend_uniform_is_uniform_and_exact_at_the_ends() -> None:
    from occbench.synth.onboard import blend_uniform

    rng = np.random.default_rng(0)
    u, v = rng.random(400_000, dtype=np.float32), rng.random(400_000, dtype=np.float32)
    assert np.array_equal(blend_uniform(u, v, 0.0), v) and np.array_equal(blend_uniform(u, v, 1.0), u)
    for share in (0.2, 0.5, 0.8):
        g = blend_uniform(u, v, share)
        assert g.dtype == np.float32 and g.min() >= 0 and g.max() <= 1
        # uniform: every decile holds 10 % of the values (binomial std here: 0.05 %)
        hist = np.histogram(g, bins=10, range=(0, 1))[0] / g.size
        assert np.abs(hist - 0.1).max() < 0.003, (share, hist)
        # a monotone function of the weighted sum: same order
        s = share * u.astype(np.float64) + (1 - share) * v
        o = np.argsort(s[:2000], kind="stable")
        assert (np.diff(g[:2000][o]) >= -1e-6).all()


def _field_pairs(share: float, t1: int, t2: int, k: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Field values of scans t1 and t2 at the voxels of both grids that fall in the same world cell."""
    from occbench.synth.columns import columns
    from occbench.synth.generate import MODEL_IDS
    from occbench.synth.onboard import MODELS, FieldCache

    w = W.build_world([5, 7_130_111, 8], 40, 0)
    # turn scan t2 by 0.3 rad and shift it off the 0.2 m lattice, so that the two grids sample the world
    # at different points (this world starts on a straight road along x)
    w.poses[t2] = (float(w.poses[t2][0]) + 0.07, float(w.poses[t2][1]) + 0.13, 0.3)
    spec = dataclasses.replace(MODELS["voxformer-sim"], world_share=share)
    fc = FieldCache([5, 7_130_112, 8, MODEL_IDS["voxformer-sim"]], spec, world=w)
    cols = columns()
    cells = []
    for t in (t1, t2):
        x, y, yaw = (float(a) for a in w.poses[t])
        c, s = W._c(yaw), W._s(yaw)
        ix = np.floor(((c * cols["GU"] - s * cols["GV"]) + x - w.origin[0]) / W.CELL).astype(np.int64)
        iy = np.floor(((s * cols["GU"] + c * cols["GV"]) + y - w.origin[1]) / W.CELL).astype(np.int64)
        cells.append(ix * 1_000_003 + iy)
    common, c1, c2 = np.intersect1d(cells[0], cells[1], return_indices=True)
    assert common.size > 10_000  # the two grids overlap
    kz = np.arange(0, 32, 3)
    idx1 = (c1[:, None] * 32 + kz[None, :]).ravel()
    idx2 = (c2[:, None] * 32 + kz[None, :]).ravel()
    return fc.at(t1).sample(k, idx1), fc.at(t2).sample(k, idx2)


def test_world_anchored_errors_are_shared_between_viewpoints() -> None:
    """The same world place gets correlated error fields from two viewpoints in proportion to world_share."""
    corr = {}
    for share in (0.0, 0.5, 1.0):
        a, b = _field_pairs(share, 10, 25)
        corr[share] = float(np.corrcoef(a, b)[0, 1])
    # 0: independent key fields (scans 10 and 25 are three key draws apart); 1: the same lattice, sampled
    # at points at most one 0.2 m cell apart; 0.5: in between
    assert abs(corr[0.0]) < 0.05 and corr[1.0] > 0.9 and 0.25 < corr[0.5] < 0.75, corr


def test_world_anchored_model_needs_the_world() -> None:
    from occbench.synth.onboard import MODELS, FieldCache

    with pytest.raises(ValueError, match="needs the sequence's world"):
        FieldCache([0, 1, 8, 0], MODELS["voxformer-sim"])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        FieldCache([0, 1, 8, 0], dataclasses.replace(MODELS["voxformer-sim"], world_share=1.5), world=object())


def test_camera_model_worse_far_and_outside_fov() -> None:
    from occbench.synth.generate import MODEL_IDS, grid_codes, line_of_sight
    from occbench.synth.onboard import MODELS, FieldCache, grid_geometry, predict

    spec = MODELS["voxformer-sim"]
    w = W.build_world([4, 7_130_111, 8], 60, 0)
    fc = FieldCache([4, 7_130_112, 8, MODEL_IDS["voxformer-sim"]], spec, world=w)
    geo = grid_geometry()
    near = (geo["rn"] * 51.2 < 20)[:, :, None] & np.ones(32, bool)
    stats = {"near": [0, 0], "far": [0, 0], "in": [0, 0], "out": [0, 0]}
    for t in range(0, 60, 10):
        undo = w.stamp_agents(t)
        codes = grid_codes(w, t)
        w.unstamp(undo)
        truth = W.CODE_TO_TRAIN[codes]
        vis = line_of_sight(codes)
        p = predict(spec, truth, vis, fc.at(t))
        surf = vis & (truth > 0) & (truth != 255)
        hitm = (p == truth) & surf
        for key, m in (("near", near), ("far", ~near), ("in", geo["fov"]), ("out", ~geo["fov"])):
            stats[key][0] += int(hitm[m].sum())
            stats[key][1] += int(surf[m].sum())
    acc = {k: a / b for k, (a, b) in stats.items()}
    assert acc["near"] > acc["far"] + 0.1 and acc["in"] > acc["out"] + 0.1, acc


def test_partial_generation_has_no_manifest_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from occbench.synth import generate as G

    cfg = dataclasses.replace(MICRO, scans={"00": 3, "08": 3, "11": 3}, lookahead=0, onboard=("sscnet-sim",))

    def boom(*a: object, **k: object) -> dict:
        raise RuntimeError("interrupted")

    monkeypatch.setattr(G, "run_model_job", boom)
    with pytest.raises(RuntimeError):
        generate_mini(tmp_path, cfg, progress=False, workers=1)
    assert not (tmp_path / "mini.json").exists()
    assert (tmp_path / ".synth" / "00-gt.json").is_file()
    monkeypatch.undo()
    m = generate_mini(tmp_path, cfg, progress=False, workers=1)
    assert (tmp_path / "mini.json").is_file() and m["onboard"] == ["sscnet-sim"]
    # another configuration on the same root is refused unless overwrite
    with pytest.raises(FileExistsError):
        generate_mini(tmp_path, dataclasses.replace(cfg, seed=9), progress=False, workers=1)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        MiniConfig(scans={"00": 5}, splits={"train": ("00", "01")})
    with pytest.raises(ValueError):
        MiniConfig(scans={"0": 5}, splits={"train": ("0",)})
    with pytest.raises(ValueError):
        MiniConfig(onboard=("nope",))


def test_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from occbench.cli import synth as command

    small = dataclasses.replace(MICRO, scans={"00": 2, "08": 2, "11": 2}, lookahead=0)
    monkeypatch.setattr(command, "config_for_size", lambda size, seed: dataclasses.replace(small, seed=seed))
    r = CliRunner().invoke(
        command.synth,
        ["-o", str(tmp_path / "m"), "--seed", "4", "--onboard", "sscnet-sim", "--workers", "1", "--quiet"],
    )
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "m" / "mini.json").read_text())
    assert m["seed"] == 4 and m["onboard"] == ["sscnet-sim"]
    r = CliRunner().invoke(command.synth, ["-o", str(tmp_path / "m"), "--seed", "5", "--quiet", "--workers", "1"])
    assert r.exit_code != 0 and "another configuration" in r.output


def test_calibrate_recomputes_the_written_predictions(micro: tuple[Path, dict], tmp_path: Path) -> None:
    """The calibration tools see the bytes the generator wrote, and an override changes them."""
    from occbench.synth.calibrate import main, measure, write_predictions

    root, m = micro
    assert measure(root, ["voxformer-sim"]) == measure(root, ["voxformer-sim"], in_memory=True)
    out = write_predictions(root, tmp_path / "same", ["voxformer-sim"])
    main(
        [
            "--root",
            str(root),
            "--split",
            "val",
            "--model",
            "voxformer-sim",
            "--set",
            "world_share=0.3",
            "--write-predictions",
            str(tmp_path / "s0"),
        ]
    )
    a, b, c = (PredictionStore(d / "voxformer-sim") for d in (root / m["predictions"], out, tmp_path / "s0"))
    n = m["scans"]["08"]
    assert all(np.array_equal(a.read("08", f), b.read("08", f)) for f in range(n))
    assert any(not np.array_equal(a.read("08", f), c.read("08", f)) for f in range(n))

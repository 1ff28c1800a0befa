"""SSCBench-KITTI360: every SSCBench frame gets the pose of the KITTI-360 frame it is, composed with R_rect_00.

Trees here are in the real layout: ``data_poses/<drive>/cam0_to_world.txt`` numbered by KITTI-360 frame, with gaps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from occbench.datasets import SSCBenchKITTI360
from occbench.datasets.kitti360_frames import read_frame_map, release_frame_map, write_frame_map
from occbench.datasets.sscbench_kitti360 import CAM2VELO, R_RECT_00, SPLITS, K, kitti360_calibration
from occbench.errors import FormatError, MissingDataError
from occbench.io.kitti360 import read_cam_to_velo, read_perspective

D0 = "2013_05_28_drive_0000_sync"
EXCERPT = Path(__file__).parent / "data" / "symphonies-kitti360-match-excerpt.txt"


# -- the shipped correspondence -----------------------------------------------------------------------------------
def test_release_frame_map_covers_the_nine_drives_and_is_checked():
    table = release_frame_map()
    drives = sorted(d for s in SPLITS.values() for d in s)
    assert sorted(table) == drives and len(drives) == 9
    for ids in table.values():
        assert ids[0] >= 0 and np.all(np.diff(ids) > 0)  # one KITTI-360 frame per SSCBench frame, in time order
    # known correspondences (image-matched, hustvl/Symphonies assets/kitti_360_match.txt)
    assert [int(table[D0][t]) for t in (0, 1, 5, 300)] == [9, 14, 53, 392]
    # ai4ce/SSCBench#11: SSCBench drive 0000 holds frames 0-10,482
    assert len(table[D0]) == 10_483 and table[D0][-1] <= 11_517
    # SSCBench README: 8,487 train and 1,812 val frames, i.e. every 5th SSCBench frame of the drives of each split
    labelled = {k: sum(len(range(0, len(table[d]), 5)) for d in v) for k, v in SPLITS.items()}
    assert labelled["train"] == 8_487 and labelled["val"] == 1_812
    assert labelled["test"] >= 2_566  # the original test count (since revised down to 2,165): all inside the map
    # kitti360Scripts#92: drive 0002's first 4,391 KITTI-360 frames became the test drive 0018
    assert table["2013_05_28_drive_0002_sync"][0] >= 4_391


def test_release_map_equals_the_image_matched_pairs():
    pairs = read_frame_map(EXCERPT)  # the Symphonies file's own form, progress-bar line included
    rel = release_frame_map()
    assert sorted(pairs) == [D0, "2013_05_28_drive_0003_sync"]
    for d, ids in pairs.items():
        np.testing.assert_array_equal(ids, rel[d][: len(ids)])
    assert len(pairs[D0]) == 301 and pairs[D0][300] == 392


def test_frame_map_reader_round_trip_and_errors(tmp_path):
    good = {D0: np.array([9, 14, 15, 16, 22]), "2013_05_28_drive_0006_sync": np.array([35])}
    write_frame_map(tmp_path / "m.txt", good, header="mine")
    text = (tmp_path / "m.txt").read_text()
    assert "2013_05_28_drive_0000_sync 9 14-16 22" in text
    back = read_frame_map(tmp_path / "m.txt")
    assert {k: v.tolist() for k, v in back.items()} == {k: v.tolist() for k, v in good.items()}

    def bad(content: str, match: str) -> None:
        (tmp_path / "b.txt").write_text(content)
        with pytest.raises(FormatError, match=match):
            read_frame_map(tmp_path / "b.txt")

    bad(f"{D0} 9 14 12\n", r"b.txt: expected strictly increasing .* 14 then 12 .*000001, 000002.* on line 1")
    bad(f"{D0} 9 9\n", r"strictly increasing")
    bad(f"{D0} 9-7\n", r"a <= b")
    bad(f"{D0} 9 x\n", r"'x' on line 1, column 3")
    bad("drive0 9\n", r"a drive name .* 'drive0' on line 1")
    bad(f"{D0} 9\n{D0} 10\n", r"one line per drive .* line 2")
    bad(f"{D0} 0000000009.png 000000.png\n{D0} 0000000014.png 000002.png\n", r"frame 000002 where 000001 belongs")
    bad(f"{D0} 0000000014.png 000000.png\n{D0} 0000000009.png 000001.png\n", r"strictly increasing.*line 1.*line 2")
    bad(f"{D0} 0000000009.png 0000000.png\n", r"6-digit SSCBench frame name")
    bad("# nothing\n", r"at least one drive")


# -- calibration ---------------------------------------------------------------------------------------------------
def _rot(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _rigid(rng, scale=1.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = _rot(rng)
    T[:3, 3] = rng.normal(size=3) * scale
    return T


def _write_calibration(root: Path, P: np.ndarray, R: np.ndarray, cam2velo: np.ndarray) -> None:
    c = root / "calibration"
    c.mkdir(parents=True, exist_ok=True)
    f = lambda a: " ".join(f"{x:.17g}" for x in np.asarray(a).reshape(-1))  # noqa: E731
    (c / "perspective.txt").write_text(
        f"S_00: 1.392000e+03 5.120000e+02\nP_rect_00: {f(P)}\nR_rect_00: {f(R[:3, :3])}\n"
        "S_rect_00: 1.408e+03 3.76e+02\n"
        f"P_rect_01: {f(P)}\n"
    )
    (c / "calib_cam_to_velo.txt").write_text(f(cam2velo[:3]) + "\n")


def test_calibration_read_from_files_or_published(tmp_path):
    rng = np.random.default_rng(1)
    R, V = np.eye(4), _rigid(rng)
    R[:3, :3] = _rot(rng)
    P = K.copy()
    P[0, 0] = P[1, 1] = 600.0
    c = kitti360_calibration()  # no root: the published values
    np.testing.assert_array_equal(c.R_rect, R_RECT_00)
    np.testing.assert_allclose(c.Tr @ CAM2VELO, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(c.Tr_rect, R_RECT_00 @ np.linalg.inv(CAM2VELO))
    _write_calibration(tmp_path, P, R, V)
    c = kitti360_calibration(tmp_path)
    np.testing.assert_allclose(c.R_rect, R, atol=1e-15)
    np.testing.assert_allclose(c.P["P2"], P)
    np.testing.assert_allclose(c.Tr_rect, R @ np.linalg.inv(V), atol=1e-12)


def test_calibration_readers_refuse_bad_files(tmp_path):
    p = tmp_path / "perspective.txt"
    good_R = " ".join(["1", "0", "0", "0", "1", "0", "0", "0", "1"])
    good_P = " ".join(f"{x:g}" for x in K.reshape(-1))
    cases = [
        (f"P_rect_00: {good_P}\n", r"perspective.txt: expected a 'R_rect_00:' line"),
        (f"P_rect_00: {good_P}\nR_rect_00: {good_R}\nR_rect_00: {good_R}\n", r"a second 'R_rect_00:' line on line 3"),
        (f"P_rect_00: {good_P}\nR_rect_00: 1 0 0 0 1 0 0 0\n", r"9 numbers for R_rect_00, found 8 per line on line 2"),
        (f"P_rect_00: {good_P}\nR_rect_00: 2 0 0 0 1 0 0 0 1\n", r"R_rect_00 \(a rotation\).*line 2"),
        (f"P_rect_00: {good_P}\nR_rect_00: 1 0 0 0 1 0 0 0 nan\n", r"finite numbers.*line 2"),
        (f"P_rect_00 {good_P}\n", r"lines 'KEY: values'.*line 1"),
    ]
    for text, match in cases:
        p.write_text(text)
        with pytest.raises(FormatError, match=match):
            read_perspective(p)
    p.write_text(f"K_00: 1 2 3\nP_rect_00: {good_P}\nR_rect_00: {good_R}\n")  # keys not read are ignored
    P, R = read_perspective(p)  # good input is accepted
    np.testing.assert_array_equal(R, np.eye(4))
    q = tmp_path / "calib_cam_to_velo.txt"
    q.write_text("1 0 0 0 0 1 0 0 0 0 1 0\n1 0 0 0 0 1 0 0 0 0 1 0\n")
    with pytest.raises(FormatError, match=r"calib_cam_to_velo.txt: expected one line of 12 numbers"):
        read_cam_to_velo(q)
    q.write_text("1 0 0 0 0 1 0 0 0 0 1\n")
    with pytest.raises(FormatError, match=r"12 floats per line, found 11 per line on line 1"):
        read_cam_to_velo(q)
    q.write_text("1 0 0 5 0 1 0 6 0 0 1 7\n")
    np.testing.assert_array_equal(read_cam_to_velo(q)[:3, 3], [5, 6, 7])
    with pytest.raises(MissingDataError, match="perspective"):
        read_perspective(tmp_path / "absent.txt")


# -- poses of a tree in the real layout -------------------------------------------------------------------------------
def _write_tree(root: Path, drive: str, n: int, cam0_to_world: dict[int, np.ndarray], labelled=(0, 5)) -> None:
    """Ground truth of ``labelled`` SSCBench frames (empty grids) and KITTI-360's poses file with the given rows."""
    from occbench.io.voxels import write_invalid_kitti360, write_label

    vox = root / "data_2d_raw" / drive / "voxels"
    vox.mkdir(parents=True, exist_ok=True)
    for t in labelled:
        write_label(vox / f"{t:06d}.label", np.zeros((256, 256, 32), np.uint16))
        write_invalid_kitti360(vox / f"{t:06d}.invalid", np.zeros((256, 256, 32), np.uint8))
    d = root / "data_poses" / drive
    d.mkdir(parents=True, exist_ok=True)
    rows = [f"{r} " + " ".join(f"{x:.17g}" for x in T.reshape(-1)) for r, T in sorted(cam0_to_world.items())]
    (d / "cam0_to_world.txt").write_text("\n".join(rows) + "\n")


def test_each_sscbench_frame_gets_the_pose_of_its_kitti360_frame_composed_as_the_devkit(tmp_path):
    """Truth built along the devkit's other chain: IMU poses P (poses.txt), camera -> IMU C (calib_cam_to_pose),
    rectified camera pose P C inv(R_rect) (helpers/project.py) and velodyne -> world P C inv(cam_to_velo)
    (viewer/kitti360Viewer3DRaw.py). The loader sees only cam0_to_world, perspective.txt and calib_cam_to_velo."""
    rng = np.random.default_rng(0)
    R = np.eye(4)
    R[:3, :3] = _rot(rng)
    C, V = _rigid(rng), _rigid(rng)
    ids = release_frame_map()[D0]
    n = 301
    raw = np.arange(0, 400)
    raw = raw[(raw % 7 != 3) | np.isin(raw, ids[:n])]  # gaps: KITTI-360 frames that are not SSCBench frames
    raw = raw[raw != ids[2]]  # ... and SSCBench frame 000002's frame has no pose
    imu = {int(r): _rigid(rng, 50.0) for r in raw}
    _write_tree(tmp_path, D0, n, {r: P @ C @ np.linalg.inv(R) for r, P in imu.items()}, labelled=(0, 5, 300))
    _write_calibration(tmp_path, K, R, V)
    ds = SSCBenchKITTI360(tmp_path, split="train", sequences=[D0])
    seq = ds[D0]
    assert seq.num_scans == 10_483
    for t, r in ((0, 9), (1, 14), (5, 53), (300, 392)):
        assert seq.pose_valid[t]
        np.testing.assert_allclose(seq.frame(t).pose, imu[r] @ C @ np.linalg.inv(V), atol=1e-9)
    assert not seq.pose_valid[2] and seq.pose_valid[:n].sum() == n - 1
    np.testing.assert_array_equal(seq.pose_valid, np.isin(ids, raw))  # the file's rows end at KITTI-360 frame 399
    with pytest.raises(
        MissingDataError,
        match=r"pose of requested frame 000002 of sequence 2013_05_28_drive_0000_sync "
        r"\(it is KITTI-360 frame 0000000022, which has no row in cam0_to_world.txt\)",
    ):
        seq.frame(2).pose
    h = ds.describe()["poses"]
    assert h["frame_map"] == "sscbench-release"
    assert h["calibration"] == {
        "perspective": "calibration/perspective.txt",
        "cam_to_velo": "calibration/calib_cam_to_velo.txt",
    }
    assert h["scans_without_pose"] == {D0: 10_483 - int(np.isin(ids, raw).sum())}
    # the same poses file renumbered by SSCBench frame, read as it is with frame_map="identity"
    other = tmp_path / "renumbered"
    _write_tree(other, D0, n, {t: imu[int(ids[t])] @ C @ np.linalg.inv(R) for t in range(n) if int(ids[t]) in imu})
    _write_calibration(other, K, R, V)
    ds2 = SSCBenchKITTI360(other, split="train", sequences=[D0], frame_map="identity")
    assert ds2[D0].num_scans == n and ds2.describe()["poses"]["frame_map"] == "identity"
    np.testing.assert_allclose(ds2[D0].poses[ds2[D0].pose_valid], seq.poses[:n][seq.pose_valid[:n]], atol=1e-12)
    # a map of one's own
    write_frame_map(tmp_path / "mine.txt", {D0: np.array([9, 14, 53])})
    ds3 = SSCBenchKITTI360(tmp_path, split="train", sequences=[D0], frame_map=tmp_path / "mine.txt")
    np.testing.assert_allclose(ds3[D0].poses[2], imu[53] @ C @ np.linalg.inv(V), atol=1e-9)
    write_frame_map(tmp_path / "other.txt", {"2013_05_28_drive_0003_sync": np.array([4, 6])})
    with pytest.raises(FormatError, match=r"other.txt: expected a line for drive 2013_05_28_drive_0000_sync"):
        SSCBenchKITTI360(tmp_path, split="train", sequences=[D0], frame_map=tmp_path / "other.txt")[D0].poses


def test_scored_frame_without_a_pose_is_an_error_naming_drive_frame_and_file(tmp_path):
    from occbench.evaluation.run import DatasetSpec, EvalConfig, MethodSpec, evaluate

    ids = release_frame_map()[D0]
    rows = {int(r): np.eye(4) for r in ids[:10] if r != ids[5]}  # SSCBench frame 000005 (KITTI-360 53): no row
    _write_tree(tmp_path, D0, 10, rows)
    spec = DatasetSpec("sscbench-kitti360", str(tmp_path), "train", None, {"sequences": [D0]})
    with pytest.raises(
        MissingDataError,
        match=r"pose of scored frame 000005 of sequence 2013_05_28_drive_0000_sync "
        r"\(it is KITTI-360 frame 0000000053, .*\) not found: .*data_poses/"
        r"2013_05_28_drive_0000_sync/cam0_to_world.txt",
    ):
        evaluate(EvalConfig(dataset=spec, method=MethodSpec("onboard"), workers=1)).to_dict()
    # a labelled frame past the drive's frames in the frame map (was an IndexError in the fingerprint)
    write_frame_map(tmp_path / "short.txt", {D0: ids[:3]})
    spec = DatasetSpec(
        "sscbench-kitti360", str(tmp_path), "train", None, {"sequences": [D0], "frame_map": str(tmp_path / "short.txt")}
    )
    with pytest.raises(MissingDataError, match=r"pose of scored frame 000005 .* lists SSCBench frames 000000..000002"):
        evaluate(EvalConfig(dataset=spec, method=MethodSpec("onboard"), workers=1)).to_dict()


def test_kitti360_prediction_names_are_6_digit_sscbench_frames(tmp_path):
    import pickle

    from occbench.io.formats import ForeignFormat, ForeignPredictionStore

    d = tmp_path / "out" / "kitti_360" / D0
    d.mkdir(parents=True)
    for name in ("000005", "0000000053"):
        with open(d / f"{name}.pkl", "wb") as f:
            pickle.dump({"y_pred": np.zeros((256, 256, 32), np.uint16)}, f)
    s = ForeignPredictionStore(tmp_path / "out", ForeignFormat("monoscene-pkl"), "kitti360")
    assert s.frames(D0) == [5] and s.find(D0, 53) is None
    assert [p.name for p in s.unexpected_files(D0)] == ["0000000053.pkl"]
    assert "10-digit KITTI-360 frame numbers name other frames" in s.expected_names


# -- the pose-valid rule of the windows ------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["exact", "lattice", "reference"])
def test_voting_leaves_scans_without_a_pose_out_of_windows(engine):
    from occbench_baselines.voting import SensorWeights, VotingConfig, make_engine
    from occbench_baselines.voting.config import VotingConfigError

    rng = np.random.default_rng(3)
    N, shape = 6, (24, 24, 4)
    grids = [rng.integers(0, 4, shape).astype(np.uint8) for _ in range(N)]
    poses = np.tile(np.eye(4), (N, 1, 1))
    poses[:, 0, 3] = 0.2 * np.arange(N)
    valid = np.ones(N, bool)
    valid[2] = False
    holed = poses.copy()
    holed[2] = np.nan  # as ScanSequence.poses holds it
    asked: list[int] = []

    def frames(i: int) -> np.ndarray:
        asked.append(i)
        return grids[i]

    cfg = VotingConfig(n=N, weights=SensorWeights(kind="none"), num_classes=4, grid_shape=shape)
    eng = make_engine(engine, frames, holed, None, cfg, device="cpu", pose_valid=valid)
    keep = np.flatnonzero(valid)  # the same sequence without scan 2 (every window holds every scan)
    ref = make_engine("reference", lambda i: grids[keep[i]], poses[keep], None, cfg, device="cpu")
    for t in (0, 4):
        np.testing.assert_array_equal(eng.vote(t), ref.vote(int(np.searchsorted(keep, t))))
    assert 2 not in asked
    with pytest.raises(VotingConfigError, match="target scan 2 has no pose"):
        eng.vote(2)
    with pytest.raises(VotingConfigError, match="pose of scan 2 is not finite but the scan is marked"):
        make_engine(engine, frames, holed, None, cfg, device="cpu")


def test_occfiner_windows_count_scans_with_a_pose():
    from occbench_baselines.occfiner.method import needed_scans
    from occbench_baselines.occfiner.windows import WindowConfig, posed_window_indices, window_indices

    cfg = WindowConfig(local=4, reference=2, reference_radius=6, reference_stride=2)
    valid = np.ones(20, bool)
    assert posed_window_indices(7, 20, valid, cfg) == window_indices(7, 20, cfg)
    valid[[6, 8, 9]] = False
    posed = np.flatnonzero(valid)
    w = posed_window_indices(7, 20, valid, cfg)
    assert not set(w) & {6, 8, 9}
    assert w == [int(posed[i]) for i in window_indices(int(np.searchsorted(posed, 7)), len(posed), cfg)]
    with pytest.raises(ValueError, match="pivot scan 8 has no pose"):
        posed_window_indices(8, 20, valid, cfg)
    assert needed_scans([7], 2, 20, valid) == [5, 7]


# -- what the right poses change in a method's numbers --------------------------------------------------------------
def _world_tree(root: Path, n: int, R_rect_file: np.ndarray) -> None:
    """A static synthetic world (occbench_baselines.voting.synthetic) driven through along KITTI-360 frame ids:
    SSCBench frame t is KITTI-360 frame ids[t] (the release map, drive 0000), the car moving 0.8 m and turning 0.1
    degree per KITTI-360 frame. Ground truth every 5th frame, an onboard model (30 % of the occupied voxels dropped or
    relabelled, phantoms) for every frame, KITTI-360's poses file (rows 0..39 and the frames SSCBench kept, a third of
    the others left out), and a calibration whose perspective.txt holds ``R_rect_file``."""
    from occbench.io.predictions import PredictionStore
    from occbench.io.voxels import write_invalid_kitti360, write_label
    from occbench.labels import load_label_map
    from occbench_baselines.voting.synthetic import SyntheticSequence

    lm = load_label_map("kitti360")
    ids = release_frame_map()[D0]

    def lidar(r: int) -> np.ndarray:
        a = 0.0017 * r
        T = np.eye(4)
        T[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
        T[0, 3], T[1, 3] = 0.8 * r, 0.05 * r
        return T

    top = int(ids[n - 1])
    others = np.setdiff1d(np.arange(40, top + 1), ids[:n])
    raw = np.union1d(np.union1d(np.arange(40), ids[:n]), np.delete(others, np.s_[::3]))
    cam = {int(r): lidar(int(r)) @ CAM2VELO @ np.linalg.inv(R_RECT_00) for r in raw}  # rectified camera 0 -> world
    _write_tree(root, D0, n, cam, labelled=())
    _write_calibration(root, K, R_rect_file, CAM2VELO)
    world = SyntheticSequence(np.stack([lidar(int(r)) for r in ids[:n]]), seed=5)
    vox = root / "data_2d_raw" / D0 / "voxels"
    store = PredictionStore(root / "predictions" / "sim")
    for t in range(n):
        g = world.gt(t)
        rng = np.random.default_rng(t)
        p = g.copy()
        u = rng.random(g.shape)
        occ = g > 0
        p[occ & (u < 0.15)] = 0
        relabel = occ & (u >= 0.15) & (u < 0.3)
        p[relabel] = rng.integers(1, lm.num_classes, int(relabel.sum()))
        ph = ~occ & (u < 0.01)
        p[ph] = rng.integers(1, lm.num_classes, int(ph.sum()))
        store.write(D0, t, lm.to_raw(p))
        if t % 5 == 0:
            write_label(vox / f"{t:06d}.label", lm.to_raw(g))
            write_invalid_kitti360(vox / f"{t:06d}.invalid", np.zeros(g.shape, np.uint8))


@pytest.mark.slow
def test_average_fusion_with_the_right_poses_vs_the_old_lookup(tmp_path):
    """The numbers of docs/datasets.md: average fusion (n=10) on a gapped raw-id tree, with each frame's own pose,
    without R_rect_00 (perspective.txt holding the identity), and with the old lookup (the KITTI-360-numbered poses
    file read as if numbered by SSCBench frame: SSCBench frame t took row t; no R_rect_00)."""
    from occbench.evaluation.run import DatasetSpec, EvalConfig, MethodSpec, evaluate

    n = 30
    root = tmp_path / "tree"
    _world_tree(root, n, R_RECT_00)
    write_frame_map(tmp_path / "old.txt", {D0: np.arange(n)})  # scan t -> row t: the old lookup
    scores = {}
    for name, R, fmap in (
        ("right", R_RECT_00, None),
        ("no R_rect", np.eye(4), None),
        ("old", np.eye(4), str(tmp_path / "old.txt")),
    ):
        _write_calibration(root, K, R, CAM2VELO)
        kw = {"sequences": [D0], **({"frame_map": fmap} if fmap else {})}
        res = {
            m: evaluate(
                EvalConfig(
                    dataset=DatasetSpec("sscbench-kitti360", str(root), "train", "sim", kw),
                    method=MethodSpec(m, o),
                    workers=1,
                    metrics=(),
                )
            ).to_dict()["metrics"]["ssc"]["51.2"]
            for m, o in (("onboard", {}), ("average-fusion", {"n": 10}))
        }
        scores[name] = {m: (round(100 * r["iou"], 2), round(100 * r["miou"], 2)) for m, r in res.items()}
    print(scores)
    assert scores["right"]["onboard"] == scores["old"]["onboard"] == scores["no R_rect"]["onboard"]  # no pose used
    iou, miou = scores["right"]["average-fusion"]
    assert miou > scores["right"]["onboard"][1] + 5  # fusion with the right poses helps ...
    assert miou > scores["old"]["average-fusion"][1] + 5  # ... and the old lookup loses most of it
    assert miou >= scores["no R_rect"]["average-fusion"][1]


def test_occfiner_stage1_leaves_scans_without_a_pose_out_of_its_windows():
    """refine_sequence with a pose-valid mask equals refine_sequence on the sequence without those scans."""
    import torch

    from occbench_baselines.occfiner.infer import refine_sequence
    from occbench_baselines.occfiner.model import OccFinerConfig, OccFinerNet
    from occbench_baselines.occfiner.windows import WindowConfig

    torch.manual_seed(0)
    model = OccFinerNet(OccFinerConfig.small(height=8)).eval()
    rng = np.random.default_rng(0)
    N = 9
    frames = rng.integers(0, 20, (N, 32, 16, 8)).astype(np.uint8)
    poses = np.tile(np.eye(4), (N, 1, 1))
    poses[:, 0, 3] = 0.5 * np.arange(N)
    valid = np.ones(N, bool)
    valid[[3, 4]] = False
    holed = poses.copy()
    holed[~valid] = np.nan
    keep = np.flatnonzero(valid)
    asked: list[int] = []

    def read(i: int) -> np.ndarray:
        asked.append(i)
        return frames[i]

    wcfg = WindowConfig(local=4, reference=2, reference_radius=4)
    got = dict(refine_sequence(model, read, holed, N, [0, 5, 8], wcfg, progress=False, pose_valid=valid))
    ref = dict(
        refine_sequence(model, frames[keep].__getitem__, poses[keep], len(keep), [0, 3, 6], wcfg, progress=False)
    )
    assert sorted(got) == [0, 5, 8] and not {3, 4} & set(asked)
    for t, i in ((0, 0), (5, 3), (8, 6)):
        np.testing.assert_array_equal(got[t], ref[i])
    assert (
        sorted(dict(refine_sequence(model, read, holed, N, None, wcfg, progress=False, pose_valid=valid)))
        == keep.tolist()
    )
    with pytest.raises(ValueError, match="target scan 4 has no pose"):
        list(refine_sequence(model, read, holed, N, [4], wcfg, progress=False, pose_valid=valid))


def test_frame_map_option_of_the_commands(tmp_path):
    from click.testing import CliRunner

    from occbench.cli import main as cli
    from occbench.testing import make_sscbench_kitti360_tree

    drive = SPLITS["val"][0]
    root = make_sscbench_kitti360_tree(
        tmp_path / "renumbered", {drive: 11}, onboard={"noisy": 0.2}, poses_numbering="sscbench"
    )
    run = lambda *a: CliRunner().invoke(cli, [str(x) for x in a])  # noqa: E731
    common = (
        "--dataset",
        "sscbench-kitti360",
        "--root",
        root,
        "--onboard",
        "noisy",
        "--method",
        "average-fusion",
        "-O",
        "n=2",
        "--no-city",
        "--no-consistency",
        "-q",
    )
    # read through the release's map, this SSCBench-numbered file has no row for KITTI-360 frames 35, 42, ...
    r = run("evaluate", *common, "-o", tmp_path / "a.json")
    assert r.exit_code == 1 and "pose of scored frame 000000 of sequence 2013_05_28_drive_0006_sync" in r.output
    pf = root / "data_2d_raw" / drive / "cam0_to_world.txt"
    pf.write_text(
        "".join(line for line in pf.read_text().splitlines(True) if not line.startswith("7 "))
    )  # no pose: scan 7
    r = run("evaluate", *common, "--frame-map", "identity", "-o", tmp_path / "b.json")
    assert r.exit_code == 0, r.output
    import json

    h = json.loads((tmp_path / "b.json").read_text())["header"]["dataset"]["poses"]
    assert h["frame_map"] == "identity" and h["scans_without_pose"] == {drive: 1}
    assert h["calibration"]["cam_to_velo"].startswith("published")
    r = run(
        "refine",
        "--dataset",
        "sscbench-kitti360",
        "--root",
        root,
        "--onboard",
        "noisy",
        "--method",
        "average-fusion",
        "-O",
        "n=2",
        "--frame-map",
        "identity",
        "--targets",
        "all",
        "-o",
        tmp_path / "refined",
        "-q",
    )
    assert r.exit_code == 0, r.output
    written = sorted(int(f.name[:6]) for f in (tmp_path / "refined" / "sequences" / drive / "predictions").iterdir())
    assert written == [t for t in range(11) if t != 7]  # every scan with a pose
    r = run("evaluate", "--dataset", "mini", "--frame-map", "identity", "-o", tmp_path / "c.json")
    assert r.exit_code == 2 and "--frame-map applies to --dataset sscbench-kitti360" in r.output


def test_the_frame_map_and_its_notice_are_shipped():
    import fnmatch

    tomllib = pytest.importorskip("tomllib")
    from occbench.datasets.kitti360_frames import RELEASE_MAP

    repo = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["occbench"]
    for path in (RELEASE_MAP, RELEASE_MAP.parent / "NOTICE"):
        rel = path.relative_to(repo / "occbench").as_posix()
        assert path.is_file() and any(fnmatch.fnmatch(rel, p) and rel.count("/") == p.count("/") for p in patterns), rel
    notice = (RELEASE_MAP.parent / "NOTICE").read_text()
    assert "hustvl/Symphonies" in notice and "MIT License" in notice and "Permission is hereby granted" in notice


def test_fuzzed_kitti360_text_files_raise_only_occbench_errors(tmp_path):
    """Randomly damaged perspective.txt, calib_cam_to_velo.txt, frame maps (both forms) and cam0_to_world.txt: each
    reader returns or raises an occbench error naming the file, never anything else; the undamaged files are read."""
    from occbench.errors import OccbenchError
    from occbench.io.kitti360 import read_cam0_to_world_rows

    f = lambda a: " ".join(f"{x:.9g}" for x in np.asarray(a).reshape(-1))  # noqa: E731
    good = {
        "perspective": (
            f"P_rect_00: {f(K)}\nR_rect_00: {f(R_RECT_00[:3, :3])}\nS_rect_00: 1408 376\n",
            read_perspective,
        ),
        "cam_to_velo": (f(CAM2VELO[:3]) + "\n", read_cam_to_velo),
        "runs": (f"{D0} 9 14 22-25 40\n2013_05_28_drive_0003_sync 4 6-8\n", read_frame_map),
        "pairs": (EXCERPT.read_text()[:2000].rsplit("\n", 1)[0] + "\n", read_frame_map),
        "cam0_to_world": ("".join(f"{r} {f(np.eye(4))}\n" for r in (3, 4, 9, 12)), read_cam0_to_world_rows),
    }
    tokens = [
        "nan",
        "inf",
        "1e999",
        "-1",
        "0",
        "1.5",
        "9" * 30,
        "x",
        ":",
        "-",
        "5-2",
        "0000000009.png",
        "000000.png",
        "",
        "\x00",
        "\ufeff",
        "2013_05_28_drive_0000_sync",
    ]
    rng = np.random.default_rng(7)
    for name, (text, reader) in good.items():
        p = tmp_path / name
        p.write_text(text)
        reader(p)  # good input is accepted
        for _ in range(150):
            lines = text.splitlines()
            for _ in range(int(rng.integers(1, 4))):
                i = int(rng.integers(len(lines)))
                toks = lines[i].split(" ")
                op = rng.integers(4)
                if op == 0:
                    toks[int(rng.integers(len(toks)))] = str(rng.choice(tokens))
                elif op == 1:
                    lines.insert(i, lines[i])
                elif op == 2:
                    del toks[int(rng.integers(len(toks)))]
                else:
                    lines[i], lines[-1] = lines[-1], lines[i]
                if op in (0, 2):
                    lines[i] = " ".join(toks)
            p.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + b"\n")
            try:
                reader(p)
            except OccbenchError as e:
                assert str(p) in str(e)

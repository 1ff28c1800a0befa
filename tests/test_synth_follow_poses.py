"""occbench-mini ``MiniConfig(follow_poses=...)``: the ego follows the planar projection of a real trajectory."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from occbench.datasets import open_dataset
from occbench.errors import FormatError, MissingDataError
from occbench.io.kitti import read_calib, read_poses, read_times
from occbench.synth import MiniConfig, generate_mini
from occbench.synth import generate as G
from occbench.synth import world as W

SEQ08 = (
    Path(__file__).resolve().parent / "data" / "kitti-odometry" / "sequences" / "08"
)  # real files, tests/data/README.md

N = 11  # scans 0..10: frames 0, 5, 10 are labelled


def follow_config(poses: Path | str = SEQ08 / "poses.txt", scans: int = N) -> MiniConfig:
    return MiniConfig(
        seed=0,
        scans={"08": scans},
        splits={"val": ("08",)},
        follow_poses={"08": str(poses)},
        lookahead=10,
        size="follow",
    )


def real_planar(n: int) -> np.ndarray:
    """(n, 3) planar projection of the real LiDAR poses, computed here independently of the generator:
    rel_i = inv(T_0) T_i; (x, y) = its translation, yaw = atan2(R[1, 0], R[0, 0])."""
    T = read_poses(SEQ08 / "poses.txt", read_calib(SEQ08 / "calib.txt"))[:n]
    rel = np.linalg.inv(T[0]) @ T
    return np.stack([rel[:, 0, 3], rel[:, 1, 3], np.arctan2(rel[:, 1, 0], rel[:, 0, 0])], axis=1)


def wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


@pytest.fixture(scope="module")
def followed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("follow")
    G._WORLD_CACHE.clear()
    m = generate_mini(root, follow_config(), progress=False, workers=1)
    return root, m


def test_poses_file_has_one_row_per_scan(followed: tuple[Path, dict]) -> None:
    root, m = followed
    d = root / "sequences" / "08"
    assert m["scans"] == {"08": N}
    assert m["config"]["follow_poses"] == {"08": str(SEQ08 / "poses.txt")}
    rows = (d / "poses.txt").read_text().splitlines()
    assert len(rows) == N and all(len(r.split()) == 12 for r in rows)
    assert len(read_times(d / "times.txt")) == N


def test_trajectory_is_the_planar_projection_of_the_real_one(followed: tuple[Path, dict]) -> None:
    root, _ = followed
    d = root / "sequences" / "08"
    mini = read_poses(d / "poses.txt", read_calib(d / "calib.txt"))  # LiDAR poses of the written file
    real = real_planar(N)
    steps = np.linalg.norm(np.diff(real[:, :2], axis=0), axis=1)
    assert steps.min() > 0.5  # the real ego moves (7-8 m/s at the start of sequence 08)
    # same positions and headings in the frame of the first scan (x, y rounded to 1e-6 m, yaw to 1e-9 rad)
    np.testing.assert_allclose(mini[0], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(mini[:, :2, 3], real[:, :2], rtol=0, atol=2e-6)
    yaw = np.arctan2(mini[:, 1, 0], mini[:, 0, 0])
    np.testing.assert_allclose(wrap(yaw - real[:, 2]), 0, atol=1e-8)
    # hence the same step lengths and heading changes from scan to scan
    mini_steps = np.linalg.norm(np.diff(mini[:, :2, 3], axis=0), axis=1)
    np.testing.assert_allclose(mini_steps, steps, rtol=0, atol=3e-6)
    np.testing.assert_allclose(wrap(np.diff(yaw)), wrap(np.diff(real[:, 2])), rtol=0, atol=2e-8)
    # the ego's lateral motion in its own frame matches too (direction of each step, not only its length)
    for t in range(N - 1):
        rel_mini = np.linalg.inv(mini[t]) @ mini[t + 1]
        c, s = math.cos(real[t, 2]), math.sin(real[t, 2])
        dx, dy = real[t + 1, :2] - real[t, :2]
        np.testing.assert_allclose(rel_mini[:2, 3], [c * dx + s * dy, -s * dx + c * dy], atol=4e-6)
    # planar: the height, pitch and roll of the real poses are dropped
    np.testing.assert_allclose(mini[:, 2, 3], 0.0, atol=1e-9)
    np.testing.assert_allclose(mini[:, 2, 2], 1.0, atol=1e-12)
    np.testing.assert_allclose(mini[:, :2, 2], 0.0, atol=1e-12)
    # no negative zeros or other noise in the first (identity) pose as written
    assert "-0.000000000000e+00" not in (d / "poses.txt").read_text().splitlines()[0]


def test_poses_are_rigid(followed: tuple[Path, dict]) -> None:
    root, _ = followed
    d = root / "sequences" / "08"
    calib = read_calib(d / "calib.txt")
    # camera-0 poses as written are Tr T inv(Tr): rigid as far as the real Tr is (|Tr^T Tr - I| = 8e-8 for 08)
    for T, tol in ((read_poses(d / "poses.txt"), 1e-6), (read_poses(d / "poses.txt", calib), 1e-9)):
        R = T[:, :3, :3]
        np.testing.assert_allclose(np.einsum("nji,njk->nik", R, R), np.broadcast_to(np.eye(3), R.shape), atol=tol)
        np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=tol)
        np.testing.assert_array_equal(T[:, 3], np.broadcast_to([0.0, 0.0, 0.0, 1.0], (N, 4)))


def test_loads_through_the_public_loader(followed: tuple[Path, dict]) -> None:
    root, m = followed
    for model in ("voxformer-sim", "sscnet-sim"):
        ds = open_dataset("mini", root, split="val", onboard=model, generate=False)
        assert ds.sequence_names == ["08"]
        seq = ds["08"]
        assert seq.num_scans == N and seq.labelled_frames == [0, 5, 10]
        np.testing.assert_allclose(seq.poses[:, :2, 3], real_planar(N)[:, :2], atol=2e-6)
        counts = np.zeros(20, np.int64)
        for f in seq.frames():
            assert f.has_ground_truth
            gt = f.ground_truth()
            pred = f.prediction()
            assert gt.shape == pred.shape == (256, 256, 32)
            assert pred.max() < 20
            assert f.input_occupancy().any()
            counts += np.bincount(gt[gt != 255], minlength=20)[:20]
        assert counts.tolist() == m["voxel_counts"]["val"]
        assert counts[9] > 0 and counts[1] > 0  # road and cars are seen
        for t in range(N):  # predictions for every scan
            assert seq.prediction(t).shape == (256, 256, 32)


def test_deterministic(followed: tuple[Path, dict], tmp_path: Path) -> None:
    root, m = followed
    G._WORLD_CACHE.clear()  # rebuild the world from the poses file, not from this process's cache
    m2 = generate_mini(tmp_path, follow_config(), progress=False, workers=1)
    assert m2 == m

    def files(r: Path) -> dict[str, bytes]:
        return {
            p.relative_to(r).as_posix(): p.read_bytes()
            for p in sorted(r.rglob("*"))
            if p.is_file() and p.name != "timings.json"
        }

    a, b = files(root), files(tmp_path)
    assert sorted(a) == sorted(b) and len(a) > 20
    assert [k for k in a if a[k] != b[k]] == []


def test_road_goes_on_past_the_last_pose() -> None:
    """The road is drawn 80 m past the last followed pose, so it never ends inside a scan's 51.2 m grid."""
    T = read_poses(SEQ08 / "poses.txt", read_calib(SEQ08 / "calib.txt"))
    n = 12
    world = W.build_world([0, 1, 8], n, 0, T)
    plan = real_planar(400)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(plan[:, :2], axis=0), axis=1))])
    ahead = (s > s[n - 1]) & (s <= s[n - 1] + 55.0)
    assert ahead.sum() > 10
    ix = np.floor((plan[ahead, 0] - world.origin[0]) / W.CELL).astype(int)
    iy = np.floor((plan[ahead, 1] - world.origin[1]) / W.CELL).astype(int)
    assert np.isin(world.W[ix, iy, W.K_ROAD], [W.ROAD, W.LANE_MARKING]).all()
    # the route also goes on straight where the file ends, and behind the first pose
    for poses in (T[:n], np.repeat(T[:1], n, axis=0)):  # a file that ends, an ego that never moves
        route = W.route_from_poses(poses, n)
        length = float(np.linalg.norm(np.diff(W.planar_poses(poses)[:, :2], axis=0), axis=1).sum())
        assert route.length == pytest.approx(length + W.ROUTE_AHEAD + W.ROUTE_BEHIND, abs=0.11)
        W.build_world([0, 1, 8], n, 0, poses)  # a standing ego still gets a town


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_clear_errors_for_missing_or_malformed_poses(tmp_path: Path) -> None:
    calib = (SEQ08 / "calib.txt").read_text()
    real_rows = (SEQ08 / "poses.txt").read_text().splitlines()[:N]
    out = tmp_path / "out"

    missing = tmp_path / "nope" / "poses.txt"
    with pytest.raises(MissingDataError) as e:
        generate_mini(out, follow_config(missing), progress=False, workers=1)
    assert str(missing) in str(e.value) and "follow_poses['08']" in str(e.value) and "calib.txt" in str(e.value)

    no_calib = _write(tmp_path / "nocalib" / "poses.txt", "\n".join(real_rows) + "\n")
    with pytest.raises(MissingDataError) as e:
        generate_mini(out, follow_config(no_calib), progress=False, workers=1)
    assert str(no_calib.parent / "calib.txt") in str(e.value)

    def bad(name: str, rows: list[str]) -> Path:
        _write(tmp_path / name / "calib.txt", calib)
        return _write(tmp_path / name / "poses.txt", "\n".join(rows) + "\n")

    cases = {
        "eleven": ([" ".join(r.split()[:11]) for r in real_rows], "12 floats per line", "11 per line"),
        "text": (real_rows[:3] + ["a b c"] + real_rows[4:], "12 floats per line", "unparsable"),
        "short": (real_rows[:4], f"at least {N} poses (one per scan of sequence 08)", "found 4 lines"),
        "scaled": ([" ".join(str(2 * float(x)) for x in r.split()) for r in real_rows], "rigid", "non-rigid"),
    }
    for name, (rows, expected, found) in cases.items():
        p = bad(name, rows)
        with pytest.raises(FormatError) as e:
            generate_mini(out, follow_config(p), progress=False, workers=2)  # raised before any worker starts
        msg = str(e.value)
        assert str(p) in msg and expected in msg and found in msg, msg
        assert e.value.path == p
    assert not out.exists()  # nothing was written

    with pytest.raises(ValueError, match="follow_poses names sequence"):
        MiniConfig(scans={"08": N}, splits={"val": ("08",)}, follow_poses={"00": str(SEQ08 / "poses.txt")})

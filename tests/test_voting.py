"""Region-centric voting (OccFiner eqs. 7-12): reference registration, weights, windows, the exact engine (labels
identical to the reference on arbitrary poses) and the approximate lattice engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from occbench.geometry import ORIGIN, VOXEL_SIZE
from occbench.grid import KITTI
from occbench.io.kitti import Calibration, read_calib, read_poses
from occbench.registration import affine, cells
from occbench_baselines.voting import (
    ENGINES,
    LatticeVotingEngine,
    SensorWeights,
    VotingConfig,
    VotingConfigError,
    VotingEngine,
    _exact_kernels,
    _lattice_kernels,
    camera_weights,
    decide_labels,
    frustum_mask,
    lidar_weights,
    make_engine,
    vote_frame_reference,
    window,
)
from occbench_baselines.voting.synthetic import SyntheticSequence

SEQ08 = (
    Path(__file__).resolve().parent / "data" / "kitti-odometry" / "sequences" / "08"
)  # real files, tests/data/README.md
SMALL = (48, 48, 8)


def _pose(yaw_deg: float = 0.0, t: tuple[float, float, float] = (0, 0, 0)) -> np.ndarray:
    a = np.deg2rad(yaw_deg)
    T = np.eye(4)
    T[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    T[:3, 3] = t
    return T


def _toy_calib() -> Calibration:
    P2 = np.array([[500.0, 0, 600, 0], [0, 500, 180, 0], [0, 0, 1, 0]])
    Tr = np.eye(4)
    Tr[:3, :3] = [[0, -1, 0], [0, 0, -1], [1, 0, 0]]  # velo (x fwd, y left, z up) -> cam (x right, y down, z fwd)
    return Calibration(P={"P0": P2, "P1": P2, "P2": P2, "P3": P2}, Tr=Tr)


def _rand_grid(rng: np.random.Generator, shape=SMALL, occ: float = 0.2) -> np.ndarray:
    g = rng.integers(1, 20, shape).astype(np.uint8)
    g[rng.random(shape) > occ] = 0
    return g


class Frames:
    """Frame source that records which scans were requested and refuses out-of-range ones."""

    def __init__(self, grids: list[np.ndarray]):
        self.grids = grids
        self.calls: list[int] = []

    def __call__(self, i: int) -> np.ndarray:
        if not 0 <= i < len(self.grids):
            raise IndexError(i)
        self.calls.append(i)
        return self.grids[i]


BACKENDS = ["numba", "torch"]  # numba is a declared dependency: without it the numba cases fail
EXACT_BACKENDS = ["numba", "torch"]


def _engine_all(frames, poses, calib, cfg, targets, backend="auto", engine="exact", **kw):
    cls = LatticeVotingEngine if engine == "lattice" else VotingEngine
    return dict(cls(frames, poses, calib, cfg, device="cpu", backend=backend, **kw).run(targets))


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    return Rz @ Ry @ Rx


# ---------------------------------------------------------------------------- registration
def test_registration_known_pose_lands_voxel_exact():
    """Scan 1 sees the scene rotated by 90 deg yaw and shifted by whole voxels: registered into scan 0
    every occupied voxel lands exactly at the hand-computed index."""
    rng = np.random.default_rng(0)
    src = np.zeros(KITTI.shape, np.uint8)
    idx = np.c_[rng.integers(0, 256, 400), rng.integers(0, 256, 400), rng.integers(0, 32, 400)]
    src[tuple(idx.T)] = rng.integers(1, 20, 400)
    # centre (0.1 + 0.2 i, -25.5 + 0.2 j, z) rotated by +90 deg -> (25.5 - 0.2 j, 0.1 + 0.2 i, z):
    # index (127 - j, 128 + i, k)
    shift = np.array([3, -5, 2])
    T1 = _pose(90.0, tuple(0.2 * shift))
    poses = np.stack([np.eye(4), T1])
    frames = Frames([np.zeros(KITTI.shape, np.uint8), src])
    cfg = VotingConfig(n=1, empty_policy="ignore")
    out = vote_frame_reference(0, frames, poses, None, cfg)
    occ = np.argwhere(src > 0)
    tgt = np.c_[127 - occ[:, 1], 128 + occ[:, 0], occ[:, 2]] + shift
    inside = np.all((tgt >= 0) & (tgt < np.array(KITTI.shape)), axis=1)
    expected = np.zeros(KITTI.shape, np.uint8)
    expected[tuple(tgt[inside].T)] = src[tuple(occ[inside].T)]
    assert inside.sum() > 50 and (~inside).sum() > 50  # both cases exercised
    np.testing.assert_array_equal(out, expected)
    for engine in ENGINES:  # exact: always; lattice: its world lattice is scan 0's, identical here
        np.testing.assert_array_equal(
            dict(make_engine(engine, frames, poses, None, cfg, device="cpu").run([0]))[0], expected
        )


# ---------------------------------------------------------------------------- weights
def test_camera_weights_hand_computed():
    calib = _toy_calib()
    sw = SensorWeights(kind="camera", w_high=1.0, w_med=0.1, w_low=0.01, box=(25.6, 25.6, 6.4), image_size=(1220, 370))
    pts = np.array(
        [
            [10, 0, 0],  # u=600 v=180, in frustum, in box          -> high
            [10, 11, 0],  # u=50, in frustum, |y| < 12.8             -> high
            [30, 0, 0],  # in frustum, x >= 25.6                    -> med
            [40, -20, 1],  # u=850, v=167.5: in frustum, out of box   -> med
            [10, 12.5, 0],  # u=-25: out of frustum (in box)           -> low
            [10, 0, 4.0],  # v=-20: out of frustum (in box)           -> low
            [-5, 0, 0],  # behind the camera                         -> low
            [10, -13, 0],  # u=1250 >= W: out of frustum               -> low
        ],
        float,
    )
    np.testing.assert_array_equal(frustum_mask(pts, calib, (1220, 370)), [1, 1, 1, 1, 0, 0, 0, 0])
    np.testing.assert_allclose(camera_weights(pts, calib, sw), [1, 1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01])


def test_camera_frustum_real_calib_08():
    calib = read_calib(SEQ08 / "calib.txt")
    pts = np.array(
        [[20, 0, 0], [20, 10, 0], [20, 20, 0], [20, -20, 0], [-10, 0, 0], [10, 0, -1.5], [5, 0, -1.5]], float
    )
    # KITTI colour camera: horizontal half-FOV ~ atan(610 / 707) = 40.8 deg (26.6 deg in, 45 deg out);
    # vertical half-FOV ~ atan(185 / 707) = 14.7 deg below the axis (8.5 deg in, 16.7 deg out)
    np.testing.assert_array_equal(frustum_mask(pts, calib, (1220, 370)), [1, 1, 0, 0, 0, 1, 0])


def test_lidar_weights_hand_computed():
    sw = SensorWeights(kind="lidar", w_max=10.0, w_min=0.1, max_range=50.0)
    pts = np.array([[0, 0, 0], [3, 4, 0], [25, 0, 0], [0, 30, 40], [80, 0, 0]], float)
    np.testing.assert_allclose(lidar_weights(pts, sw), [10.0, 10 - 9.9 * 0.1, 10 - 9.9 * 0.5, 0.1, 0.1])


def test_weights_change_the_vote():
    """One in-frustum, in-box vote (w_high) outweighs two out-of-frustum votes (w_low); unweighted it loses."""
    calib = _toy_calib()
    shape = (64, 240, 16)
    a = np.zeros(shape, np.uint8)
    a[50, 128, 10] = 1  # x=10.1: in frustum and box of scan 0
    # scans 1 and 2 stand at world (6, -20, 0): the voxel is at (4.1, 20.1, 0.1) for them, 78 deg off their
    # camera axis (out of frustum -> w_low); whole-voxel translation, so it lands exactly
    T = _pose(0.0, (6.0, -20.0, 0.0))
    poses = np.stack([np.eye(4), T, T])
    b2 = np.zeros(shape, np.uint8)
    b2[20, 228, 10] = 13
    frames = Frames([a, b2, b2])
    none = VotingConfig(n=2, empty_policy="ignore", grid_shape=shape)
    cam = VotingConfig(n=2, empty_policy="ignore", weights=SensorWeights(kind="camera"), grid_shape=shape)
    assert vote_frame_reference(0, frames, poses, calib, none)[50, 128, 10] == 13
    assert vote_frame_reference(0, frames, poses, calib, cam)[50, 128, 10] == 1
    assert _engine_all(frames, poses, calib, cam, [0])[0][50, 128, 10] == 1


# ---------------------------------------------------------------------------- windows and policies
@pytest.mark.parametrize("engine", ["exact", "lattice"])
@pytest.mark.parametrize("policy", ["vote", "occupancy", "ignore"])
@pytest.mark.parametrize("kind", ["none", "camera", "lidar"])
def test_window_of_identical_frames_is_unchanged(policy, kind, engine):
    rng = np.random.default_rng(1)
    g = _rand_grid(rng)
    T = _pose(33.0, (5.0, -2.0, 0.3))
    poses = np.stack([T] * 5)
    frames = Frames([g] * 5)
    cfg = VotingConfig(n=3, empty_policy=policy, weights=SensorWeights(kind=kind), grid_shape=SMALL)
    for t, out in _engine_all(frames, poses, _toy_calib(), cfg, [0, 2, 4], engine=engine).items():
        np.testing.assert_array_equal(out, g)
        np.testing.assert_array_equal(vote_frame_reference(t, frames, poses, _toy_calib(), cfg), g)


def test_window_clipped_at_sequence_ends():
    assert list(window(0, 25, 4)) == [0, 1, 2, 3]
    assert list(window(3, 1, 10)) == [2, 3, 4]
    assert list(window(9, 2, 10)) == [7, 8, 9]
    with pytest.raises(VotingConfigError):
        window(10, 2, 10)
    rng = np.random.default_rng(2)
    # a single scan: nothing else votes, the prediction is returned unchanged
    g = _rand_grid(rng)
    one = Frames([g])
    for policy in ("vote", "occupancy", "ignore"):
        cfg = VotingConfig(n=25, empty_policy=policy, grid_shape=SMALL)
        np.testing.assert_array_equal(vote_frame_reference(0, one, np.eye(4)[None], None, cfg), g)
        np.testing.assert_array_equal(_engine_all(one, np.eye(4)[None], None, cfg, [0])[0], g)
    # 4 scans, n = 25: only existing scans are requested; both ends agree with the reference
    grids = [_rand_grid(rng) for _ in range(4)]
    poses = np.stack([_pose(0, (0.2 * i, 0, 0)) for i in range(4)])
    frames = Frames(grids)
    cfg = VotingConfig(n=25, grid_shape=SMALL)
    fast = _engine_all(frames, poses, None, cfg, [0, 3])
    for t in (0, 3):
        np.testing.assert_array_equal(fast[t], vote_frame_reference(t, frames, poses, None, cfg))
    assert set(frames.calls) == {0, 1, 2, 3}


def test_empty_policies_differ_as_documented():
    """Votes (empty 2, car 1.5, road 1) at one voxel: 'vote' -> empty, 'occupancy' -> car, 'ignore' -> car;
    with (empty 2, car 1): 'occupancy' -> empty, 'ignore' -> car."""

    def grid(c):
        g = np.zeros(SMALL, np.uint8)
        g[5, 5, 2] = c
        return g

    poses = np.stack([np.eye(4)] * 5)
    cases = {
        (0, 0, 1, 9, 1): {"vote": 0, "occupancy": 1, "ignore": 1},
        (0, 0, 1, 0, 0): {"vote": 0, "occupancy": 0, "ignore": 1},
    }
    for classes, expect in cases.items():
        frames = Frames([grid(c) for c in classes])
        for policy, want in expect.items():
            cfg = VotingConfig(n=4, empty_policy=policy, grid_shape=SMALL)
            assert vote_frame_reference(2, frames, poses, None, cfg)[5, 5, 2] == want, (classes, policy)
            assert _engine_all(frames, poses, None, cfg, [2])[2][5, 5, 2] == want, (classes, policy)


def test_config_validation():
    with pytest.raises(VotingConfigError):
        VotingConfig(n=-1)
    with pytest.raises(VotingConfigError):
        VotingConfig(empty_policy="maybe")  # type: ignore[arg-type]
    with pytest.raises(VotingConfigError):
        SensorWeights(kind="radar")  # type: ignore[arg-type]
    with pytest.raises(VotingConfigError):  # 1e-4 rounds to 0 at the default quantum
        vote_frame_reference(
            0,
            Frames([np.zeros(SMALL, np.uint8)]),
            np.eye(4)[None],
            None,
            VotingConfig(grid_shape=SMALL, weights=SensorWeights(kind="lidar", w_min=1e-4, max_range=1.0)),
        )
    with pytest.raises(VotingConfigError):
        list(
            VotingEngine(
                Frames([np.zeros(SMALL, np.uint8)] * 3),
                np.stack([np.eye(4)] * 3),
                None,
                VotingConfig(grid_shape=SMALL),
                device="cpu",
            ).run([2, 1])
        )


# ---------------------------------------------------------------------------- registration arithmetic
def test_eq7_centres_map_the_identity_onto_itself_corners_do_not():
    """Eq. 7 with voxel centres (ours): the identity transform puts every voxel back into its own cell. With eq. 7's
    literal corners ``o + i dv`` and the floor rule, floating-point rounding (e.g. 0.2 * 3 / 0.2 = 2.9999999999999996)
    moves 407,132 of the 2,097,152 voxels into a neighbouring cell (docs/baselines/voting.md)."""
    idx = np.stack(np.unravel_index(np.arange(int(np.prod(KITTI.shape))), KITTI.shape), axis=1)  # every voxel, C order
    np.testing.assert_array_equal(cells(*affine(np.eye(4), KITTI.shape), idx), idx)
    corners = ORIGIN + VOXEL_SIZE * idx.astype(np.float64)
    moved = np.any(np.floor((corners - ORIGIN) / VOXEL_SIZE).astype(np.int64) != idx, axis=1)
    assert int(moved.sum()) == 407_132


def test_affine_is_the_centre_transform():
    """``registration.affine`` is ``(T centre - ORIGIN) / 0.2`` in voxel units (to rounding: within 1e-9 of the
    metric computation on arbitrary poses)."""
    rng = np.random.default_rng(11)
    idx = np.c_[rng.integers(0, 256, 5000), rng.integers(0, 256, 5000), rng.integers(0, 32, 5000)]
    for _ in range(5):
        T = np.eye(4)
        T[:3, :3] = _rotation(*rng.uniform(-np.pi, np.pi, 3))
        T[:3, 3] = rng.uniform(-30, 30, 3)
        P, c = affine(T, KITTI.shape)
        q = np.stack([P[d, idx[:, 0], idx[:, 1]] + c[d, idx[:, 2]] for d in range(3)], 1)
        metric = ((ORIGIN + VOXEL_SIZE * (idx + 0.5)) @ T[:3, :3].T + T[:3, 3] - ORIGIN) / VOXEL_SIZE
        assert np.abs(q - metric).max() < 1e-9


# ---------------------------------------------------------------------------- exact engine == reference
@pytest.mark.parametrize("backend", EXACT_BACKENDS)
@pytest.mark.parametrize("kind", ["none", "camera", "lidar"])
def test_exact_equals_reference_on_arbitrary_poses(kind, backend):
    """Arbitrary rotations (any yaw, pitch and roll, some upside down, so a source column's height runs backwards in
    the target) and sub-voxel translations: for every empty policy the exact engine's labels equal the reference's
    label for label, at both sequence ends and in between, while the window slides; ``votes()`` equals the reference
    vote tensor (column 0 = empty votes)."""
    rng = np.random.default_rng({"none": 0, "camera": 1, "lidar": 2}[kind])
    shape = (40, 36, 10)
    N = 9
    poses = np.stack([np.eye(4)] * N)
    for i in range(N):
        ang = rng.uniform(-np.pi, np.pi, 3) if i % 3 else rng.uniform(-0.3, 0.3, 3)
        poses[i, :3, :3] = _rotation(*ang)
        poses[i, :3, 3] = rng.uniform(-1.5, 1.5, 3) + [2.0, 0, 0]
    frames = Frames([_rand_grid(rng, shape, 0.3) for _ in range(N)])
    calib = _toy_calib()
    for policy in ("vote", "occupancy", "ignore"):
        cfg = VotingConfig(n=2, empty_policy=policy, weights=SensorWeights(kind=kind, max_range=4.0), grid_shape=shape)
        eng = VotingEngine(frames, poses, calib, cfg, device="cpu", backend=backend)
        for t in [0, 1, 4, 7, 8]:
            ref, ref_votes = vote_frame_reference(t, frames, poses, calib, cfg, return_votes=True)
            out = eng.vote(t)
            assert (ref > 0).sum() > 100
            np.testing.assert_array_equal(out, ref, err_msg=f"{policy} t={t}")
            np.testing.assert_array_equal(eng.votes(t).numpy(), ref_votes.reshape(-1, cfg.num_classes))
            for other in ("vote", "occupancy", "ignore") if cfg.empty_votes else ("ignore",):  # re-read, other rule
                np.testing.assert_array_equal(
                    eng.vote(t, empty_policy=other), decide_labels(ref_votes.reshape(-1, 20), other).reshape(shape)
                )


@pytest.mark.parametrize("engine", ["exact", "reference"])
def test_exact_engines_request_each_scan_once_per_window_entry(engine):
    """The exact engine reads a scan once while it stays in the window (ascending targets); the reference
    engine behind the same interface re-reads the window per target but gives the same labels."""
    rng = np.random.default_rng(5)
    N = 12
    poses = np.stack([_pose(7.0 * i, (0.13 * i, 0.05 * i, 0.0)) for i in range(N)])
    frames = Frames([_rand_grid(rng, SMALL) for _ in range(N)])
    cfg = VotingConfig(n=2, grid_shape=SMALL)
    out = dict(make_engine(engine, frames, poses, None, cfg, device="cpu").run([0, 3, 4, 8, 11]))
    for t, g in out.items():
        np.testing.assert_array_equal(g, vote_frame_reference(t, Frames(frames.grids), poses, None, cfg))
    if engine == "exact":
        assert sorted(frames.calls) == sorted(set(frames.calls))  # no scan read twice
        assert frames.calls == sorted(frames.calls)  # in ascending order (stage 1 streams them)


def test_exact_engine_on_cuda_matches_cpu():
    """The CUDA path (torch backend) evaluates the same float64 additions and floors as the numba kernels."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here; benchmarks/check_voting_cuda.py compares CUDA and CPU labels on mini")
    rng = np.random.default_rng(9)
    poses = np.stack([_pose(11.0 * i, (0.37 * i, -0.11 * i, 0.02 * i)) for i in range(8)])
    frames = Frames([_rand_grid(rng, (64, 64, 16)) for _ in range(8)])
    cfg = VotingConfig(n=3, grid_shape=(64, 64, 16), weights=SensorWeights(kind="lidar"))
    a = dict(VotingEngine(frames, poses, None, cfg, device="cpu").run(range(8)))
    b = dict(VotingEngine(frames, poses, None, cfg, device="cuda").run(range(8)))
    for t in a:
        np.testing.assert_array_equal(a[t], b[t])


# ---------------------------------------------------------------------------- lattice engine (approximate)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "policy,kind", [("vote", "none"), ("occupancy", "camera"), ("ignore", "lidar"), ("vote", "camera")]
)
def test_lattice_equals_reference_on_lattice_aligned_poses(policy, kind, backend):
    """Poses that map the lattice onto itself (whole-voxel shifts, 90 deg yaws): labels identical,
    including the sliding window (targets 2, 3, 5, 9 reuse and update the running map); the votes read
    by ``votes()`` (column 0 = empty, implicit in the engine) equal the reference's vote tensor."""
    rng = np.random.default_rng(3)
    shape = (64, 64, 8)
    poses = np.stack(
        [
            _pose(90.0 * (i % 2), (0.2 * rng.integers(-3, 4), 0.2 * rng.integers(-3, 4), 0.2 * rng.integers(-1, 2)))
            for i in range(10)
        ]
    )
    frames = Frames([_rand_grid(rng, shape, 0.3) for _ in range(10)])
    cfg = VotingConfig(n=2, empty_policy=policy, weights=SensorWeights(kind=kind), grid_shape=shape)
    eng = LatticeVotingEngine(frames, poses, _toy_calib(), cfg, device="cpu", backend=backend)
    for t in [2, 3, 5, 9]:
        out = eng.vote(t)
        ref, ref_votes = vote_frame_reference(t, frames, poses, _toy_calib(), cfg, return_votes=True)
        np.testing.assert_array_equal(out, ref)
        np.testing.assert_array_equal(eng.votes(t).numpy(), ref_votes.reshape(-1, cfg.num_classes))


@pytest.mark.parametrize("backend", BACKENDS)
def test_lattice_long_slide_rebases_and_recycles(backend):
    """A car driving 1 voxel per scan on a lattice-aligned path (with 90 deg turns), one target per scan:
    the dense map box is re-based many times (``lookahead=1``) and map rows are freed and reused; every
    target equals the reference, and once the window has passed only its own scans' rows are alive."""
    rng = np.random.default_rng(7)
    shape = (24, 20, 6)
    N = 40
    poses = np.stack([_pose(90.0 * (i // 10), (0.2 * i, 0.2 * (i // 3), 0.2 * (i % 2))) for i in range(N)])
    grids = [_rand_grid(rng, shape, 0.25) for _ in range(N)]
    frames = Frames(grids)
    cfg = VotingConfig(
        n=3, empty_policy="occupancy", weights=SensorWeights(kind="lidar", max_range=3.0), grid_shape=shape
    )
    eng = LatticeVotingEngine(frames, poses, None, cfg, device="cpu", backend=backend, lookahead=1)
    eng.min_rows = 64  # small row table: dropped rows are squeezed out many times
    boxes = set()
    for t in range(N):
        np.testing.assert_array_equal(eng.vote(t), vote_frame_reference(t, grids.__getitem__, poses, None, cfg))
        boxes.add(tuple(eng._lo))
    assert len(boxes) > 5 and eng.compactions > 3  # re-based, rows squeezed
    live = eng._rows[:, 0] > 0  # rows in use: exactly those the map points to; dropped rows hold no votes
    assert int(live.sum()) == int((eng._c2r >= 0).sum())
    assert not eng._rows[~live].any() and int(eng._top[0]) <= eng._rows.shape[0]
    assert sorted(frames.calls) == list(range(N))  # each scan read once


def test_lattice_backends_agree_on_real_poses():
    """numba and torch evaluate the same float64 sums and floors: identical labels on rotated poses."""
    assert _lattice_kernels.AVAILABLE and _exact_kernels.AVAILABLE  # numba is a declared dependency
    calib = read_calib(SEQ08 / "calib.txt")
    poses = read_poses(SEQ08 / "poses.txt", calib)[1000:1012]
    shape = (96, 96, 16)
    seq = SyntheticSequence(poses, seed=2, shape=shape)
    grids = [seq.noisy(i) for i in range(len(poses))]
    for policy, kind in (("vote", "camera"), ("ignore", "none")):
        cfg = VotingConfig(n=3, empty_policy=policy, weights=SensorWeights(kind=kind), grid_shape=shape)
        a = _engine_all(grids.__getitem__, poses, calib, cfg, [2, 6, 11], backend="numba", engine="lattice")
        b = _engine_all(grids.__getitem__, poses, calib, cfg, [2, 6, 11], backend="torch", engine="lattice")
        for t in a:
            np.testing.assert_array_equal(a[t], b[t])

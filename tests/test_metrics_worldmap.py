"""The world map state behind the city map and temporal consistency: exact against a brute-force oracle,
whatever the tiles, seals, spills, plans, job splits, merges and pickling."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from occbench.grid import Grid
from occbench.io.kitti import read_calib, read_poses
from occbench.metrics import PROTOCOLS, CityMapMetric, FrameArrays, TemporalConsistency
from occbench.metrics.citymap import city_scores, consistency_scores, world_keys
from occbench.metrics.testing import synthetic_frame
from occbench.metrics.worldmap import WorldMapState, _Pool

DATA = Path(__file__).resolve().parent / "data" / "kitti-odometry" / "sequences"
PROTO = PROTOCOLS["semantickitti-ssc"]


def oracle(frames, proto=PROTO, voxel_size=0.2):
    """City confusion, consistency sums and per-voxel maps by brute force: every evaluated frame voxel's world key
    (``world_keys``), then per world voxel histograms by ``np.unique`` + ``np.add.at``."""
    S, C = len(proto.static_ids), proto.num_classes
    cat = np.zeros(256, np.int64)
    cat[list(proto.static_ids)] = np.arange(1, S + 1)
    keys, refs, labs = [], [], []
    for pred, gt, inv, pose in frames:
        valid = gt != 255
        if inv is not None:
            i = inv.copy() if proto.invalid_policy == "mask-all" else inv & (gt == 0)
            valid &= ~i
        idx = np.flatnonzero(valid)
        keys.append(world_keys(idx, pose, voxel_size, proto.grid) >> np.uint64(8))
        refs.append(cat[gt.reshape(-1)[idx]])
        labs.append(pred.reshape(-1)[idx].astype(np.int64))
    k, r, lab = np.concatenate(keys), np.concatenate(refs), np.concatenate(labs)
    vox, inv_idx = np.unique(k, return_inverse=True)
    hr = np.zeros((vox.size, S + 1), np.int64)
    hl = np.zeros((vox.size, C), np.int64)
    np.add.at(hr, (inv_idx, r), 1)
    np.add.at(hl, (inv_idx, lab), 1)
    pc = np.zeros((vox.size, S + 1), np.int64)
    np.add.at(pc, (np.repeat(np.arange(vox.size), C), np.tile(cat[:C], vox.size)), hl.reshape(-1))
    g, p = hr.argmax(1), pc.argmax(1)
    conf = np.bincount(p * (S + 1) + g, minlength=(S + 1) ** 2)
    n = hl.sum(1)
    keep = (g > 0) & (n >= 2)
    same = (hl * (hl - 1)).sum(1)
    mx = hl.max(1)
    psame = np.bincount(g[keep], weights=same[keep], minlength=S + 1).astype(np.int64)
    pall = np.bincount(g[keep], weights=(n * (n - 1))[keep], minlength=S + 1).astype(np.int64)
    scal = np.array([mx[keep].sum(), n[keep].sum(), keep.sum(), (mx == n)[keep].sum()], np.int64)
    return {"conf": conf, "psame": psame, "pall": pall, "scal": scal, "keys": vox, "g": g, "p": p}


def rotated_pose(t: int) -> np.ndarray:
    a, b = 0.37 * t, 0.2 * t
    Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    Rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    T = np.eye(4)
    T[:3, :3] = Rz @ Rx
    T[:3, 3] = (3.1 * t, -1.7 * t, 0.5 * t)
    return T


def kitti_poses(seq: str) -> np.ndarray:
    d = DATA / seq
    return read_poses(d / "poses.txt", read_calib(d / "calib.txt"))


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(7)
    return [(*synthetic_frame(rng), rotated_pose(t)) for t in range(4)]


def _state(frames, plan=False, mine=None, **kw):
    st = WorldMapState(PROTO, **kw)
    if plan:
        st.expect(np.stack([f[3] for f in frames]), mine)
    for i, (p, g, inv, T) in enumerate(frames):
        if mine is None or i in mine:
            assert st.add(p, g, T, inv) == 0
    return st


def _same(got, want, maps=False):
    for k in ("conf", "psame", "pall", "scal"):
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    if maps:
        np.testing.assert_array_equal(got["keys"], want["keys"].astype(np.uint64))
        np.testing.assert_array_equal(got["g"], want["g"])
        np.testing.assert_array_equal(got["p"], want["p"])


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"keep_frames": 0},
        {"spill_bytes": 1},
        {"keep_frames": 0, "spill_bytes": 50_000},
        {"background": True},
        {"background": True, "keep_frames": 0, "spill_bytes": 1},
    ],
)
def test_equals_brute_force_oracle_maps_included(frames, options):
    want = oracle(frames)
    _same(_state(frames, **options).reduce(want_maps=True), want, maps=True)


def test_planned_and_split_states_merge_to_the_oracle_in_any_order_and_through_pickle(frames, tmp_path):
    want = oracle(frames)
    planned = _state(frames, plan=True)
    assert planned.finalised_early > 0
    _same(planned.reduce(), want)
    with pytest.raises(ValueError, match="finalised early"):
        planned.reduce(want_maps=True)
    parts = [_state(frames, plan=True, mine=m, spill_dir=tmp_path, spill_bytes=1) for m in ([0, 2], [1], [3])]
    assert all(p.flush().spilled_bytes > 0 for p in parts)
    moved = [pickle.loads(pickle.dumps(p)) for p in parts]  # records in the caller's folder travel as file references
    for order in ((0, 1, 2), (2, 0, 1)):
        total = WorldMapState(PROTO)
        for i in order:
            total.merge(pickle.loads(pickle.dumps(moved[i])))
        _same(total.reduce(), want)
    own = _state(frames, plan=True, mine=[0, 1], spill_bytes=1)  # its own temporary folder: pickled by value
    other = _state(frames, plan=True, mine=[2, 3])
    _same(pickle.loads(pickle.dumps(own)).merge(other).reduce(), want)


def test_settle_removes_the_files_it_replaces_unless_referred_to_from_elsewhere(frames, tmp_path):
    """Settling reads every partition for the last time, so the files the state spilled to are removed as it goes
    (the folder is not left to free them all at the end). Records pickled (as file references) or merged into
    another state before keep theirs: both still reduce to the oracle."""
    want = oracle(frames)
    mines = ([0, 2], [1], [3])
    parts = [_state(frames, plan=True, mine=m, spill_dir=tmp_path, spill_bytes=1) for m in mines]
    assert all(p.flush().spilled_bytes > 0 for p in parts)
    written = {p.name for p in tmp_path.iterdir()}
    settled = [p.settle() for p in parts]
    assert not written & {p.name for p in tmp_path.iterdir()}
    total = WorldMapState(PROTO)
    for s in settled:
        total.merge(s)
    _same(total.reduce(), want)

    sub = tmp_path / "kept"
    sub.mkdir()
    parts = [_state(frames, plan=True, mine=m, spill_dir=sub, spill_bytes=1) for m in mines]
    moved = pickle.loads(pickle.dumps(parts[0]))  # refers to parts[0]'s files
    into = WorldMapState(PROTO).merge(parts[1])  # holds parts[1]'s batches, files included
    for p in parts:
        p.settle()
    _same(moved.merge(into).merge(parts[2]).reduce(), want)


def test_states_planned_alike_compute_the_footprints_once(frames):
    """Jobs planned with the same poses and grid share one computation of the plan's footprints (the same
    arrays); another voxel size or another set of poses gets its own, equal to a computation from scratch."""
    import occbench.metrics.worldmap as wm

    poses = np.stack([f[3] for f in frames])
    a = WorldMapState(PROTO).expect(poses, [0, 1])
    b = WorldMapState(PROTO).expect(poses, [2, 3])
    assert a._plan.sup_keys is b._plan.sup_keys and a._plan.frame_sups is b._plan.frame_sups
    assert a._plan.rem is not b._plan.rem and a._plan.rem.sum() + b._plan.rem.sum() == sum(
        s.size for s in a._plan.frame_sups
    )
    c = WorldMapState(PROTO, voxel_size=0.4).expect(poses)
    assert c._plan.sup_keys is not a._plan.sup_keys
    wm._FOOTPRINTS.clear()
    fresh = WorldMapState(PROTO).expect(poses[:3])
    wm._FOOTPRINTS.clear()
    again = WorldMapState(PROTO).expect(poses[:3])
    assert fresh._plan.sup_keys is not again._plan.sup_keys
    np.testing.assert_array_equal(fresh._plan.sup_keys, again._plan.sup_keys)
    assert all(np.array_equal(x, y) for x, y in zip(fresh._plan.frame_sups, again._plan.frame_sups))


def test_background_counting_merges_and_pickles_to_the_oracle_and_reports_uncounted_voxels(frames):
    want = oracle(frames)
    parts = [_state(frames, plan=True, mine=m, background=True, spill_bytes=1) for m in ([0, 2], [1, 3])]
    moved = [pickle.loads(pickle.dumps(p)) for p in parts]  # pickling waits for the frame still being counted
    _same(moved[0].merge(moved[1]).reduce(), want)
    p, g, inv, T = frames[0]
    bad = g.copy()
    evaluated = np.flatnonzero((g != 255) & ~inv)[:5]
    bad.reshape(-1)[evaluated] = PROTO.num_classes + 3  # a malformed ground truth: not counted
    fg, bg = WorldMapState(PROTO), WorldMapState(PROTO, background=True)
    assert fg.add(p, bad, T, inv) == 5 and fg.uncounted == 5
    assert bg.add(p, bad, T, inv) == 0  # counted on the state's thread: known once it is done
    assert bg.flush().uncounted == 5
    _same(bg.reduce(), fg.reduce())


def test_merge_refuses_states_planned_for_other_frames(frames):
    a = _state(frames[:2], plan=True)
    with pytest.raises(ValueError, match="planned for different frames"):
        a.merge(_state(frames[2:], plan=True))
    with pytest.raises(ValueError, match="planned for different frames"):
        a.merge(_state(frames[2:]))
    b = _state(frames, plan=True, mine=[0])
    with pytest.raises(ValueError, match="same planned frames"):
        b.merge(_state(frames, plan=True, mine=[0, 1]))
    with pytest.raises(ValueError, match="not among the frames"):
        _state(frames[:2], plan=True).add(*frames[3][:2], frames[3][3], frames[3][2])


def test_small_pools_table_conflicts_and_count_overflow_guard():
    """Pools that must grow, two tiles wanting one table slot (frames 204.8 m apart: the table wraps every
    512 voxels), and tiles sealed before their counts could overflow (standing still; no rotation and whole-voxel
    steps: a voxel takes one observation a frame, ``_max_obs`` 1)."""
    rng = np.random.default_rng(3)
    base = synthetic_frame(rng)
    poses = []
    for t in range(6):
        T = np.eye(4)
        T[:3, 3] = (204.8 * (t % 2), 0.4 * t, 0.0)  # alternating: every tile of one frame collides with the other's
        poses.append(T)
    poses += [poses[-1]] * 4  # standing still
    frames = [(*base, T) for T in poses]
    st = WorldMapState(PROTO, keep_frames=100)
    st._pool = _Pool(tiles=16, chunks=1)
    st._max_frames, st._max_obs = 2, 1
    for p, g, inv, T in frames:
        st.add(p, g, T, inv)
    assert st.record_bytes > 0
    _same(st.reduce(want_maps=True), oracle(frames), maps=True)


def test_a_tile_at_its_frame_budget_is_rebased_on_its_counts_and_sealed_only_near_the_uint8_limit():
    """Counts are uint8, and a frame adds at most ``_max_obs`` (8 on KITTI's grid) to one: a tile touched by
    ``_max_frames`` (31) frames could overflow with one more. It is not sealed then: its frame budget is re-based on
    its largest count, so a tile whose counts are small lives on; one whose counts are near 255 is sealed before the
    frame is counted, never wrapped around. Standing still at the identity pose (one observation a frame)."""
    rng = np.random.default_rng(12)
    base = synthetic_frame(rng)
    p, g, inv = base
    T = np.eye(4)
    st = WorldMapState(PROTO, keep_frames=100)
    assert st._max_frames == 255 // st._max_obs and st._pool is None
    st.add(p, g, T, inv)
    pool = st._pool
    live = np.flatnonzero(pool.t_key >= 0)
    assert pool.t_n.dtype == np.uint8 and pool.t_n[live].max() == 1
    seen = pool.t_n[live].max(axis=1) > 0  # (tiles of the footprint the frame saw no voxel of have counts of 0)
    pool.t_frames[live] = st._max_frames  # at the budget, with counts of 1 (or 0): re-based, not sealed
    st.add(p, g, T, inv)
    assert st.record_bytes == 0 and (pool.t_key[live] >= 0).all()
    assert (pool.t_frames[live] == np.where(seen, 2, 1)).all()  # ceil(max / 8) frames' worth, plus this frame
    _same(st.reduce(want_maps=True), oracle([(p, g, inv, T)] * 2), maps=True)

    st = WorldMapState(PROTO, keep_frames=100)
    st.add(p, g, T, inv)
    pool = st._pool
    ti = int(np.flatnonzero((pool.t_key >= 0) & (pool.t_n.max(axis=1) > 0))[0])
    key = int(pool.t_key[ti])
    seen = pool.t_n[ti] > 0
    pool.t_n[ti, seen] = 248  # 31 frames' worth: one more frame of up to 8 could pass 255
    pool.t_frames[ti] = st._max_frames
    st.add(p, g, T, inv)
    assert st.record_bytes > 0  # sealed with its 248s before the frame was counted
    now = np.flatnonzero(pool.t_key == key)
    assert now.size == 1 and pool.t_n[now[0]][seen].max() == 1  # live again, counting afresh: no wrap-around


@pytest.mark.parametrize(
    "voxel_size, counts, max_frames", [(0.2, np.uint8, 31), (0.4, np.uint16, 1023), (0.8, np.uint16, 191)]
)
def test_live_counts_are_uint16_where_a_world_voxel_takes_more_than_8_observations_a_frame(
    voxel_size, counts, max_frames
):
    """World voxels of 0.4 m take up to 64 frame voxels of 0.2 m a frame, 0.8 m up to 343: more than a uint8 holds
    after a few frames, or after one. Their live counts are uint16 (the frame budget 65,535 // the bound), and the
    result is the oracle's."""
    rng = np.random.default_rng(13)
    frames = [(*synthetic_frame(rng), rotated_pose(t)) for t in range(3)]
    st = WorldMapState(PROTO, voxel_size, keep_frames=0)
    for p, g, inv, T in frames:
        st.add(p, g, T, inv)
    assert st._pool.t_n.dtype == counts and st._max_frames == max_frames
    _same(st.reduce(want_maps=True), oracle(frames, voxel_size=voxel_size), maps=True)


def _at(x: float) -> np.ndarray:
    """A LiDAR pose ``x`` metres along the world's x axis, not rotated."""
    T = np.eye(4)
    T[:3, 3] = (x, 0.0, 0.0)
    return T


def _cap_prepare(monkeypatch, bound: int) -> list[tuple[int, int]]:
    """Record what ``prepare`` answers (status, tiles listed) from now on; its call number ``bound + 1`` fails the
    test, so that a loop fails instead of hanging."""
    import occbench.metrics._worldkernels as K

    seen: list[tuple[int, int]] = []
    prepare = K.prepare

    def capped(*a):
        if len(seen) >= bound:
            raise AssertionError(f"prepare called more than {bound} times: {seen[-5:]}")
        out = prepare(*a)
        seen.append((int(out[0]), int(out[1])))
        return out

    monkeypatch.setattr(K, "prepare", capped)
    return seen


@pytest.mark.parametrize("listed", [1, 7, 4096])
def test_count_overflow_guard_holds_when_more_tiles_reach_it_than_one_call_lists(listed):
    """Standing still: every tile of the frame reaches the frame limit at once, more of them than prepare lists in
    one call (``listed``); the others are listed by the calls after, so no live tile is ever counted for more than
    ``_max_frames`` frames (the bound that keeps its counts from overflowing: ``_max_obs`` 1, a voxel takes one
    observation a frame at the identity pose), and the result is the oracle's."""
    rng = np.random.default_rng(4)
    base = synthetic_frame(rng)
    frames = [(*base, np.eye(4))] * 7
    st = WorldMapState(PROTO, keep_frames=100)
    st._conflicts_listed = listed
    st._max_frames, st._max_obs = 3, 1
    for p, g, inv, T in frames:
        st.add(p, g, T, inv)
        pool = st._pool
        live = pool.t_key >= 0
        assert live.any() and pool.t_frames[live].max() <= st._max_frames
        assert (pool.t_n[live].max(axis=1) <= pool.t_frames[live] * st._max_obs).all()
    assert st.record_bytes > 0
    _same(st.reduce(want_maps=True), oracle(frames), maps=True)


def test_tiles_listed_as_conflicts_when_the_pool_runs_out_are_sealed_not_lost(monkeypatch):
    """A frame whose first tiles collide with live tiles (64 m back: part of the table's 102.4 m period) and whose
    other tiles then need more tiles than the pool has free: the tiles listed before the pool ran out are sealed
    (once listed, prepare does not list them again; left live, their slots stayed taken and prepare answered
    "conflict" with nothing listed, for ever). The prepare calls are capped so that a regression fails."""
    import occbench.metrics._worldkernels as K

    rng = np.random.default_rng(5)
    base = synthetic_frame(rng)
    frames = [(*base, _at(x)) for x in (0.0, -64.0, -128.0)]
    seen = _cap_prepare(monkeypatch, 200)
    st = WorldMapState(PROTO, keep_frames=100)
    for p, g, inv, T in frames:
        st.add(p, g, T, inv)
    assert any(status == K.NEED_TILES and n > 0 for status, n in seen), seen  # the case this test is about
    _same(st.reduce(want_maps=True), oracle(frames), maps=True)


def test_a_pose_out_of_range_after_tiles_were_listed_leaves_a_usable_state(monkeypatch):
    """A frame whose near tiles collide with live ones (102.4 m back: the table's period) and whose far tiles leave
    the key's range (209.7 km from the origin) is refused; the tiles listed before that are sealed, so the next
    frames are counted (prepare calls capped) and the result is the oracle's for the frames that were added."""
    import occbench.metrics._worldkernels as K
    from occbench.errors import FormatError

    rng = np.random.default_rng(6)
    base = synthetic_frame(rng)
    edge = K.OFFSETS[0] * 0.2  # world x where the key's range ends
    _cap_prepare(monkeypatch, 100)
    st = WorldMapState(PROTO, keep_frames=100)
    st.add(*base[:2], _at(edge - 30.0 - 102.4), base[2])
    with pytest.raises(FormatError, match="too far from the origin"):
        st.add(*base[:2], _at(edge - 30.0), base[2])
    st.add(*base[:2], _at(edge - 30.0 - 102.4 + 51.2), base[2])
    kept = [(*base, _at(edge - 30.0 - 102.4)), (*base, _at(edge - 30.0 - 102.4 + 51.2))]
    _same(st.reduce(want_maps=True), oracle(kept), maps=True)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_random_drives_with_jumps_and_stops_equal_the_oracle_under_any_pool_limits(seed, monkeypatch):
    """Random drives (steps, turns, stops, jumps of up to 300 m, returns to the start), a random ``keep_frames``,
    a small pool, list and frame limit, planned or not: the counts are the brute-force oracle's, and no call loops
    (prepare is called a bounded number of times)."""
    rng = np.random.default_rng(seed)
    base = [synthetic_frame(rng) for _ in range(2)]
    poses, pos, yaw = [], np.zeros(3), 0.0
    for _ in range(6):
        move = rng.integers(4)
        if move == 0:  # a step forward, turning
            yaw += rng.normal(0, 0.3)
            pos = pos + rng.uniform(2, 15) * np.array([np.cos(yaw), np.sin(yaw), 0.0])
        elif move == 2:  # a jump
            pos = pos + rng.uniform(-300, 300, 3) * np.array([1, 1, 0.01])
        elif move == 3:  # back to the start
            pos = np.zeros(3)
        T = np.eye(4)
        T[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
        T[:3, 3] = pos
        poses.append(T)
    frames = [(*base[i % 2], T) for i, T in enumerate(poses)]
    st = WorldMapState(PROTO, keep_frames=int(rng.choice([0, 2, 5, 100])))
    st._pool = _Pool(tiles=int(rng.integers(1, 3000)), chunks=1)
    st._conflicts_listed = int(rng.integers(20, 300))
    st._max_frames, st._max_obs = int(rng.integers(1, 4)), int(rng.integers(1, 9))
    planned = seed % 2 == 1  # a planned state finalises tiles early: no per-voxel maps
    if planned:
        st.expect(np.stack(poses))
    _cap_prepare(monkeypatch, len(frames) * (6000 // st._conflicts_listed + 30))  # tiles a frame / listed, growth
    for p, g, inv, T in frames:
        st.add(p, g, T, inv)
    _same(st.reduce(want_maps=not planned), oracle(frames), maps=not planned)


def test_both_protocols_and_no_ground_truth_reference():
    rng = np.random.default_rng(11)
    p360 = PROTOCOLS["sscbench-kitti360-ssc"]
    frames = [(*synthetic_frame(rng, num_classes=19), rotated_pose(t)) for t in range(3)]
    st = WorldMapState(p360, keep_frames=0)
    for p, g, inv, T in frames:
        st.add(p, g, T, inv)
    _same(st.reduce(), oracle(frames, p360))  # mask-empty-only: invalid drops only empty ground truth
    tc = TemporalConsistency(p360)
    for p, g, inv, T in frames:
        tc.update_frame(p, FrameArrays(None, pose=T))
    want = oracle([(p, p, None, T) for p, _, _, T in frames], p360)  # reference = the prediction's category
    got = tc.compute()
    assert got == consistency_scores(want["psame"], want["pall"], want["scal"], p360, 3, False)
    assert got["reference"] == "prediction majority" and got["n_static_voxels"] > 1000


def test_kitti00_loop_closure_two_planned_jobs_equal_one_state():
    """Real poses of KITTI 00 around its first loop closure (scans 0-180 and 4480-4540 see the same street):
    two planned jobs, merged, equal the oracle; the tiles seen on both visits are not finalised early."""
    poses = kitti_poses("00")
    scans = list(range(0, 181, 30)) + list(range(4480, 4541, 20))
    rng = np.random.default_rng(5)
    frames = [(*synthetic_frame(rng), poses[s]) for s in scans]
    want = oracle(frames)
    first, second = list(range(7)), list(range(7, len(frames)))
    a = _state(frames, plan=True, mine=first, keep_frames=0)
    b = _state(frames, plan=True, mine=second, keep_frames=0)
    assert a.settle().record_bytes > 0 and b.settle().record_bytes > 0  # the street both jobs see is handed over
    _same(a.merge(b).reduce(), want)
    whole = _state(frames, plan=True, keep_frames=0)  # one state seeing both visits parks the street, then settles it
    assert whole.flush().record_bytes > 0 and whole.settle().record_bytes == 0
    _same(whole.reduce(), want)
    c = CityMapMetric().expect(np.stack([f[3] for f in frames]))
    for p, g, inv, T in frames:
        c.update_frame(p, FrameArrays(g, inv, pose=T))
    assert c.compute() == city_scores(want["conf"].reshape(12, 12), PROTO, len(frames))


def test_a_state_unpickled_with_read_only_arrays_still_merges():
    """Ray's object store hands back numpy arrays read-only (zero-copy); such a state must still merge."""
    import pickle

    from occbench.metrics.worldmap import WorldMapState

    rng = np.random.default_rng(0)
    poses = np.repeat(np.eye(4)[None], 2, axis=0)
    poses[1, 0, 3] = 0.4
    states = []
    for i in range(2):
        s = WorldMapState().expect(poses, [i])
        gt = rng.integers(0, 20, (256, 256, 32), dtype=np.uint8)
        s.add(gt, gt, poses[i])
        states.append(s)
    whole = pickle.loads(pickle.dumps(states[0]))
    whole.merge(pickle.loads(pickle.dumps(states[1])))
    frozen = [pickle.loads(pickle.dumps(s)) for s in states]
    for s in frozen:
        for k in ("conf", "psame", "pall", "scal"):
            getattr(s, k).flags.writeable = False
        s._recorded.slots.flags.writeable = False
        s.__setstate__(dict(s.__dict__))
    a, b = frozen
    a.merge(b)
    assert all(np.array_equal(a.reduce()[k], whole.reduce()[k]) for k in ("conf", "psame", "pall", "scal"))


OCC = Grid(
    name="occ3d-like", shape=(200, 200, 16), voxel_size=0.4, origin=(-40.0, -40.0, -1.0), ranges=(51.2,), crop="around"
)


def test_world_keys_of_another_grid_are_the_floored_world_centres():
    """``world_keys`` on a 200 x 200 x 16 grid of 0.4 m against the voxel centres moved by numpy directly (where the
    two float orders cannot round to different voxels)."""
    rng = np.random.default_rng(5)
    idx = rng.choice(OCC.num_voxels, 20000, replace=False)
    ijk = np.stack(np.unravel_index(idx, OCC.shape), 1)
    for t in (1, 2, 3):
        T = rotated_pose(t)
        world = (np.asarray(OCC.origin) + OCC.voxel_size * (ijk + 0.5)) @ T[:3, :3].T + T[:3, 3]
        want = world / 0.25
        far = (np.abs(want - np.round(want)) > 1e-6).all(1)
        got = world_keys(idx, T, 0.25, OCC) >> np.uint64(8)
        z = (got & np.uint64((1 << 14) - 1)).astype(np.int64) - (1 << 13)
        y = ((got >> np.uint64(14)) & np.uint64((1 << 21) - 1)).astype(np.int64) - (1 << 20)
        x = (got >> np.uint64(35)).astype(np.int64) - (1 << 20)
        assert far.mean() > 0.99
        np.testing.assert_array_equal(np.stack([x, y, z], 1)[far], np.floor(want[far]).astype(np.int64))


@pytest.mark.parametrize("voxel_size", [None, 0.2])
@pytest.mark.parametrize("packed", [False, True])
def test_another_grid_equals_the_oracle(voxel_size, packed):
    """The world map of frames of the protocol's own grid (200 x 200 x 16 of 0.4 m, ``mask-empty-only``), planned
    in two jobs and merged, or unplanned; world voxels of 0.4 m (the grid's) and 0.2 m (a wider tile table)."""
    import dataclasses

    proto = dataclasses.replace(PROTOCOLS["sscbench-kitti360-ssc"], grid=OCC, ranges=(51.2,))
    rng = np.random.default_rng(3)
    frames = []
    for t in range(4):
        p, g, inv = synthetic_frame(rng, num_classes=19)
        frames.append((*(np.ascontiguousarray(a[28:228, 28:228, 4:20]) for a in (p, g, inv)), rotated_pose(t)))
    vs = 0.4 if voxel_size is None else voxel_size
    want = oracle(frames, proto, vs)

    def add(st, i):
        p, g, inv, T = frames[i]
        assert st.add(p, g, T, np.packbits(inv) if packed else inv) == 0

    st = WorldMapState(proto, voxel_size, keep_frames=0, spill_bytes=1)
    assert st.voxel_size == vs
    for i in range(4):
        add(st, i)
    _same(st.reduce(want_maps=True), want, maps=True)
    poses = np.stack([f[3] for f in frames])
    jobs = [WorldMapState(proto, voxel_size).expect(poses, m) for m in ([0, 1], [2, 3])]
    for j, m in zip(jobs, ([0, 1], [2, 3])):
        for i in m:
            add(j, i)
    _same(jobs[0].settle().merge(pickle.loads(pickle.dumps(jobs[1].settle()))).reduce(), want)
    with pytest.raises(Exception, match=r"\(200, 200, 16\)"):
        st.add(np.zeros((256, 256, 32), np.uint8), None, poses[0])  # a KITTI-sized frame


def test_rows_wider_than_a_column_mask_equal_the_oracle():
    """A protocol whose histogram rows (static categories + labels) have more than 64 columns: columns 64 apart
    share a bit of a tile's column mask, so its reduction visits a superset of the columns its log touched;
    unplanned with every tile sealed, and planned in two jobs, the counts and maps are the oracle's."""
    import dataclasses

    names = PROTO.class_names + tuple(f"extra-{i}" for i in range(20, 60))
    proto = dataclasses.replace(
        PROTO,
        id="wide",
        num_classes=60,
        class_names=names,
        miou_classes=tuple(range(1, 60)),
        static_classes=PROTO.static_classes + ("extra-41", "extra-55"),
    )
    assert 64 < len(proto.static_ids) + proto.num_classes - 1 <= 126
    rng = np.random.default_rng(5)
    frames = []
    for t in range(4):
        p, g, inv = synthetic_frame(rng)
        p = np.where(rng.random(p.shape) < 0.2, rng.integers(20, 60, p.shape), p).astype(np.uint8)
        moved = (g != 255) & (g != 0) & (rng.random(g.shape) < 0.2)
        g = np.where(moved, rng.choice(np.array([30, 41, 55]), g.shape), g).astype(np.uint8)
        frames.append((p, g, inv, rotated_pose(t)))
    want = oracle(frames, proto)
    S = len(proto.static_ids)
    assert np.isin(want["g"], [S - 1, S]).any() and np.isin(want["p"], [S - 1, S]).any()  # the extra categories
    st = WorldMapState(proto, keep_frames=0, spill_bytes=1)
    for p, g, inv, T in frames:
        assert st.add(p, g, T, inv) == 0
    _same(st.reduce(want_maps=True), want, maps=True)
    poses = np.stack([f[3] for f in frames])
    jobs = [WorldMapState(proto).expect(poses, m) for m in ([0, 1], [2, 3])]
    for j, m in zip(jobs, ([0, 1], [2, 3])):
        for i in m:
            p, g, inv, T = frames[i]
            assert j.add(p, g, T, inv) == 0
    _same(jobs[0].settle().merge(jobs[1].settle()).reduce(), want)


@pytest.mark.parametrize("threads", [1, 3])
def test_partitions_reduced_on_any_number_of_threads_give_the_oracle(frames, monkeypatch, threads):
    """``reduce`` and ``settle`` reduce the partitions on ``REDUCE_THREADS`` threads, each into sums of its own."""
    import occbench.metrics.worldmap as wm

    monkeypatch.setattr(wm, "REDUCE_THREADS", threads)
    want = oracle(frames)
    _same(_state(frames, spill_bytes=1).reduce(want_maps=True), want, maps=True)
    parts = [_state(frames, plan=True, mine=m, spill_bytes=1).settle() for m in ([0, 2], [1, 3])]
    _same(parts[0].merge(parts[1]).reduce(), want)


def test_each_partition_adds_every_threads_sums_returns_in_partition_order_and_raises_a_helpers_error():
    from occbench.metrics.worldmap import PARTITIONS, _each_partition

    sums = {"a": np.zeros(2, np.int64)}

    def work(p, into):
        into["a"] += [1, p]
        return p * p

    assert _each_partition(work, sums, threads=3) == [p * p for p in range(PARTITIONS)]
    assert sums["a"].tolist() == [PARTITIONS, sum(range(PARTITIONS))]

    def fails(p, into):
        if p == PARTITIONS - 1:
            raise OSError("spill file gone")
        return p

    with pytest.raises(OSError, match="spill file gone"):
        _each_partition(fails, {"a": np.zeros(1, np.int64)}, threads=2)


def _records_of(rec, p):
    """Partition ``p``'s records as a sorted list of (key, entries) pairs (order within a partition is not kept)."""
    b = rec.partition(p)
    off = np.concatenate(([0], np.cumsum(b.ne)))
    return sorted((int(k), tuple(b.ent[off[i] : off[i + 1]].tolist())) for i, k in enumerate(b.keys))


@pytest.mark.parametrize("spill_bytes", [1 << 30, 3000, 1])
def test_records_copied_spilled_in_pieces_and_handed_over_keep_every_record(spill_bytes, tmp_path, monkeypatch):
    """Sealed batches (``borrowed``: the caller writes over its arrays afterwards), batches handed over as they are
    and another state's records (``extend``) are split by partition and spilled (in pieces: a tiny piece size here).
    Every record comes back, whatever was in memory or on disk, and whatever the other state does next."""
    import occbench.metrics.worldmap as wm

    monkeypatch.setattr(wm, "_WRITE_BYTES", 40)  # pieces of 40 bytes: ragged tails exercised
    rng = np.random.default_rng(7)
    want: dict[int, list] = {p: [] for p in range(wm.PARTITIONS)}

    def batch(n):  # in partition order, as seals come (any other order is copied in that order first)
        keys = rng.integers(0, 1 << 40, n).astype(np.int64)
        keys = keys[np.argsort(wm._partition(keys), kind="stable")]
        ne = rng.integers(1, 6, n).astype(np.int32)
        ent = rng.integers(0, 1 << 32, int(ne.sum()), dtype=np.uint64).astype(np.uint32)
        off = np.concatenate(([0], np.cumsum(ne)))
        for i, (k, p) in enumerate(zip(keys, wm._partition(keys))):
            want[int(p)].append((int(k), tuple(ent[off[i] : off[i + 1]].tolist())))
        return wm._Batch(keys, ne, ent)

    rec = wm._Records(4, spill_bytes, wm._SpillDir(str(tmp_path)))
    for i in range(12):
        b = batch(int(rng.integers(1, 60)))
        rec.add(b, borrowed=(i % 3 != 0))
        if i % 3 != 0:  # a borrowed batch's arrays are written over by the caller: its records were copied
            for a in (b.keys, b.ne, b.ent):
                a[...] = 0
    other = wm._Records(4, 1 << 30, wm._SpillDir(str(tmp_path)))
    first = batch(40)
    other.add(first, borrowed=True)
    rec.extend(other)
    other.spill()
    other.add(wm._Batch(first.keys.copy(), np.ones(40, np.int32), np.ones(40, np.uint32)), borrowed=True)
    got_spilled = rec.spilled_bytes
    assert (got_spilled > 0) == (spill_bytes < 1 << 30)
    for p in range(wm.PARTITIONS):
        assert _records_of(rec, p) == sorted(want[p]), p
    assert rec.nbytes == sum(12 * len(v) + 4 * sum(len(e) for _, e in v) for v in want.values())

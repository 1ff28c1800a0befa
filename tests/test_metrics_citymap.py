"""CityMapMetric and TemporalConsistency: exact single-frame oracle, hand-checked votes, real seq-08 poses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from occbench.io.kitti import read_calib, read_poses
from occbench.metrics import PROTOCOLS, CityMapMetric, FrameArrays, SSCMetric, TemporalConsistency
from occbench.metrics.citymap import world_keys

SEQ08 = (
    Path(__file__).resolve().parent / "data" / "kitti-odometry" / "sequences" / "08"
)  # real files, tests/data/README.md
SHAPE = (256, 256, 32)
PROTO = PROTOCOLS["semantickitti-ssc"]
ROAD, SIDEWALK, BUILDING, VEG, CAR = 9, 11, 13, 15, 1


def seq08_poses() -> np.ndarray:
    return read_poses(SEQ08 / "poses.txt", read_calib(SEQ08 / "calib.txt"))


def test_single_frame_identity_pose_equals_ssc_confusion_collapsed_to_static():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 20, SHAPE).astype(np.uint8)
    gt[rng.random(SHAPE) < 0.5] = 0
    gt[rng.random(SHAPE) < 0.1] = 255
    pred = rng.integers(0, 20, SHAPE).astype(np.uint8)
    inv = rng.random(SHAPE) < 0.1
    city = CityMapMetric(PROTO)
    city.update_frame(pred, FrameArrays(gt, inv, pose=np.eye(4)))
    ssc = SSCMetric(PROTO)
    ssc.update_frame(pred, FrameArrays(gt, inv))
    conf = ssc.confusion(51.2)
    cat = np.zeros(20, int)
    cat[list(PROTO.static_ids)] = np.arange(1, 12)
    expect = np.zeros((12, 12), np.int64)
    np.add.at(expect, (cat[:, None].repeat(20, 1), cat[None, :].repeat(20, 0)), conf)
    np.testing.assert_array_equal(city.confusion(), expect)
    r = city.compute()
    assert r["n_map_voxels"] == conf.sum()


def test_majority_vote_and_ties_by_hand():
    """Three frames at the same pose; one voxel gets votes road, road, sidewalk -> road; another
    building, empty -> tie -> not static."""
    g = np.full(SHAPE, 255, np.uint8)  # only a small block is evaluated
    g[:32, 120:136, :8] = 0
    g[10, 128, 5] = ROAD
    g[20, 128, 5] = BUILDING
    preds = []
    for lab_a, lab_b in ((ROAD, BUILDING), (ROAD, 0), (SIDEWALK, 0)):
        p = np.zeros(SHAPE, np.uint8)
        p[10, 128, 5] = lab_a
        p[20, 128, 5] = lab_b
        preds.append(p)
    city = CityMapMetric(PROTO)
    tc = TemporalConsistency(PROTO)
    for p in preds:
        city.update_frame(p, FrameArrays(g, pose=np.eye(4)))
        tc.update_frame(p, FrameArrays(g, pose=np.eye(4)))
    conf = city.confusion()
    road, building = 1 + PROTO.static_ids.index(ROAD), 1 + PROTO.static_ids.index(BUILDING)
    assert conf[road, road] == 1  # road wins 2:1
    assert conf[0, building] == 1  # building 1 vs not-static 2 -> not static
    r = city.compute()
    assert r["per_class_iou"]["road"] == pytest.approx(1.0) and r["per_class_iou"]["building"] == 0.0
    assert r["iou"] == pytest.approx(1 / 2)
    t = tc.compute()
    # road voxel: labels 9, 9, 11 -> pairs same 2 of 6; building voxel: 13, 0, 0 -> 2 of 6
    assert t["n_static_voxels"] == 2
    assert t["pair_agreement"] == pytest.approx(4 / 12)
    assert t["modal_agreement"] == pytest.approx(4 / 6)
    assert t["all_agree"] == 0.0
    assert t["per_class_pair_agreement"]["road"] == pytest.approx(2 / 6)


def world_scene_frame(pose: np.ndarray) -> np.ndarray:
    """Ground truth of a frame that samples one fixed static world: label = f(world voxel)."""
    idx = np.arange(np.prod(SHAPE))
    w = (world_keys(idx, pose, 0.2) >> np.uint64(8)).astype(np.int64)
    wz = (w & ((1 << 14) - 1)) - (1 << 13)
    wy = ((w >> 14) & ((1 << 21) - 1)) - (1 << 20)
    wx = (w >> 35) - (1 << 20)
    labels = np.array([ROAD, SIDEWALK, BUILDING, VEG], np.uint8)
    occupied = (wz % 6) == 0
    lab = labels[((wx // 17) + 3 * (wy // 13)) % 4]
    out = np.where(occupied, lab, 0).astype(np.uint8).reshape(SHAPE)
    out[128:] = 255  # evaluate the near half only (keeps the test fast)
    return out


def test_real_seq08_poses_consistent_world_scores_one_and_corruption_lowers_it():
    poses = seq08_poses()
    assert poses.shape == (4071, 4, 4)
    frames = [0, 5, 10]
    gts = [world_scene_frame(poses[f]) for f in frames]
    city, tc = CityMapMetric(PROTO), TemporalConsistency(PROTO)
    for f, g in zip(frames, gts):
        city.update_frame(g, FrameArrays(g, pose=poses[f]))
        tc.update_frame(g, FrameArrays(g, pose=poses[f]))
    r = city.compute()
    assert r["iou"] == 1.0 and r["n_static_gt"] > 50000
    for n in ("road", "sidewalk", "building", "vegetation"):
        assert r["per_class_iou"][n] == pytest.approx(1.0)
    assert r["miou"] == pytest.approx(4 / 11)  # 7 static classes absent: IoU 0, as officially
    t = tc.compute()
    assert t["pair_agreement"] == 1.0 and t["all_agree"] == 1.0 and t["n_static_voxels"] > 10000
    # frames 5 and 10 predict vegetation everywhere it should be road: 2 of 3 votes
    city2, tc2 = CityMapMetric(PROTO), TemporalConsistency(PROTO)
    for f, g in zip(frames, gts):
        p = np.where(g == ROAD, VEG, g).astype(np.uint8) if f != 0 else g
        city2.update_frame(p, FrameArrays(g, pose=poses[f]))
        tc2.update_frame(p, FrameArrays(g, pose=poses[f]))
    assert 0.5 < tc2.compute()["pair_agreement"] < 1.0
    assert tc2.compute()["per_class_pair_agreement"]["building"] == 1.0
    r2 = city2.compute()
    assert r2["per_class_iou"]["road"] < 1.0 and r2["per_class_iou"]["building"] == pytest.approx(1.0)
    # frames moved by the vehicle: the map is larger than one frame
    assert r["n_map_voxels"] > 1.1 * (SHAPE[0] * SHAPE[1] * SHAPE[2]) / 2


def test_city_map_states_merge():
    poses = seq08_poses()
    g = world_scene_frame(poses[0])
    a, b, both = CityMapMetric(PROTO), CityMapMetric(PROTO), CityMapMetric(PROTO)
    a.update_frame(g, FrameArrays(g, pose=poses[0]))
    b.update_frame(g, FrameArrays(g, pose=poses[3]))
    both.update_frame(g, FrameArrays(g, pose=poses[0]))
    both.update_frame(g, FrameArrays(g, pose=poses[3]))
    np.testing.assert_array_equal(a.merge(b).confusion(), both.confusion())


def test_city_map_errors():
    city = CityMapMetric(PROTO)
    z = np.zeros(SHAPE, np.uint8)
    bad = z.copy()
    bad[0, 0, 0] = 25
    with pytest.raises(ValueError, match=r"0\.\.19.*\[25\]"):
        city.update_frame(bad, FrameArrays(z, pose=np.eye(4)))
    with pytest.raises(ValueError, match="4x4"):
        city.update_frame(z, FrameArrays(z, pose=np.eye(3)))
    tc = TemporalConsistency(PROTO)
    tc.update_frame(z, FrameArrays(None, pose=np.eye(4)))
    with pytest.raises(ValueError, match="every frame or no frame"):
        tc.update_frame(z, FrameArrays(z, pose=np.eye(4)))

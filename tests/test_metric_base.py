"""The metric base: declared integer states give merge, the compatibility check, reset, copy and state_dict; the
built-in metrics are built on it; the one-shot forms score as brute-force numpy does."""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest

from occbench.errors import FormatError
from occbench.metrics import (
    PROTOCOLS,
    CityMapMetric,
    FrameArrays,
    Metric,
    SSCMetric,
    TemporalConsistency,
    city_map_scores,
    ssc_scores,
    temporal_consistency_scores,
)

SHAPE = (256, 256, 32)


class Histogram(Metric):
    """Counts of predicted train ids, and frames: two declared states."""

    higher_is_better = None

    def __init__(self, protocol="semantickitti-ssc", bins: int = 4):
        super().__init__(protocol)
        self.bins = bins
        self.add_state("counts", np.zeros(bins, np.int64))
        self.add_state("frames", 0)

    def settings(self):
        return {**super().settings(), "bins": self.bins}

    def _empty_like(self):
        return Histogram(self.protocol, self.bins)

    def update_frame(self, pred, frame):
        self.counts += np.bincount(np.asarray(pred).ravel() % self.bins, minlength=self.bins)
        self.frames += 1

    def compute(self):
        return {"counts": self.counts.tolist(), "frames": self.frames}


def _hist(*preds, bins=4):
    h = Histogram(bins=bins)
    for p in preds:
        h.update_frame(np.asarray(p), None)
    return h


def test_declared_states_merge_by_addition_reset_and_copy():
    a, b = _hist([0, 1, 1], [3]), _hist([2, 2, 2, 5])
    c = a + b
    assert c.compute() == {"counts": [1, 3, 3, 1], "frames": 3}
    assert a.compute() == {"counts": [1, 2, 0, 1], "frames": 2}  # + leaves its operands alone
    a.merge(b)
    assert a.compute() == c.compute()
    d = a.copy()
    d.update_frame(np.array([0]), None)
    assert a.compute() == c.compute() and d.compute()["frames"] == 4
    a.reset()
    assert a.compute() == {"counts": [0, 0, 0, 0], "frames": 0}
    a += b
    assert a.compute() == b.compute()
    assert pickle.loads(pickle.dumps(c)).compute() == c.compute()


def test_states_of_other_settings_types_or_protocols_are_refused():
    with pytest.raises(ValueError, match="bins 4 and 5"):
        _hist([1]).merge(_hist([1], bins=5))
    with pytest.raises(TypeError, match="can only merge a Histogram"):
        _hist([1]).merge(SSCMetric())
    other = Histogram("sscbench-kitti360-ssc")
    with pytest.raises(ValueError, match="different protocols"):
        _hist([1]).merge(other)


def test_state_dict_round_trips_through_json_and_checks_what_it_loads():
    h = _hist([0, 3, 3, 7], [1])
    d = json.loads(json.dumps(h.state_dict()))
    assert d["states"]["frames"] == 2 and d["states"]["counts"] == {
        "shape": [4],
        "index": [0, 1, 3],
        "count": [1, 1, 3],
    }
    assert Histogram().load_state_dict(d).compute() == h.compute()
    with pytest.raises(ValueError, match="does not fit"):
        Histogram(bins=5).load_state_dict(d)
    bad = json.loads(json.dumps(d))
    bad["states"]["counts"]["index"] = [0, 1, 9]
    with pytest.raises(FormatError, match="within the shape"):
        Histogram().load_state_dict(bad)
    with pytest.raises(FormatError, match="format_version"):
        Histogram().load_state_dict({"format": "something else"})


def test_only_integer_states_added_up_can_be_declared():
    m = Histogram()
    with pytest.raises(TypeError, match="integer array"):
        m.add_state("x", np.zeros(3))
    with pytest.raises(TypeError, match="an integer or an integer array"):
        m.add_state("y", 0.5)
    with pytest.raises(ValueError, match="'sum'"):
        m.add_state("z", 0, dist_reduce_fx="max")


def _frame(seed: int, C: int = 20):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, C, SHAPE).astype(np.uint8)
    gt[rng.random(SHAPE) < 0.6] = 0
    gt[rng.random(SHAPE) < 0.1] = 255
    pred = np.where(rng.random(SHAPE) < 0.7, gt, rng.integers(0, C, SHAPE)).astype(np.uint8)
    pred[gt == 255] = rng.integers(0, C, int((gt == 255).sum()))
    return pred, gt


def test_ssc_metric_states_are_declared_and_follow_the_base():
    frames = [_frame(1), _frame(2)]
    one = SSCMetric()
    for p, g in frames:
        one.update_frame(p, FrameArrays(g))
    assert one.state_names == ("_counts", "n_frames")
    parts = [SSCMetric.from_state_dict(json.loads(json.dumps(SSCMetric().copy().state_dict())))]
    for p, g in frames:
        m = SSCMetric()
        m.update_frame(p, FrameArrays(g))
        parts.append(SSCMetric.from_state_dict(json.loads(json.dumps(m.state_dict()))))
    merged = parts[0] + parts[1] + parts[2]
    assert np.array_equal(merged._counts, one._counts) and merged.n_frames == 2 and merged.compute() == one.compute()
    with pytest.raises(ValueError, match="ranges"):
        merged.merge(SSCMetric(ranges=(51.2,)))
    with pytest.raises(ValueError, match="does not fit"):
        SSCMetric(ranges=(51.2,)).load_state_dict(one.state_dict())
    one.reset()
    assert one.n_frames == 0 and not one._counts.any()


def test_ssc_scores_is_the_official_formula_on_the_frame():
    pred, gt = _frame(3)
    inv = np.random.default_rng(4).random(SHAPE) < 0.2
    got = ssc_scores(pred, gt, "semantickitti-ssc", inv)
    for r, (sx, sy) in {"12.8": (slice(0, 64), slice(96, 160)), "51.2": (slice(None), slice(None))}.items():
        keep = (gt[sx, sy] != 255) & ~inv[sx, sy]
        conf = np.zeros((20, 20), np.int64)
        np.add.at(conf, (pred[sx, sy][keep].astype(int), gt[sx, sy][keep].astype(int)), 1)
        tp = np.diag(conf)
        iou = tp / (conf.sum(0) + conf.sum(1) - tp + 1e-15)
        assert got[r]["miou"] == pytest.approx(iou[1:].mean(), rel=1e-14)
        assert got[r]["iou"] == pytest.approx(conf[1:, 1:].sum() / (conf.sum() - conf[0, 0]), rel=1e-14)
        assert got[r]["n_evaluated"] == conf.sum()


def _static_frames():
    """Two frames at the same pose (identity): every frame voxel is its own world voxel, seen twice."""
    proto = PROTOCOLS["semantickitti-ssc"]
    gt = np.zeros(SHAPE, np.uint8)
    gt[10:20, 100:120, 5:8] = proto.static_ids[0]
    gt[40:45, 60:70, 2:4] = proto.static_ids[1]
    return gt, np.eye(4)


def test_the_one_shot_world_map_metrics_score_a_hand_made_scene():
    proto = PROTOCOLS["semantickitti-ssc"]
    gt, pose = _static_frames()
    s0, s1 = proto.static_ids[0], proto.static_ids[1]
    city = city_map_scores([gt, gt], [gt, gt], [pose, pose], proto)
    assert city["iou"] == 1.0 and city["n_map_voxels"] == gt.size and city["n_static_gt"] == 10 * 20 * 3 + 5 * 10 * 2
    names = proto.static_classes
    assert city["per_class_iou"][names[0]] == pytest.approx(1.0) and city["per_class_iou"][names[1]] == pytest.approx(
        1.0
    )
    # the second frame calls every static voxel the other static class: pairs never agree, the mode holds half
    other = np.where(gt == s0, s1, np.where(gt == s1, s0, gt)).astype(np.uint8)
    tc = temporal_consistency_scores([gt, other], [gt, gt], [pose, pose], proto)
    assert tc["pair_agreement"] == 0.0 and tc["modal_agreement"] == 0.5 and tc["all_agree"] == 0.0
    assert tc["n_static_voxels"] == 10 * 20 * 3 + 5 * 10 * 2
    same = temporal_consistency_scores([gt, gt], [None, None], [pose, pose], proto)
    assert same["pair_agreement"] == 1.0 and same["reference"] == "prediction majority"


def test_world_map_metrics_merge_reset_and_copy_through_the_base():
    proto = PROTOCOLS["semantickitti-ssc"]
    gt, pose = _static_frames()
    a, b = CityMapMetric(proto), CityMapMetric(proto)
    a.update_frame(gt, FrameArrays(gt, pose=pose))
    b.update_frame(gt, FrameArrays(gt, pose=pose))
    c = a.copy()
    assert a.merge(b).n_frames == 2 and c.n_frames == 1
    with pytest.raises(ValueError, match="voxel_size"):
        c.merge(CityMapMetric(proto, voxel_size=0.4))
    with pytest.raises(TypeError, match="no state_dict"):
        c.state_dict()
    c.reset()
    assert c.n_frames == 0
    t = TemporalConsistency(proto)
    t.update_frame(gt, FrameArrays(None, pose=pose))
    with pytest.raises(ValueError, match="with and without ground truth"):
        t.merge(TemporalConsistency(proto).merge(_with_gt(proto, gt, pose)))
    t.reset()
    t.update_frame(gt, FrameArrays(gt, pose=pose))  # after reset, frames with ground truth are welcome
    kitti = dataclasses.replace(proto, version="0.0")
    with pytest.raises(ValueError, match="different protocols"):
        CityMapMetric(proto).merge(CityMapMetric(kitti))


def _with_gt(proto, gt, pose):
    t = TemporalConsistency(proto)
    t.update_frame(gt, FrameArrays(gt, pose=pose))
    return t


def test_a_state_resets_to_its_declared_default():
    m = Histogram()
    m.add_state("floor", np.array([3, 0, 1], np.int32))
    m.floor += 5
    m.counts += 2
    m.reset()
    assert m.floor.tolist() == [3, 0, 1] and m.floor.dtype == np.int32 and m.counts.tolist() == [0, 0, 0, 0]
    assert pickle.loads(pickle.dumps(m)).floor.tolist() == [3, 0, 1]


def test_update_frame_is_the_one_way_in_and_takes_arrays():
    """Every built-in metric takes frames through ``update_frame(pred, FrameArrays)`` only: no other public update,
    a frame that is not arrays (a path, a dataset's frame) is refused with what to pass, and a world-map metric
    needs the frame's pose."""
    for cls in (SSCMetric, CityMapMetric, TemporalConsistency):
        public = {n for n in dir(cls) if not n.startswith("_") and ("update" in n or "add_frame" in n)}
        assert public == {"update_frame"}, (cls.__name__, public)
    g = np.zeros(SHAPE, np.uint8)
    g[10:20, 100:140, 3:6] = 9
    for m in (SSCMetric(), CityMapMetric(), TemporalConsistency()):
        with pytest.raises(TypeError, match=r"FrameArrays.*got str"):
            m.update_frame(g, "voxels/000000.label")
    with pytest.raises(ValueError, match=r"CityMapMetric places frames by their pose: frame 000042 has none"):
        CityMapMetric().update_frame(g, FrameArrays(g, name="000042"))
    with pytest.raises(ValueError, match="raw ids"):
        CityMapMetric().update_frame(g, FrameArrays(g, pose=np.eye(4), labels="raw"))
    with pytest.raises(ValueError, match="labels must be 'train' or 'raw'"):
        FrameArrays(g, labels="train-ids")
    m = SSCMetric()
    m.update_frame(g, FrameArrays(g, name="000042"))
    assert m.n_frames == 1 and m.compute()["51.2"]["iou"] == 1.0

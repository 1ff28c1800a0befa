"""SSCMetric: hand-computed grids, sklearn oracle, official-formula oracle, range crops, merge, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, jaccard_score

from occbench.errors import FormatError
from occbench.geometry import RANGE_SLICES as GEOMETRY_SLICES
from occbench.grid import KITTI
from occbench.labels import load_label_map
from occbench.metrics import PROTOCOLS, FrameArrays, SSCMetric, ssc_scores
from occbench.results import Results

C = 20
SHAPE = (256, 256, 32)


# VoxFormer's range crops (semantic_kitti_dataset_stage2.py get_gt_info), as index slices [x, y], all z
RANGE_SLICES = {
    12.8: (slice(0, 64), slice(96, 160)),
    25.6: (slice(0, 128), slice(64, 192)),
    51.2: (slice(0, 256), slice(0, 256)),
}


def tiny_example() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The worked example of docs/metrics.md."""
    pred = np.zeros(SHAPE, np.uint8)
    gt = np.zeros(SHAPE, np.uint8)
    inv = np.zeros(SHAPE, bool)
    y = 128
    gt[0, y, 0], pred[0, y, 0] = 1, 1  # A car / car
    gt[1, y, 0], pred[1, y, 0] = 1, 9  # B car / road
    gt[2, y, 0], pred[2, y, 0] = 9, 9  # C road / road
    gt[3, y, 0], pred[3, y, 0] = 9, 0  # D road / empty
    gt[4, y, 0], pred[4, y, 0] = 0, 9  # E empty / road
    gt[5, y, 0], pred[5, y, 0] = 255, 1  # F ignore
    gt[6, y, 0], pred[6, y, 0] = 1, 1  # G invalid
    inv[6, y, 0] = True
    gt[100, y, 0], pred[100, y, 0] = 13, 13  # H building at 20 m
    gt[200, 10, 0], pred[200, 10, 0] = 15, 0  # I vegetation at 40 m, missed
    return pred, gt, inv


def test_hand_computed_tiny_grid():
    pred, gt, inv = tiny_example()
    m = SSCMetric("semantickitti-ssc")
    m.update_frame(pred, FrameArrays(gt, inv))
    r = m.compute()
    eps = np.finfo(np.float32).eps
    assert r["12.8"]["iou"] == pytest.approx(3 / 5, abs=0)
    assert r["12.8"]["precision"] == 3 / (4 + eps)
    assert r["12.8"]["recall"] == 3 / (4 + eps)
    assert r["12.8"]["per_class_iou"]["car"] == 1 / (2 + 1e-15)
    assert r["12.8"]["per_class_iou"]["road"] == 1 / (4 + 1e-15)
    assert r["12.8"]["per_class_iou"]["building"] == 0.0
    assert r["12.8"]["miou"] == pytest.approx((1 / 2 + 1 / 4) / 19, rel=1e-14)
    assert r["12.8"]["n_evaluated"] == 64 * 64 * 32 - 2
    assert r["25.6"]["iou"] == pytest.approx(4 / 6, rel=1e-15)
    assert r["25.6"]["miou"] == pytest.approx((1 / 2 + 1 / 4 + 1) / 19, rel=1e-14)
    assert r["51.2"]["iou"] == pytest.approx(4 / 7, rel=1e-15)
    assert r["51.2"]["per_class_iou"]["vegetation"] == 0.0
    assert r["51.2"]["miou"] == pytest.approx((1 / 2 + 1 / 4 + 1) / 19, rel=1e-14)
    assert r["51.2"]["n_evaluated"] == 256 * 256 * 32 - 2
    conf = m.confusion(12.8)
    assert conf[1, 1] == 1 and conf[9, 1] == 1 and conf[9, 9] == 1 and conf[0, 9] == 1 and conf[9, 0] == 1
    assert conf[0, 0] == 64 * 64 * 32 - 2 - 5


def _voxformer_kept(eval_range: float) -> np.ndarray:
    """The voxels VoxFormer keeps for ``eval_range``: ``get_gt_info`` of
    projects/mmdet3d_plugin/datasets/semantic_kitti_dataset_stage2.py sets every other target voxel to 255."""
    target = np.zeros(SHAPE, np.uint8)
    if eval_range == 25.6:
        target[128:, :, :] = 255
        target[:, :64, :] = 255
        target[:, 192:, :] = 255
    elif eval_range == 12.8:
        target[64:, :, :] = 255
        target[:, :96, :] = 255
        target[:, 160:, :] = 255
    return target != 255


def test_range_crops_of_the_kitti_grid_are_voxformers():
    assert KITTI.range_keys == ("12.8", "25.6", "51.2")
    for r in (12.8, 25.6, 51.2):
        kept = _voxformer_kept(r)
        for slices in (KITTI.range_slices(r), GEOMETRY_SLICES[r], RANGE_SLICES[r]):
            crop = np.zeros(SHAPE, bool)
            crop[slices] = True
            assert np.array_equal(crop, kept), r


def random_frame(rng: np.random.Generator, C: int = C, p_ignore: float = 0.15, p_inv: float = 0.2):
    gt = rng.integers(0, C, SHAPE).astype(np.uint8)
    u = rng.random(SHAPE)
    gt[u < 0.5] = 0
    gt[u > 1 - p_ignore] = 255
    pred = rng.integers(0, C, SHAPE).astype(np.uint8)
    pred[rng.random(SHAPE) < 0.6] = 0
    inv = rng.random(SHAPE) < p_inv
    return pred, gt, inv


def sliced_mask(pred, gt, inv, r):
    sx, sy = RANGE_SLICES[r]
    p, g = pred[sx, sy].ravel(), gt[sx, sy].ravel()
    m = g != 255
    if inv is not None:
        m &= ~inv[sx, sy].ravel()
    return p[m], g[m]


def test_sklearn_oracle_random_frames_all_ranges():
    rng = np.random.default_rng(7)
    frames = [random_frame(rng) for _ in range(2)]
    m = SSCMetric()
    for pred, gt, inv in frames:
        m.update_frame(pred, FrameArrays(gt, inv))
    res = m.compute()
    for r in (12.8, 25.6, 51.2):
        ps, gs = zip(*(sliced_mask(*f, r) for f in frames))
        y_pred, y_true = np.concatenate(ps), np.concatenate(gs)
        cm = confusion_matrix(y_true, y_pred, labels=list(range(C)))  # rows = true
        np.testing.assert_array_equal(m.confusion(r), cm.T)
        jac = jaccard_score(y_true, y_pred, labels=list(range(C)), average=None, zero_division=0)
        got = np.array([res[f"{r}"]["per_class_iou"][n] for n in PROTOCOLS["semantickitti-ssc"].class_names])
        np.testing.assert_allclose(got, jac, rtol=1e-12, atol=0)
        assert res[f"{r}"]["miou"] == pytest.approx(jac[1:].mean(), rel=1e-12)
        occ_t, occ_p = y_true > 0, y_pred > 0
        tp = np.sum(occ_t & occ_p)
        assert res[f"{r}"]["iou"] == pytest.approx(tp / np.sum(occ_t | occ_p), rel=1e-15)


def test_range_crops_equal_voxformer_style_255_outside():
    """VoxFormer get_gt_info sets gt outside the range to 255 and evaluates the whole grid."""
    rng = np.random.default_rng(3)
    pred, gt, inv = random_frame(rng)
    m = SSCMetric()
    m.update_frame(pred, FrameArrays(gt, inv))
    for r, (sx, sy) in RANGE_SLICES.items():
        g2 = np.full_like(gt, 255)
        g2[sx, sy] = gt[sx, sy]
        one = SSCMetric(ranges=(51.2,))
        one.update_frame(pred, FrameArrays(g2, inv))
        np.testing.assert_array_equal(m.confusion(r), one.confusion(51.2))


def official_semantic_kitti_api(pred_raw_list, gt_raw_list, inv_list):
    """Literal re-implementation of evaluate_completion.py + np_ioueval.iouEval (numpy-2 safe)."""
    lm = load_label_map("semantickitti")
    remap = lm.lut.astype(np.int64)
    conf = np.zeros((C, C), np.int64)
    for pr, gr, iv in zip(pred_raw_list, gt_raw_list, inv_list):
        pred, target = remap[pr.ravel()], remap[gr.ravel()]
        masks = np.ones_like(target, dtype=bool)
        masks[target == 255] = False
        masks[iv.ravel() == 1] = False
        np.add.at(conf, (pred[masks], target[masks]), 1)
    tp = np.diag(conf)
    fp = conf.sum(1) - tp
    fn = conf.sum(0) - tp
    iou = tp / (tp + fp + fn + 1e-15)
    eps = np.finfo(np.float32).eps
    return {
        "conf": conf,
        "miou": iou[1:].mean(),
        "iou_c": iou,
        "precision": np.sum(conf[1:, 1:]) / (np.sum(conf[1:, :]) + eps),
        "recall": np.sum(conf[1:, 1:]) / (np.sum(conf[:, 1:]) + eps),
        "iou": np.sum(conf[1:, 1:]) / (np.sum(conf) - conf[0, 0]),
    }


def test_raw_path_equals_official_script_bit_for_bit():
    rng = np.random.default_rng(11)
    lm = load_label_map("semantickitti")
    raws, gts, invs = [], [], []
    for _ in range(2):
        pred, gt, inv = random_frame(rng)
        gt_raw = lm.inv_lut[np.where(gt == 255, 0, gt)].astype(np.uint16)
        gt_raw[gt == 255] = rng.choice([1, 52, 99], int((gt == 255).sum()))  # raw ids mapping to ignore
        raws.append(lm.inv_lut[pred].astype(np.uint16))
        gts.append(gt_raw)
        invs.append(inv.astype(np.uint8))
    m = SSCMetric()
    for p, g, i in zip(raws, gts, invs):
        m.update_frame(p, FrameArrays(g, np.packbits(i.ravel()), labels="raw"))  # packed .invalid bytes, as on disk
    ref = official_semantic_kitti_api(raws, gts, invs)
    np.testing.assert_array_equal(m.confusion(51.2), ref["conf"])
    r = m.compute()["51.2"]
    assert r["miou"] == ref["miou"] and r["iou"] == ref["iou"]
    assert r["precision"] == ref["precision"] and r["recall"] == ref["recall"]
    # the train-id path agrees
    m2 = SSCMetric()
    for p, g, i in zip(raws, gts, invs):
        m2.update_frame(lm.lut[p], FrameArrays(lm.lut[g], i))
    np.testing.assert_array_equal(m2._counts, m._counts)


def sscmetrics_reference(preds, gts, C):
    """MonoScene/SSCBench ``SSCMetrics.add_batch`` (the per-class ``np.where`` loop), on targets with 255 =
    ignore/invalid.

    ``add_batch`` passes ``mask = y_true != 255`` as ``nonempty`` to both scores, so ignored voxels count nowhere,
    not even as (empty, empty) hits (``get_score_semantic_and_completion`` keeps ``nonempty_idx == 1`` only)."""
    ctp = cfp = cfn = 0
    tps, fps, fns = np.zeros(C), np.zeros(C), np.zeros(C)
    for pr, tg in zip(preds, gts):
        pr, tg = pr.ravel().copy(), tg.ravel().copy()
        mask = tg != 255
        pr[tg == 255] = 0
        tg[tg == 255] = 0
        pr, tg = pr[mask], tg[mask]
        bp, bt = pr > 0, tg > 0
        ctp += np.sum(bt & bp)
        cfp += np.sum(~bt & bp)
        cfn += np.sum(bt & ~bp)
        for j in range(C):
            tps[j] += np.sum((tg == j) & (pr == j))
            fps[j] += np.sum((tg != j) & (pr == j))
            fns[j] += np.sum((tg == j) & (pr != j))
    iou_ssc = tps / (tps + fps + fns + 1e-5)
    return ctp / (ctp + cfp + cfn), ctp / (ctp + cfp), ctp / (ctp + cfn), iou_ssc, iou_ssc[1:].mean()


def test_sscbench_kitti360_protocol_matches_sscmetrics_and_invalid_policy():
    rng = np.random.default_rng(5)
    C360 = 19
    pred, gt, inv = random_frame(rng, C=C360)
    # SSCBench preprocessing: INVALID[nonzero(LABEL)] = 0, LABEL[INVALID] = 255
    target = gt.copy()
    target[inv & (gt == 0)] = 255
    m = SSCMetric("sscbench-kitti360-ssc")
    m.update_frame(pred, FrameArrays(gt, inv))
    iou, prec, rec, iou_ssc, miou = sscmetrics_reference([pred], [target], C360)
    r = m.compute()["51.2"]
    assert r["iou"] == pytest.approx(iou, rel=1e-15)
    assert r["precision"] == pytest.approx(prec, rel=1e-15) and r["recall"] == pytest.approx(rec, rel=1e-15)
    got = np.array(list(r["per_class_iou"].values()))
    # every class, empty included: add_batch masks y_true != 255 exactly like occbench's evaluated-voxel mask
    np.testing.assert_allclose(got, iou_ssc, rtol=1e-14)
    assert r["miou"] == pytest.approx(miou, rel=1e-14)


def test_sscmetrics_zero_rule_and_official_nan_rule_when_nothing_occupied():
    z = np.zeros(SHAPE, np.uint8)
    a = SSCMetric("sscbench-kitti360-ssc")
    a.update_frame(z, FrameArrays(z))
    assert a.compute()["51.2"]["iou"] == 0.0
    b = SSCMetric("semantickitti-ssc")
    b.update_frame(z, FrameArrays(z))
    r = b.compute()["51.2"]
    assert np.isnan(r["iou"]) and r["precision"] == 0.0 and r["miou"] == 0.0
    doc = Results.build("semantickitti-ssc", {"ssc": b}).to_dict()
    json.dumps(doc, allow_nan=False)
    assert doc["metrics"]["ssc"]["51.2"]["iou"] is None


def test_merge_of_split_states_equals_one_pass_and_json_roundtrip():
    rng = np.random.default_rng(1)
    frames = [random_frame(rng) for _ in range(3)]
    one = SSCMetric()
    for f in frames:
        one.update_frame(f[0], FrameArrays(*f[1:]))
    parts = []
    for f in frames:
        m = SSCMetric()
        m.update_frame(f[0], FrameArrays(*f[1:]))
        parts.append(SSCMetric.from_state_dict(json.loads(json.dumps(m.state_dict()))))
    merged = parts[0] + parts[1]
    merged.merge(parts[2])
    np.testing.assert_array_equal(merged._counts, one._counts)
    assert merged.n_frames == 3 and merged.compute() == one.compute()
    assert parts[0]._counts.sum() != one._counts.sum()  # the parts really were partial


def test_batch_equals_sequential_and_dtypes():
    rng = np.random.default_rng(2)
    f1, f2 = random_frame(rng), random_frame(rng)
    seq = SSCMetric()
    seq.update_frame(f1[0], FrameArrays(*f1[1:]))
    seq.update_frame(f2[0], FrameArrays(*f2[1:]))
    # a batch is the one-shot function's: the same scores as the frames one by one
    assert (
        ssc_scores(np.stack([f1[0], f2[0]]), np.stack([f1[1], f2[1]]), invalid=np.stack([f1[2], f2[2]]))
        == seq.compute()
    )
    with pytest.raises(FormatError, match=r"one frame"):  # update_frame takes one frame
        SSCMetric().update_frame(np.stack([f1[0], f2[0]]), FrameArrays(np.stack([f1[1], f2[1]])))
    wide = SSCMetric()
    wide.update_frame(f1[0].astype(np.int64), FrameArrays(f1[1].astype(np.int32), f1[2].astype(np.uint8)))
    wide.update_frame(f2[0].astype(np.int16), FrameArrays(f2[1], f2[2]))
    np.testing.assert_array_equal(seq._counts, wide._counts)


def test_prediction_out_of_range_inside_mask_raises_outside_is_ignored():
    pred, gt, inv = tiny_example()
    bad = pred.copy()
    bad[0, 128, 0] = 20
    with pytest.raises(FormatError, match=r"0\.\.19.*found values \[20\] at 1 evaluated"):
        SSCMetric().update_frame(bad, FrameArrays(gt, inv))
    ok = pred.copy()
    ok[5, 128, 0] = 77  # gt ignore there
    ok[6, 128, 0] = 200  # invalid there
    m = SSCMetric()
    m.update_frame(ok, FrameArrays(gt, inv))
    ref = SSCMetric()
    ref.update_frame(pred, FrameArrays(gt, inv))
    np.testing.assert_array_equal(m._counts, ref._counts)
    neg = pred.astype(np.int64)
    neg[5, 128, 0] = -3  # outside mask: fine
    SSCMetric().update_frame(neg, FrameArrays(gt, inv))
    neg[0, 128, 0] = -3
    with pytest.raises(FormatError, match=r"\[-3\]"):
        SSCMetric().update_frame(neg, FrameArrays(gt, inv))


def test_malformed_inputs_raise_clear_errors():
    pred, gt, inv = tiny_example()
    g = gt.copy()
    g[9, 9, 9] = 42
    with pytest.raises(FormatError, match=r"ground-truth train ids 0\.\.19 or 255.*\[42\]"):
        SSCMetric().update_frame(pred, FrameArrays(g))
    with pytest.raises(FormatError, match=r"shape \(256, 256\)"):
        SSCMetric().update_frame(pred[:, :, 0], FrameArrays(gt[:, :, 0]))
    with pytest.raises(FormatError, match="dtype float32"):
        SSCMetric().update_frame(pred.astype(np.float32), FrameArrays(gt))
    with pytest.raises(FormatError, match="invalid mask"):
        SSCMetric().update_frame(pred, FrameArrays(gt, inv[:, :, :16]))
    lm = load_label_map("semantickitti")
    raw_p, raw_g = lm.inv_lut[pred].astype(np.uint16), lm.inv_lut[np.where(gt == 255, 0, gt)].astype(np.uint16)
    raw_p[0, 128, 0] = 52  # other-structure: maps to ignore -> IndexError in the official script
    with pytest.raises(FormatError, match=r"raw ids \[52\]"):
        SSCMetric().update_frame(raw_p, FrameArrays(raw_g, inv, labels="raw"))
    a, b = SSCMetric("semantickitti-ssc"), SSCMetric("sscbench-kitti360-ssc")
    with pytest.raises(ValueError, match="different protocols"):
        a.merge(b)


def test_distance_curve_partitions_the_range_and_matches_brute_force():
    rng = np.random.default_rng(9)
    pred, gt, inv = random_frame(rng)
    m = SSCMetric()
    m.update_frame(pred, FrameArrays(gt, inv))
    curve = m.distance_curve()
    full = m.compute()["51.2"]
    assert sum(curve["n_evaluated"]) == full["n_evaluated"]
    cum = m.distance_curve(cumulative=True)
    assert cum["miou"][-1] == full["miou"] and cum["iou"][-1] == full["iou"]
    # brute force for one bin of the 25.6 m crop
    edges = curve["bin_edges_m"]
    k = 5
    i = np.arange(256)[:, None]
    j = np.arange(256)[None, :]
    d = np.hypot(0.2 * (i + 0.5), -25.6 + 0.2 * (j + 0.5))
    col = (d >= edges[k]) & (d < edges[k + 1]) & (i < 128) & (j >= 64) & (j < 192)
    sel = np.broadcast_to(col[:, :, None], SHAPE) & (gt != 255) & ~inv
    cm = np.zeros((C, C), np.int64)
    np.add.at(cm, (pred[sel].astype(int), gt[sel].astype(int)), 1)
    c26 = m.distance_curve(25.6)
    assert c26["n_evaluated"][k] == cm.sum()
    tp = np.diag(cm)
    iou = tp / (cm.sum(0) + cm.sum(1) - tp + 1e-15)
    assert c26["miou"][k] == pytest.approx(iou[1:].mean(), rel=1e-14)


def test_results_carry_the_protocol():
    pred, gt, inv = tiny_example()
    m = SSCMetric()
    m.update_frame(pred, FrameArrays(gt, inv))
    doc = Results.build(PROTOCOLS["semantickitti-ssc"], metrics={"ssc": m}, header={"method": "tiny"}).to_dict()
    s = json.dumps(doc, allow_nan=False)
    assert doc["units"] == "fraction"
    p = doc["protocol"]
    assert p["id"] == "semantickitti-ssc" and p["version"] == "1.0" and p["iou_epsilon"] == 1e-15
    assert p["miou_classes"] == list(range(1, 20)) and p["ranges"] == [12.8, 25.6, 51.2]
    assert "invalid" in p["ignore_invalid_policy"] and "fraction" in s
    assert doc["metrics"]["ssc"]["n_frames"] == 1 and doc["header"]["method"] == "tiny"
    with pytest.raises(ValueError, match="computed under"):
        Results.build("sscbench-kitti360-ssc", {"ssc": m})

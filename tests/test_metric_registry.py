"""The metric interface and registry: built-ins implement it, a registered metric reaches the results file, and
``evaluate --metric`` gives the same results as the per-metric flags."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.datasets import SemanticKITTI
from occbench.evaluation.run import DatasetSpec, EvalConfig, MethodSpec, evaluate
from occbench.metrics import PROTOCOLS, FrameArrays, Metric, SSCMetric
from occbench.metrics.registry import _REGISTRY, available_metrics, load_metric, register_metric
from occbench.testing import make_semantickitti_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(tmp_path_factory.mktemp("reg"), {"08": 11}, onboard={"noisy": 0.2}, seed=4)


class OccupiedShare(Metric):
    """Share of voxels the prediction calls occupied (a toy metric: counts that add up)."""

    def __init__(self, protocol):
        super().__init__(protocol)
        self.add_state("occupied", 0)
        self.add_state("total", 0)

    def update_frame(self, pred, frame):
        self.occupied += int(np.count_nonzero(pred))
        self.total += pred.size

    def compute(self):
        return {"occupied_share": self.occupied / self.total, "voxels": self.total}


def test_builtin_metrics_implement_the_interface():
    assert {"ssc", "city", "consistency"} <= set(available_metrics())
    for name in ("ssc", "city", "consistency"):
        m = load_metric(name, PROTOCOLS["semantickitti-ssc"])
        assert isinstance(m, Metric) and m.higher_is_better is True


def test_a_metric_that_is_not_a_metric_subclass_is_refused(monkeypatch):
    class Loose:
        def __init__(self, protocol):
            pass

    monkeypatch.setitem(_REGISTRY.local, "loose", Loose)
    with pytest.raises(TypeError, match="subclass of occbench.metrics.Metric"):
        load_metric("loose", PROTOCOLS["semantickitti-ssc"])


def test_update_frame_scores_the_frames_files_as_the_official_script_does(tree):
    """``update_frame`` against the frame's files read here with numpy as semantic-kitti-api's
    ``evaluate_completion.py`` reads them (uint16 ``.label`` through the completion LUT, bit-packed ``.invalid``),
    with VoxFormer's range crops."""
    from occbench.labels import load_label_map

    lut = load_label_map("semantickitti").lut.astype(np.int64)
    crops = {
        12.8: (slice(0, 64), slice(96, 160)),
        25.6: (slice(0, 128), slice(64, 192)),
        51.2: (slice(None), slice(None)),
    }
    seq = SemanticKITTI(tree, split="val", onboard="noisy")["08"]
    m = SSCMetric()
    ref = {r: np.zeros((20, 20), np.int64) for r in crops}
    for f in seq.frames():
        pred = f.prediction()
        m.update_frame(pred, FrameArrays(f.ground_truth()))
        label, invalid = f.ground_truth_files()
        gt = lut[np.fromfile(label, np.uint16)].reshape(256, 256, 32)
        keep = (gt != 255) & (np.unpackbits(np.fromfile(invalid, np.uint8)).reshape(256, 256, 32) == 0)
        for r, (sx, sy) in crops.items():
            k = keep[sx, sy]
            np.add.at(ref[r], (pred[sx, sy][k].astype(np.int64), gt[sx, sy][k]), 1)
    assert m.n_frames == 3 and ref[51.2].sum() > 0
    for r, conf in ref.items():
        np.testing.assert_array_equal(m.confusion(r), conf)
        tp = np.diag(conf)
        iou = tp / (conf.sum(0) + conf.sum(1) - tp + 1e-15)
        assert m.compute()[f"{r}"]["miou"] == pytest.approx(iou[1:].mean(), rel=1e-14)


def test_a_registered_metric_is_computed_and_written(tree, monkeypatch):
    monkeypatch.setitem(_REGISTRY.local, "occupied-share", OccupiedShare)
    spec = DatasetSpec("semantickitti", str(tree), "val", "noisy")
    res = evaluate(
        EvalConfig(dataset=spec, method=MethodSpec("onboard"), workers=1, metrics=("occupied-share",))
    ).to_dict()
    seq = SemanticKITTI(tree, split="val", onboard="noisy")["08"]
    preds = [f.prediction() for f in seq.frames()]
    assert res["metrics"]["occupied-share"] == {
        "occupied_share": sum(np.count_nonzero(p) for p in preds) / (3 * preds[0].size),
        "voxels": 3 * preds[0].size,
    }
    assert (
        res["metrics"]["ssc"]
        == evaluate(EvalConfig(dataset=spec, method=MethodSpec("onboard"), workers=1, metrics=())).to_dict()["metrics"][
            "ssc"
        ]
    )
    register_metric("occupied-share", OccupiedShare)  # the public spelling of the same thing (undone by monkeypatch)
    assert "occupied-share" in available_metrics()


def _metrics(tree, tmp_path, *args):
    out = tmp_path / f"r{len(list(tmp_path.iterdir()))}.json"
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--onboard",
            "noisy",
            "--method",
            "onboard",
            "-j",
            "1",
            "-q",
            "-o",
            str(out),
            *args,
        ],
    )
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text())["metrics"]


def test_metric_option_and_the_old_flags_give_the_same_results(tree, tmp_path):
    default = _metrics(tree, tmp_path)
    assert {"city_map", "temporal_consistency"} <= set(default)
    assert _metrics(tree, tmp_path, "--metric", "ssc", "--metric", "city", "--metric", "consistency") == default
    assert _metrics(tree, tmp_path, "--city", "--consistency") == default
    only_ssc = _metrics(tree, tmp_path, "--metric", "ssc")
    assert only_ssc == _metrics(tree, tmp_path, "--no-city", "--no-consistency")
    assert "city_map" not in only_ssc and only_ssc["ssc"] == default["ssc"]
    city = _metrics(tree, tmp_path, "--metric", "city")
    assert city == _metrics(tree, tmp_path, "--no-consistency") and "temporal_consistency" not in city


def test_an_unknown_metric_is_a_usage_error(tree, tmp_path):
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--onboard",
            "noisy",
            "--method",
            "onboard",
            "--metric",
            "citi",
            "-o",
            str(tmp_path / "r.json"),
        ],
    )
    assert r.exit_code == 2 and "unknown metric 'citi'" in r.output and "city" in r.output

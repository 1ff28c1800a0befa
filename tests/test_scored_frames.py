"""Scored frames come from the ground-truth files present (as semantic-kitti-api's evaluate_completion.py scores
the .label files it finds); a hidden test split keeps every 5th scan; gaps are a dataset warning, not missing
predictions; occbench-mini's frames do not change."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.datasets import OccbenchMini, SemanticKITTI
from occbench.datasets.check import dataset_warnings
from occbench.errors import FormatError, MissingDataError
from occbench.io.voxels import read_bits, read_label
from occbench.labels import load_label_map
from occbench.metrics import PROTOCOLS, CityMapMetric, FrameArrays, TemporalConsistency
from occbench.results import json_clean
from occbench.testing import make_semantickitti_tree


def _drop_ground_truth(tree, scans):
    for t in scans:
        for ext in ("label", "invalid", "occluded", "bin"):
            (tree / "sequences" / "08" / "voxels" / f"{t:06d}.{ext}").unlink()


def _plain_confusion(tree, sub, scans):
    """The official pattern: official LUT on both grids, mask ignore and invalid, one confusion (rows = prediction)."""
    lut = load_label_map("semantickitti").lut.astype(np.int64)
    conf = np.zeros((20, 20), np.int64)
    for t in scans:
        vox = tree / "sequences" / "08" / "voxels"
        target = lut[read_label(vox / f"{t:06d}.label").reshape(-1)]
        inv = read_bits(vox / f"{t:06d}.invalid").reshape(-1)
        pred = lut[read_label(sub / "sequences" / "08" / "predictions" / f"{t:06d}.label").reshape(-1)]
        m = (target != 255) & (inv != 1)
        conf += np.bincount(pred[m] * 20 + target[m], minlength=400).reshape(20, 20)
    return conf


def test_partial_tree_scores_the_present_ground_truth_like_the_plain_reference(tmp_path):
    tree = make_semantickitti_tree(tmp_path / "t", {"08": 26}, onboard={"noisy": 0.2})  # scans 0, 5, ..., 25 labelled
    _drop_ground_truth(tree, (0, 10, 20, 25))
    sub = tmp_path / "sub"
    shutil.copytree(
        tree / "predictions" / "noisy",
        sub,
        ignore=lambda d, names: [n for n in names if n.endswith(".label") and int(n[:6]) % 5],
    )
    seq = SemanticKITTI(tree, "val")["08"]
    assert seq.num_scans == 26 and seq.labelled_frames == [5, 15]
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--predictions",
            str(sub),
            "-o",
            str(tmp_path / "r.json"),
            "-q",
            "-j",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "dataset warning: sequence 08: ground truth in" in r.output
    assert (
        "is incomplete: 2 of the 6 scans on the every-5th pattern of its 26 poses are present, 4 absent "
        "(first absent: 000000, 000010, 000020, ...); only the 2 scans present are scored" in r.output
    )
    assert "missing" not in r.output and "problem" not in r.output
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["header"]["frames"] == 2
    conf = _plain_confusion(tree, sub, [5, 15])
    tp = np.diag(conf)
    iou = tp / (conf.sum(0) + conf.sum(1) - tp + 1e-15)
    full = res["metrics"]["ssc"]["51.2"]
    assert full["n_evaluated"] == conf.sum()
    assert full["miou"] == pytest.approx(iou[1:].mean(), rel=1e-12)
    assert full["iou"] == pytest.approx(conf[1:, 1:].sum() / (conf.sum() - conf[0, 0]), rel=1e-12)
    # the sequence metrics over exactly those two frames
    ds = SemanticKITTI(tree, "val", onboard="noisy")
    city, tc = CityMapMetric(PROTOCOLS["semantickitti-ssc"]), TemporalConsistency(PROTOCOLS["semantickitti-ssc"])
    for f in ds.frames():
        city.update_frame(f.prediction(), FrameArrays(f.ground_truth(), pose=f.pose))
        tc.update_frame(f.prediction(), FrameArrays(f.ground_truth(), pose=f.pose))
    assert res["metrics"]["city_map"] == json_clean(city.compute())
    assert res["metrics"]["temporal_consistency"] == json_clean(tc.compute())


def test_dataset_warnings_off_pattern_an_error_beyond_the_poses_and_hidden_test_split(tmp_path):
    tree = make_semantickitti_tree(tmp_path / "t", {"08": 11, "11": 11})
    vox = tree / "sequences" / "08" / "voxels"
    assert dataset_warnings(SemanticKITTI(tree, "val")) == []
    shutil.copy(vox / "000005.label", vox / "000003.label")
    seq = SemanticKITTI(tree, "val")["08"]
    assert seq.labelled_frames == [0, 3, 5, 10] and seq.ground_truth_scans == [0, 3, 5, 10]
    w = dataset_warnings(SemanticKITTI(tree, "val"))
    assert len(w) == 1
    assert "1 file(s) off the every-5th pattern (first: 000003); they are scored" in w[0]
    shutil.copy(vox / "000005.label", vox / "000020.label")  # ground truth beyond the poses: the poses are short
    with pytest.raises(FormatError, match=r"poses.txt: expected a pose for every scan \(voxels/ holds scan 000020"):
        SemanticKITTI(tree, "val")["08"].labelled_frames
    (vox / "000020.label").unlink()
    test = SemanticKITTI(tree, "test", sequences=["11"])["11"]  # hidden test split: no ground truth, every 5th scan
    assert test.gt_voxel_dir is None and test.labelled_frames == [0, 5, 10]
    shutil.rmtree(vox)
    with pytest.raises(MissingDataError, match="ground truth of sequence 08"):
        SemanticKITTI(tree, "val")["08"].labelled_frames


def test_occbench_mini_frames_unchanged_every_5th_scan_of_every_split(tmp_path):
    from occbench.synth import MiniConfig, generate_mini

    cfg = MiniConfig(
        seed=3,
        scans={"00": 11, "08": 6, "11": 6},
        splits={"train": ("00",), "val": ("08",), "test": ("11",)},
        size="micro",
        lookahead=0,
        onboard=("sscnet-sim",),
    )
    generate_mini(tmp_path, dataclasses.replace(cfg), progress=False, workers=1)
    for split in ("train", "val", "test"):
        ds = OccbenchMini(tmp_path, split=split, onboard="sscnet-sim", generate=False)
        for seq in ds.sequences:
            assert seq.labelled_frames == list(range(0, seq.num_scans, 5)), (split, seq.name)
        assert dataset_warnings(ds) == []


def test_submission_contents_are_checked_while_scored_each_file_read_once(tmp_path, monkeypatch):
    """Names and sizes are checked before anything is read; each prediction is then read once, by the scoring
    pass, which checks its ids too: a file with unpredictable raw ids or a corrupt .label.gz is listed, exit 3."""
    import occbench.io.predictions as preds
    import occbench.io.voxels as vox

    tree = make_semantickitti_tree(tmp_path / "t", {"08": 16}, onboard={"noisy": 0.2}, compressed=True)
    sub = tmp_path / "sub"
    shutil.copytree(
        tree / "predictions" / "noisy",
        sub,
        ignore=lambda d, names: [n for n in names if n.endswith(".gz") and int(n[:6]) % 5],
    )
    reads: list[str] = []
    for mod, fn in ((vox, "map_label"), (preds, "read_prediction_file")):
        orig = getattr(mod, fn)
        monkeypatch.setattr(mod, fn, lambda p, *a, _o=orig, **k: reads.append(str(p)) or _o(p, *a, **k))
    args = [
        "evaluate",
        "--dataset",
        "semantickitti",
        "--root",
        str(tree),
        "--predictions",
        str(sub),
        "-j",
        "1",
        "--no-city",
    ]
    ok = CliRunner().invoke(main, args)
    assert ok.exit_code == 0, ok.output
    assert "submission OK: 4 prediction files checked" in ok.output
    pred_reads = [r for r in reads if str(sub) in r]
    assert sorted(pred_reads) == sorted(set(pred_reads)) and len(pred_reads) == 4  # each prediction read once
    d = sub / "sequences" / "08" / "predictions"
    (d / "000010.label.gz").write_bytes(b"garbage")
    raw = np.full((256, 256, 32), 40, np.uint16)
    raw[0, 0, 0] = 52  # other-structure maps to ignore: not predictable, even at one voxel
    (d / "000015.label.gz").unlink()
    from occbench.io.predictions import PredictionStore

    PredictionStore(sub).write("08", 15, raw)
    bad = CliRunner().invoke(main, args)
    assert bad.exit_code == 3, bad.output
    assert "2 problem(s) in 4 files checked" in bad.output
    assert "000010.label.gz" in bad.output and "000015.label: raw ids [52] are not predictable" in bad.output
    assert "results written" not in bad.output

"""Onboard predictions written the way public codebases write them convert to, and score like, the submission."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.io.formats import ForeignFormat, ForeignPredictionStore
from occbench.io.predictions import PredictionStore
from occbench.labels import load_label_map
from occbench.testing import make_semantickitti_tree, make_sscbench_kitti360_tree

DRIVE = "2013_05_28_drive_0006_sync"


def write_like_monoscene(
    out: Path, dataset: str, sequence: str, frame_id: str, y_pred: np.ndarray, target: np.ndarray | None = None
) -> Path:
    """The save loop of MonoScene ``monoscene/scripts/generate_output.py`` (SSCBench's copy writes the same):
    ``<output_path>/<config.dataset>/<sequence>/<frame_id>.pkl``, ``pickle.dump`` of a dict with the default
    protocol."""
    out_dict = {"y_pred": y_pred.astype(np.uint16)}
    if target is not None:
        out_dict["target"] = target.astype(np.uint16)
    out_dict["fov_mask_1"] = np.ones(256 * 256 * 32, bool)  # vox2pix: flat boolean mask
    out_dict["cam_k"] = np.eye(3)
    out_dict["T_velo_2_cam"] = np.eye(4)
    write_path = out / dataset / sequence
    write_path.mkdir(parents=True, exist_ok=True)
    filepath = write_path / f"{frame_id}.pkl"
    with open(filepath, "wb") as handle:
        pickle.dump(out_dict, handle)
    return filepath


def monoscene_tree(src: PredictionStore, out: Path, dataset: str, label_map: str, frames=None) -> Path:
    """Every frame of ``src`` (raw-id submission files) as MonoScene writes it: train ids."""
    lm = load_label_map(label_map)
    for seq, t, _ in src.iter_files():
        if frames is None or t in frames:
            write_like_monoscene(out, dataset, seq, f"{t:06d}", lm.to_train(src.read(seq, t)))
    return out


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def metrics_of(path: Path) -> dict:
    return json.loads(path.read_text())["metrics"]


@pytest.mark.parametrize("dataset", ["semantickitti", "sscbench-kitti360"])
def test_monoscene_tree_converts_to_the_submission_and_scores_the_same(tmp_path, dataset):
    if dataset == "semantickitti":
        root = make_semantickitti_tree(tmp_path / "data", {"08": 11}, onboard={"noisy": 0.2})
        seq, folder, lm = "08", "kitti", "semantickitti"
    else:
        root = make_sscbench_kitti360_tree(tmp_path / "data", {DRIVE: 11}, onboard={"noisy": 0.2})
        seq, folder, lm = DRIVE, "kitti_360", "kitti360"
    noisy = PredictionStore(root / "predictions" / "noisy")
    mono = monoscene_tree(noisy, tmp_path / "monoscene-out", folder, lm)
    assert (mono / folder / seq / "000007.pkl").is_file()

    conv = root / "predictions" / "monoscene"
    r = run("convert", mono, conv, "--from", "monoscene-pkl", "--dataset", dataset, "--plain", "-q")
    assert r.exit_code == 0, r.output
    for s, t, p in noisy.iter_files():  # every scan, byte for byte the submission files
        assert PredictionStore(conv).find(s, t).read_bytes() == p.read_bytes()
    # the submission format itself still converts byte for byte to .label.gz (no --from, no --dataset)
    r = run("convert", conv, tmp_path / "gz", "-q")
    assert r.exit_code == 0, r.output
    gz = PredictionStore(tmp_path / "gz")
    assert gz.find(seq, 7).name == "000007.label.gz" and gz.read(seq, 7).tobytes() == noisy.find(seq, 7).read_bytes()

    common = ["--dataset", dataset, "--root", root, "-j", "1", "-q"]
    assert (
        run("evaluate", *common, "--method", "onboard", "--onboard", "noisy", "-o", tmp_path / "a.json").exit_code == 0
    )
    assert (
        run("evaluate", *common, "--method", "onboard", "--onboard", "monoscene", "-o", tmp_path / "b.json").exit_code
        == 0
    )
    assert metrics_of(tmp_path / "a.json") == metrics_of(tmp_path / "b.json")

    # scored directly: MonoScene's val output holds the labelled scans only, like a submission
    direct = monoscene_tree(noisy, tmp_path / "val-out", folder, lm, frames={0, 5, 10})
    r = run("evaluate", *common, "--predictions", direct, "--format", "monoscene-pkl", "-o", tmp_path / "c.json")
    assert r.exit_code == 0, r.output
    assert metrics_of(tmp_path / "c.json") == metrics_of(tmp_path / "a.json")


def test_convert_lists_every_problem_and_writes_the_valid_frames(tmp_path):
    lm = load_label_map("semantickitti")
    good = np.zeros((256, 256, 32), np.uint16)
    good[:, :, :3] = 9
    out = tmp_path / "out"
    write_like_monoscene(out, "kitti", "08", "000000", good)
    write_like_monoscene(out, "kitti", "08", "000005", np.full((256, 256, 32), 20, np.uint16))  # id 20 >= 20 classes
    write_like_monoscene(out, "kitti", "08", "000010", np.zeros((256, 256, 16), np.uint16))  # wrong shape
    with open(out / "kitti" / "08" / "000015.pkl", "wb") as f:
        pickle.dump({"y_pred": good.astype(np.float32)}, f)  # float ids
    with open(out / "kitti" / "08" / "000020.pkl", "wb") as f:
        pickle.dump({"pred": good}, f)  # other key
    (out / "kitti" / "08" / "notes.txt").write_text("x")
    write_like_monoscene(out, "kitti", "99", "000000", good)  # no such sequence
    write_like_monoscene(out, "kitti", "08", "0000000025", good)  # same frame twice
    write_like_monoscene(out, "kitti", "08", "000025", good)
    r = run("convert", out, tmp_path / "conv", "--from", "monoscene-pkl", "--dataset", "semantickitti", "-q")
    assert r.exit_code == 3
    msg = r.output
    assert "7 problem(s)" in msg
    assert "000005.pkl: expected semantickitti train ids 0..19, found ids [20]" in msg
    assert "000010.pkl" in msg and "shape (256, 256, 16)" in msg
    assert "000015.pkl" in msg and "dtype float32" in msg
    assert "000020.pkl: expected a pickled dict with key 'y_pred', found keys ['pred']" in msg
    assert "notes.txt: unexpected file" in msg and "'99' is not a semantickitti sequence" in msg
    assert "several files for frame 25" in msg
    assert "1 files written" in msg
    conv = PredictionStore(tmp_path / "conv")
    assert conv.frames("08") == [0]
    np.testing.assert_array_equal(lm.to_train(conv.read("08", 0)), good)
    # --pkl-key reads OccFormer/Symphonies pickles
    assert (
        run(
            "convert",
            out / "kitti",
            tmp_path / "conv2",
            "--from",
            "monoscene-pkl",
            "--dataset",
            "semantickitti",
            "--pkl-key",
            "pred",
            "-q",
        ).exit_code
        == 3
    )
    assert PredictionStore(tmp_path / "conv2").frames("08") == [20]


def test_label_npy_formats_and_id_spaces(tmp_path):
    lm = load_label_map("kitti360")
    train = np.zeros((256, 256, 32), np.uint8)
    train[:, :, :4] = 7  # road
    train[5, 5, 5] = 17  # other-structure
    raw = lm.to_raw(train)
    # CGFormer without test_mapping: train ids in .label files, submission layout
    (tmp_path / "cg/sequences" / DRIVE / "predictions").mkdir(parents=True)
    train.astype(np.uint16).tofile(tmp_path / "cg/sequences" / DRIVE / "predictions/000005.label")
    # flat uint8 (OccFormer-style) and batch-of-one int64 (argmax) .npy arrays, <seq>/<frame>.npy
    (tmp_path / "np" / DRIVE).mkdir(parents=True)
    np.save(tmp_path / "np" / DRIVE / "000005.npy", train.reshape(-1))
    np.save(tmp_path / "np" / DRIVE / "000010.npy", train[None].astype(np.int64))
    s1 = ForeignPredictionStore(tmp_path / "cg", ForeignFormat("label", "train"), "kitti360")
    s2 = ForeignPredictionStore(tmp_path / "np", ForeignFormat("npy"), "kitti360")
    np.testing.assert_array_equal(s1.read(DRIVE, 5), raw)
    np.testing.assert_array_equal(s2.read(DRIVE, 5), raw)
    np.testing.assert_array_equal(s2.read(DRIVE, 10), raw)
    assert s1.frames(DRIVE) == [5] and s2.frames(DRIVE) == [5, 10]
    # raw ids that map to ignore are not predictions
    bad = raw.copy()
    bad[0, 0, 0] = 71  # trunk: ignore in KITTI-360
    np.save(tmp_path / "np" / DRIVE / "000015.npy", bad)
    with pytest.raises(ValueError, match=r"000015.npy: expected raw ids of kitti360 classes .* found ids \[71\]"):
        ForeignPredictionStore(tmp_path / "np", ForeignFormat("npy", "raw"), "kitti360").read(DRIVE, 15)
    # a pickled-object .npy is refused, not unpickled
    np.save(tmp_path / "np" / DRIVE / "000020.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="000020.npy: expected a .npy array without pickled objects"):
        s2.read(DRIVE, 20)


def test_evaluate_format_options_are_usage_errors_without_predictions(tmp_path):
    r = run("evaluate", "--format", "npy", "--method", "onboard")
    assert r.exit_code == 2 and "--format applies to --predictions" in r.output
    r = run("evaluate", "--ground-truth", "sscbench-npy", "--method", "onboard")
    assert r.exit_code == 2 and "--ground-truth applies to --dataset sscbench-kitti360" in r.output
    r = run("convert", tmp_path, tmp_path / "o", "--from", "npy")
    assert r.exit_code == 2 and "--dataset is required" in r.output

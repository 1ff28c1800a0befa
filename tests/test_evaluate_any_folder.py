"""``occbench evaluate --predictions DIR``: any folder, of any name, on any dataset (mini included), named as the
predictions it is rather than as an onboard model; ``--frames`` scores a chosen subset (partial, off leaderboards)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.datasets import SemanticKITTI
from occbench.evaluation.jobs import format_scans, parse_scans, select_scans
from occbench.leaderboard import InvalidResultsError, load_results
from occbench.synth import MiniConfig, generate_mini
from occbench.testing import make_semantickitti_tree

PICO = MiniConfig(
    seed=5,
    scans={"00": 6, "08": 11, "11": 6},
    splits={"train": ("00",), "val": ("08",), "test": ("11",)},
    onboard=("voxformer-sim",),
    size="pico",
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(tmp_path_factory.mktemp("kitti"), {"08": 46}, onboard={"noisy": 0.2}, seed=3)


def _folder(tree: Path, dest: Path, scans: list[int]) -> Path:
    """A foreign tool's output: the given scans' prediction files (raw ids) in the submission layout."""
    d = dest / "sequences" / "08" / "predictions"
    d.mkdir(parents=True)
    for t in scans:
        shutil.copy(tree / "predictions" / "noisy" / "sequences" / "08" / "predictions" / f"{t:06d}.label", d)
    return dest


def _completion_iou(tree: Path, scans: list[int]) -> float:
    """Completion IoU over the full grid (51.2 m) in plain numpy: occupied = class != 0, voxels whose ground truth
    is 255 (ignored or invalid) left out, counts summed over the frames."""
    seq = SemanticKITTI(tree, split="val", onboard="noisy")["08"]
    inter = union = 0
    for t in scans:
        gt, pred = seq.frame(t).ground_truth(), seq.prediction(t)
        valid = gt != 255
        p, g = (pred != 0) & valid, (gt != 0) & valid
        inter += int(np.count_nonzero(p & g))
        union += int(np.count_nonzero(p | g))
    return inter / union


def test_scans_parse_select_and_format():
    assert parse_scans("0,5,10-20") == ((0, 0), (5, 5), (10, 20))
    labelled = range(0, 50, 5)
    assert select_scans(parse_scans("0,5,10-20"), labelled) == (0, 5, 10, 15, 20)
    assert select_scans(parse_scans(" 21-29 , 3,3"), labelled) == (3, 25)  # a number is kept (checked later)
    with pytest.raises(ValueError, match="frames 21-24: no labelled scan in this range"):
        select_scans(parse_scans("21-24"), labelled)
    assert format_scans([0, 5, 10, 11, 12, 13, 30, 31]) == "0,5,10-13,30-31"
    assert format_scans([]) == ""
    for bad in ("", "a", "5-", "-3", "7-2", "1,,2"):
        with pytest.raises(ValueError, match="expected scan numbers"):
            parse_scans(bad)


def test_five_files_of_a_foreign_folder_score_with_frames(tree, tmp_path):
    scans = [0, 5, 20, 25, 40]
    folder = _folder(tree, tmp_path / "foreign", scans)
    out = tmp_path / "r.json"
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--predictions",
            str(folder),
            "--frames",
            "0,5,20-25,40",
            "-j",
            "1",
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert f"predictions: {folder} on semantickitti val" in r.output and "onboard:" not in r.output
    assert "PARTIAL RUN: 5 chosen frames (--frames 0,5,20,25,40) of the split's 10;" in r.output
    doc = json.loads(out.read_text())
    h = doc["header"]
    assert h["predictions"] == str(folder) and h["dataset"]["onboard"] is None
    assert h["method"]["name"] == "submitted-predictions"
    assert h["frames"] == 5 and h["partial"] == {
        "frames": 5,
        "frames_in_split": 10,
        "max_frames": None,
        "scans": "0,5,20,25,40",
    }
    assert h["dataset"]["fingerprint"]["frames"] == {"08": 5}
    assert doc["metrics"]["ssc"]["51.2"]["iou"] == pytest.approx(_completion_iou(tree, scans), abs=1e-12)
    # the same five files without --frames: the split's other five labelled scans are missing
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--predictions",
            str(folder),
            "-j",
            "1",
            "-q",
            "-o",
            str(tmp_path / "x.json"),
        ],
    )
    assert r.exit_code == 3 and r.output.count(": missing (scan") == 5, r.output
    # a partial run is kept off leaderboards
    with pytest.raises(InvalidResultsError, match="--frames"):
        load_results(tmp_path)


def test_max_frames_needs_only_its_frames_files(tree, tmp_path):
    folder = _folder(tree, tmp_path / "first-three", [0, 5, 10])
    out = tmp_path / "r.json"
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--predictions",
            str(folder),
            "--max-frames",
            "3",
            "-j",
            "1",
            "-q",
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    h = json.loads(out.read_text())["header"]
    assert h["partial"] == {"frames": 3, "frames_in_split": 10, "max_frames": 3}
    assert json.loads(out.read_text())["metrics"]["ssc"]["51.2"]["iou"] == pytest.approx(
        _completion_iou(tree, [0, 5, 10]), abs=1e-12
    )


def test_frames_without_ground_truth_are_refused(tree, tmp_path):
    folder = _folder(tree, tmp_path / "f", [0])
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--predictions",
            str(folder),
            "--frames",
            "0,3,51,6-9",
            "-q",
            "-o",
            str(tmp_path / "x.json"),
        ],
    )
    assert r.exit_code == 1, r.output
    assert "frames 6-9: no labelled scan in this range" in r.output
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--predictions",
            str(folder),
            "--frames",
            "0,3,51",
            "-q",
            "-o",
            str(tmp_path / "x.json"),
        ],
    )
    assert r.exit_code == 1, r.output
    assert "frames 3,51: not labelled scans of split 'val'" in r.output and "sequence 08: 0,5,10,15" in r.output
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--predictions",
            str(folder),
            "--frames",
            "1-",
            "-q",
        ],
    )
    assert r.exit_code == 2 and "--frames" in r.output


def test_a_method_on_chosen_frames(tree, tmp_path):
    out = tmp_path / "m.json"
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
            "--frames",
            "10,35",
            "-j",
            "1",
            "-q",
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["header"]["partial"]["scans"] == "10,35" and doc["header"]["dataset"]["onboard"] == "noisy"
    assert "predictions" not in doc["header"]
    assert doc["metrics"]["ssc"]["51.2"]["iou"] == pytest.approx(_completion_iou(tree, [10, 35]), abs=1e-12)


def test_a_folder_of_any_name_scores_on_mini(tmp_path):
    root = tmp_path / "mini"
    generate_mini(root, PICO, progress=False, workers=1, splits=["val"])
    folder = tmp_path / "my-tool-output"
    shutil.copytree(root / "predictions" / "voxformer-sim", folder)
    every = json.loads((root / "mini.json").read_text())["label_every"]
    for f in (folder / "sequences" / "08" / "predictions").iterdir():  # a submission: the labelled scans only
        if int(f.name[:6]) % every:
            f.unlink()
    out, ref = tmp_path / "sub.json", tmp_path / "onboard.json"
    r = CliRunner().invoke(
        main,
        ["evaluate", "--dataset", "mini", "--root", str(root), "--predictions", str(folder), "-j", "1", "-o", str(out)],
    )
    assert r.exit_code == 0, r.output
    assert f"predictions: {folder} on occbench-mini val [SYNTHETIC mini data]" in r.output
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--dataset",
            "mini",
            "--root",
            str(root),
            "--onboard",
            "voxformer-sim",
            "--method",
            "onboard",
            "-j",
            "1",
            "-q",
            "-o",
            str(ref),
        ],
    )
    assert r.exit_code == 0, r.output
    sub, onb = json.loads(out.read_text()), json.loads(ref.read_text())
    assert sub["header"]["predictions"] == str(folder) and sub["header"]["dataset"]["onboard"] is None
    assert "partial" not in sub["header"]
    assert sub["metrics"]["ssc"] == onb["metrics"]["ssc"]  # the same files scored from disk and through the method
    # the mini's own models are still checked by name
    r = CliRunner().invoke(
        main, ["evaluate", "--dataset", "mini", "--root", str(root), "--onboard", "nope", "--method", "onboard", "-q"]
    )
    assert r.exit_code != 0 and "onboard model 'nope' in occbench-mini" in r.output

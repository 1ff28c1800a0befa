"""``python -m occbench.synth.frequencies``: per-split class frequencies of a generated mini."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from occbench.errors import MissingDataError
from occbench.labels import load_label_map
from occbench.synth import MiniConfig, generate_mini
from occbench.synth.frequencies import frame_counts, frequency_table, main, split_counts

# two train sequences, one val, one test (kept apart under test-ground-truth/); ground truth only
CFG = MiniConfig(
    seed=5,
    scans={"00": 6, "01": 6, "08": 6, "11": 6},
    splits={"train": ("00", "01"), "val": ("08",), "test": ("11",)},
    onboard=(),
    lookahead=5,
    size="freq",
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("freq")
    return root, generate_mini(root, CFG, progress=False, workers=1)


def test_frame_counts_uses_the_official_mask() -> None:
    lm = load_label_map("semantickitti")
    raw = np.zeros((2, 2, 2), np.uint16)
    inv = np.zeros((2, 2, 2), np.uint8)
    raw[0, 0, 0] = 10  # car
    raw[0, 0, 1] = 252  # moving-car -> car
    raw[0, 1, 0] = 10
    inv[0, 1, 0] = 1  # invalid: not counted
    raw[0, 1, 1] = 52  # other-structure -> ignore: not counted
    raw[1, 0, 0] = 60  # lane-marking -> road
    inv[1, 1, 1] = 1  # an invalid empty voxel
    c = frame_counts(raw, inv, lm)
    assert c.shape == (20,) and c.dtype == np.int64
    assert c[1] == 2 and c[9] == 1 and c[0] == 2 and c.sum() == 5


def test_counts_per_split_match_the_generator(tree: tuple[Path, dict]) -> None:
    root, m = tree
    res = split_counts(root)
    assert list(res) == ["train", "val", "test"]
    assert res["train"]["sequences"] == ["00", "01"]
    assert {s: v["frames"] for s, v in res.items()} == {"train": 4, "val": 2, "test": 2}
    # read back from the files, they equal the counts the generator kept in memory (mini.json voxel_counts)
    for split, v in res.items():
        assert v["counts"].tolist() == m["voxel_counts"][split], split
    assert res["test"]["counts"][1:].sum() > 0  # test ground truth is read from test-ground-truth/


def test_table(tree: tuple[Path, dict], capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = tree
    lm = load_label_map("semantickitti")
    res = split_counts(root, lm)
    text = frequency_table(res, lm)
    lines = text.splitlines()
    assert lines[0] == (
        "| class | real SemanticKITTI | mini train (00+01) | mini val (08) | mini test (11) | mini all "
        "| mini all / real |"
    )
    body = {ln.split(" | ")[0][2:]: ln.strip("| ").split(" | ")[1:] for ln in lines[2:]}
    assert [k for k in body if not k.startswith("*")] == list(lm.class_names[1:])
    real = np.asarray(lm.voxel_frequencies[1:], np.float64)
    assert float(body["car"][0].rstrip(" %")) == pytest.approx(100 * real[0] / real.sum(), abs=0.006)
    for col in range(1, 5):  # each split and all splits: shares of the occupied voxels sum to 100 %
        vals = [float(body[c][col].rstrip(" %")) for c in lm.class_names[1:]]
        assert sum(vals) == pytest.approx(100.0, abs=0.2)
    total = sum(v["counts"] for v in res.values())
    share = total[9] / total[1:].sum()
    assert float(body["road"][5]) == pytest.approx(share / (real[8] / real.sum()), abs=0.006)
    assert body["*labelled frames*"][1:4] == ["4", "2", "2"]
    main(["--root", str(root)])
    assert capsys.readouterr().out.strip() == text


def test_missing_frame_is_named(tree: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = tree
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    gone = copy / "test-ground-truth" / "sequences" / "11" / "voxels" / "000005.invalid"
    gone.unlink()
    with pytest.raises(MissingDataError, match="000005.invalid"):
        split_counts(copy)

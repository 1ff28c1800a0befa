"""Poses and calibration that are finite and rigid but absurdly far (1e308 m) are refused naming the file and line,
not later as 'a pose too far from the origin' without either."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.errors import FormatError
from occbench.io.kitti import read_calib, read_poses
from occbench.testing import make_semantickitti_tree


@pytest.fixture()
def tree(tmp_path):
    return make_semantickitti_tree(tmp_path / "kitti", {"08": 6}, onboard={"noisy": 0.2})


def _replace_field(path, line_no, field, value):
    lines = path.read_text().splitlines()
    parts = lines[line_no - 1].split()
    parts[field] = value
    lines[line_no - 1] = " ".join(parts)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("value", ["1e308", "-3e5"])
def test_a_far_pose_names_file_and_line(tree, tmp_path, value):
    poses = tree / "sequences" / "08" / "poses.txt"
    _replace_field(poses, 4, 3, value)  # translation x of scan 3 (line 4)
    with pytest.raises(
        FormatError,
        match=r"poses\.txt: expected camera-0 poses with translations within 100000 m, "
        r"found 1 entry beyond, first at line 4",
    ):
        read_poses(poses)
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
            str(tmp_path / "r.json"),
        ],
    )
    assert r.exit_code == 1 and f"{poses}: expected" in r.output and "line 4" in r.output, r.output


def test_a_far_tr_names_calib_and_line(tree):
    calib = tree / "sequences" / "08" / "calib.txt"
    n = next(i for i, x in enumerate(calib.read_text().splitlines(), 1) if x.startswith("Tr"))
    _replace_field(calib, n, 4, "1e308")  # "Tr:" then 12 numbers: the 4th is the x translation
    with pytest.raises(
        FormatError,
        match=rf"calib\.txt: expected Tr \(velodyne -> cam0\) with translations within 100 m, "
        rf"found 1 entry beyond, first at line {n}",
    ):
        read_calib(calib)


def test_ordinary_poses_still_read(tree):
    assert read_poses(tree / "sequences" / "08" / "poses.txt").shape == (6, 4, 4)
    assert read_calib(tree / "sequences" / "08" / "calib.txt").Tr.shape == (4, 4)

"""Strict calib / poses / times readers: every refusal names the file, the line, what was expected and found."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.datasets import SemanticKITTI
from occbench.errors import FormatError
from occbench.io.kitti import read_calib, read_poses, read_times, write_calib, write_poses
from occbench.testing import make_semantickitti_tree, tiny_calibration


@pytest.fixture()
def calib_lines(tmp_path):
    write_calib(tmp_path / "calib.txt", tiny_calibration())
    return (tmp_path / "calib.txt").read_text().splitlines()


def _calib(tmp_path, lines):
    p = tmp_path / "c.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_calib_with_a_second_tr_line_is_refused(tmp_path, calib_lines):
    other = tiny_calibration().Tr.copy()
    other[:3, 3] += 5.0
    p = _calib(tmp_path, calib_lines + ["Tr: " + " ".join(map(str, other[:3].reshape(-1)))])
    with pytest.raises(FormatError) as e:
        read_calib(p)
    assert (
        str(p) in str(e.value) and "'Tr:' on line 5" in str(e.value) and "second 'Tr:' line on line 6" in str(e.value)
    )


@pytest.mark.parametrize("value,found", [("nan", "'nan' on line 3, column 1"), ("inf", "'inf' on line 3, column 1")])
def test_calib_with_non_finite_p2_is_refused(tmp_path, calib_lines, value, found):
    lines = list(calib_lines)
    lines[2] = "P2: " + " ".join([value] + lines[2].split()[2:])
    with pytest.raises(FormatError, match=found):
        read_calib(_calib(tmp_path, lines))


def test_calib_with_all_zero_p2_is_degenerate(tmp_path, calib_lines):
    lines = list(calib_lines)
    lines[2] = "P2: " + " ".join(["0"] * 12)
    with pytest.raises(FormatError, match=r"P2 \(line 3\).*degenerate"):
        read_calib(_calib(tmp_path, lines))


def test_calib_garbage_number_on_tr_names_line_and_column(tmp_path, calib_lines):
    lines = list(calib_lines)
    tok = lines[4].split()
    tok[3] = "1.2.3"
    lines[4] = " ".join(tok)
    with pytest.raises(FormatError, match=r"line 5: '1\.2\.3' in column 3 is not a number"):
        read_calib(_calib(tmp_path, lines))


def test_calib_line_without_key_and_missing_key(tmp_path, calib_lines):
    with pytest.raises(FormatError, match="line 2"):
        read_calib(_calib(tmp_path, [calib_lines[0], "no colon here"] + calib_lines[1:]))
    with pytest.raises(FormatError, match="a 'P3:' line"):
        read_calib(_calib(tmp_path, calib_lines[:3] + calib_lines[4:]))


def test_nan_in_poses_is_said_as_such(tmp_path):
    T = np.tile(np.eye(4), (4, 1, 1))
    write_poses(tmp_path / "poses.txt", T)
    lines = (tmp_path / "poses.txt").read_text().splitlines()
    lines[2] = " ".join(["nan"] + lines[2].split()[1:])
    (tmp_path / "poses.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError) as e:
        read_poses(tmp_path / "poses.txt")
    msg = str(e.value)
    assert "'nan' on line 3, column 1" in msg and "finite" in msg and "rigid" not in msg


def test_non_finite_times_are_refused(tmp_path):
    (tmp_path / "times.txt").write_text("0.0\n0.1\ninf\n")
    with pytest.raises(FormatError, match="'inf' on line 3"):
        read_times(tmp_path / "times.txt")


@pytest.fixture()
def tree(tmp_path):
    return make_semantickitti_tree(tmp_path / "kitti", {"08": 16}, onboard={"noisy": 0.2})


def test_poses_fewer_than_scans_is_an_error_not_fewer_frames(tree):
    p = tree / "sequences/08/poses.txt"
    p.write_text("".join(p.read_text().splitlines(keepends=True)[:8]))
    (tree / "sequences/08/times.txt").write_text("".join(f"{0.1 * i}\n" for i in range(8)))
    with pytest.raises(FormatError) as e:
        SemanticKITTI(tree, "val", onboard="noisy")["08"].labelled_frames
    assert str(p) in str(e.value) and "voxels/ holds scan 000015" in str(e.value) and "found 8 poses" in str(e.value)
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
            "-q",
            "-j",
            "1",
        ],
    )
    assert r.exit_code == 1 and "a pose for every scan" in r.output, r.output


def test_poses_and_times_of_different_lengths(tree):
    t = tree / "sequences/08/times.txt"
    t.write_text("".join(t.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(FormatError) as e:
        SemanticKITTI(tree, "val", onboard="noisy")["08"].poses
    assert "one pose per line of times.txt (15 lines)" in str(e.value) and "16 poses" in str(e.value)

"""``Results.report()``: the tables ``occbench evaluate`` prints, for a script or notebook."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.results import Results
from occbench.testing import make_semantickitti_tree


def test_report_is_what_evaluate_prints(tmp_path):
    tree = make_semantickitti_tree(tmp_path / "kitti", {"08": 11}, onboard={"noisy": 0.2}, seed=4)
    out = tmp_path / "r.json"
    args = ["evaluate", "--dataset", "semantickitti", "--root", str(tree), "--onboard", "noisy"]
    r = CliRunner().invoke(main, [*args, "--method", "onboard", "-j", "1", "--no-city", "--max-frames", "2", "-o", out])
    assert r.exit_code == 0, r.output
    res = Results.read(out)
    text = res.report()
    assert text in r.output  # the very tables the command printed
    lines = text.splitlines()
    assert lines[0] == "onboard on semantickitti val (onboard: noisy)"
    assert lines[1].startswith("PARTIAL RUN: the first 2 of the split's 3 frames")
    for rng in ("12.8", "25.6", "51.2"):  # each range's row, from the numbers in the file (percent, 2 decimals)
        s = res.ssc(rng)
        row = next(x for x in lines if x.startswith(f"| {rng} m"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert [float(c) for c in cells[1:]] == [round(100 * s[k], 2) for k in ("iou", "precision", "recall", "miou")]
    assert "temporal consistency" in text and "city-level" not in text


def test_write_to_a_folder_says_a_file_is_expected(tmp_path):
    res = Results(protocol={}, header={"a": 1}, metrics={})
    with pytest.raises(IsADirectoryError, match=f"{tmp_path} is a folder; expected the path of the results file"):
        res.write(tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert res.write(tmp_path / "new" / "r.json") == tmp_path / "new" / "r.json"  # a new folder is made for a file

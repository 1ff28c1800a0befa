"""Results files that passed the first schema check but broke the leaderboard or `render distance`: wrong-typed
header fields, a missing onboard, unknown per-class keys; each is exit 5 naming the file (leaderboard) or one line
naming the file (render distance)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from occbench.cli import main

TEMPLATE = json.loads(Path("leaderboards/results/mini-val-voxformer-sim-onboard.json").read_text())
REPORTED = Path("leaderboards/reported")


def _doc(edit):
    d = copy.deepcopy(TEMPLATE)
    edit(d)
    return d


def _many_keys(d):
    per = d["metrics"]["ssc"]["51.2"]["per_class_iou"]
    per.update({f"k{i}": 0.5 for i in range(200_000)})


BAD = {
    "partial-bool.json": lambda d: d["header"].__setitem__("partial", True),
    "partial-text.json": lambda d: d["header"].__setitem__("partial", "half"),
    "partial-counts.json": lambda d: d["header"].__setitem__("partial", {"frames": "3", "frames_in_split": 9}),
    "no-onboard.json": lambda d: d["header"]["dataset"].pop("onboard"),
    "unknown-class.json": lambda d: d["metrics"]["ssc"]["51.2"]["per_class_iou"].__setitem__("not-a-class", 0.5),
    "many-keys.json": _many_keys,
    "city-unknown-class.json": lambda d: d["metrics"]["city_map"]["per_class_iou"].__setitem__("zzz", 0.1),
    "class-names-text.json": lambda d: d["protocol"].__setitem__("class_names", "car"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_leaderboard_refuses_with_exit_5_naming_the_file(tmp_path, name):
    res, out = tmp_path / "results", tmp_path / "out"
    res.mkdir()
    out.mkdir()
    (res / name).write_text(json.dumps(_doc(BAD[name])))
    (res / "good.json").write_text(json.dumps(TEMPLATE))
    r = CliRunner().invoke(
        main, ["leaderboard", "--results", str(res), "--reported", str(REPORTED), "--output", str(out)]
    )
    assert r.exit_code == 5, (r.exit_code, r.output, r.exception)
    assert name in r.output and "good.json" not in r.output
    assert list(out.iterdir()) == []


def test_the_template_itself_renders(tmp_path):
    res, out = tmp_path / "results", tmp_path / "out"
    res.mkdir()
    out.mkdir()
    part = _doc(lambda d: d["header"].__setitem__("partial", {"frames": 3, "frames_in_split": 9, "max_frames": 3}))
    (res / "good.json").write_text(json.dumps(TEMPLATE))
    r = CliRunner().invoke(
        main, ["leaderboard", "--results", str(res), "--reported", str(REPORTED), "--output", str(out)]
    )
    assert r.exit_code == 0, r.output
    (res / "part.json").write_text(json.dumps(part))  # a well-formed partial file: refused as partial, exit 5
    r = CliRunner().invoke(
        main, ["leaderboard", "--results", str(res), "--reported", str(REPORTED), "--output", str(out)]
    )
    assert r.exit_code == 5 and "partial run (3 of 9" in r.output


@pytest.mark.parametrize(
    "content, found",
    [
        (
            lambda: json.dumps(_doc(lambda d: d["metrics"]["distance"].__setitem__("iou", "high"))),
            "metrics.distance.iou",
        ),
        (lambda: json.dumps(_doc(lambda d: d["header"]["method"].__setitem__("name", ["x"]))), "header.method.name"),
        (
            lambda: json.dumps(_doc(lambda d: d["metrics"]["distance"].__setitem__("bin_edges_m", [0, None]))),
            "bin_edges_m",
        ),
        (lambda: "[" * 200_000 + "]" * 200_000, "nesting too deep"),
        (lambda: json.dumps(_doc(lambda d: d.pop("metrics"))), "metrics missing"),
    ],
)
def test_render_distance_refuses_bad_files_in_one_line(tmp_path, content, found):
    p = tmp_path / "r.json"
    p.write_text(content())
    r = CliRunner().invoke(main, ["render", "distance", str(p), "-o", str(tmp_path / "d.png")])
    assert r.exit_code == 1 and not isinstance(r.exception, (KeyError, TypeError, RecursionError)), r.exception
    assert f"error: {p}: expected an occbench results file" in r.output and found in r.output
    assert not (tmp_path / "d.png").exists()


def test_render_distance_still_plots_a_good_file(tmp_path):
    pytest.importorskip("matplotlib")
    p = tmp_path / "my results.json"  # any file name
    p.write_text(json.dumps(TEMPLATE))
    r = CliRunner().invoke(main, ["render", "distance", str(p), "-o", str(tmp_path / "d.png")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "d.png").stat().st_size > 1000

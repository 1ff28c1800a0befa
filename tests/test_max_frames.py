"""``evaluate --max-frames``: a quick partial run, marked as such and kept off leaderboards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.datasets import SemanticKITTI
from occbench.evaluation.run import DatasetSpec, EvalConfig, MethodSpec, evaluate
from occbench.metrics import PROTOCOLS, FrameArrays, SSCMetric
from occbench.testing import make_semantickitti_tree

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_semantickitti_tree(tmp_path_factory.mktemp("mf"), {"08": 21}, onboard={"noisy": 0.2})


def test_the_first_frames_are_scored_and_the_header_says_partial(tree: Path) -> None:
    spec = DatasetSpec("semantickitti", str(tree), "val", "noisy")
    res = evaluate(
        EvalConfig(dataset=spec, method=MethodSpec("onboard"), workers=2, metrics=(), max_frames=2)
    ).to_dict()
    assert res["header"]["frames"] == 2
    assert res["header"]["partial"] == {"frames": 2, "frames_in_split": 5, "max_frames": 2}
    seq = SemanticKITTI(tree, "val", onboard="noisy")["08"]
    ref = SSCMetric(PROTOCOLS["semantickitti-ssc"])
    for t in (0, 5):  # the split's first two labelled scans
        ref.update_frame(seq.prediction(t), FrameArrays(seq.frame(t).ground_truth()))
    for r, v in ref.compute().items():
        got = res["metrics"]["ssc"][r]
        assert (got["iou"], got["miou"], got["n_evaluated"]) == (v["iou"], v["miou"], v["n_evaluated"])
    full = evaluate(
        EvalConfig(dataset=spec, method=MethodSpec("onboard"), workers=1, metrics=(), max_frames=5)
    ).to_dict()
    assert "partial" not in full["header"] and full["header"]["frames"] == 5


def test_cli_flags_the_run_and_leaderboard_refuses_it(tree: Path, tmp_path: Path) -> None:
    res_dir = tmp_path / "results"
    res_dir.mkdir()
    out = res_dir / "quick.json"
    args = [
        "evaluate",
        "--dataset",
        "semantickitti",
        "--root",
        str(tree),
        "--onboard",
        "noisy",
        "--method",
        "onboard",
        "--max-frames",
        "3",
        "--no-city",
        "--no-consistency",
        "-j",
        "1",
        "-o",
        str(out),
    ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "PARTIAL RUN: the first 3 of the split's 5 frames" in r.output
    assert json.loads(out.read_text())["header"]["partial"]["frames"] == 3
    shutil.copytree(REPO / "leaderboards/reported", tmp_path / "reported")
    r = CliRunner().invoke(
        main,
        [
            "leaderboard",
            "--results",
            str(res_dir),
            "--reported",
            str(tmp_path / "reported"),
            "--output",
            str(tmp_path / "lb"),
        ],
    )
    assert r.exit_code == 5 and "quick.json: expected the results of a complete run" in r.output
    assert "found results of a partial run (3 of 5 frames)" in r.output
    assert "occbench synth -o DIR --size tiny" in r.output  # what to do instead
    assert not list((tmp_path / "lb").glob("*.md")) if (tmp_path / "lb").exists() else True
    assert CliRunner().invoke(main, args[:-2] + ["--max-frames", "0"]).exit_code == 2  # usage error

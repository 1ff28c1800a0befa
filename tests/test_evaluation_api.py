"""The scoring run's two inputs (a method on a split, or a Submission), and the scaffold evaluate and refine share."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.evaluation.refine import refine_split
from occbench.evaluation.run import EvalConfig, evaluate
from occbench.evaluation.specs import DatasetSpec, MethodSpec, Submission
from occbench.io.formats import ForeignFormat
from occbench.io.predictions import PredictionStore
from occbench.testing import make_semantickitti_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(tmp_path_factory.mktemp("api"), {"08": 21}, onboard={"noisy": 0.2}, seed=5)


@pytest.fixture(scope="module")
def folder(tree, tmp_path_factory):
    """A submission: the onboard model's predictions of the labelled scans."""
    sub = tmp_path_factory.mktemp("sub") / "model"
    shutil.copytree(tree / "predictions" / "noisy", sub)
    for f in (sub / "sequences" / "08" / "predictions").iterdir():
        if int(f.name[:6]) % 5:
            f.unlink()
    return sub


def _timeless(results: dict) -> dict:
    """The results without what differs from one run to the next (time, machine, command line)."""
    header = {k: v for k, v in results["header"].items() if k not in ("wall_time_s", "environment", "command")}
    return {**results, "header": header}


def test_a_submission_scored_through_the_api_gives_what_the_command_line_writes(tree, folder, tmp_path):
    out = tmp_path / "cli.json"
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
            "-q",
            "-j",
            "1",
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    sub = Submission(str(folder), DatasetSpec("semantickitti", str(tree), "val"), ForeignFormat("label"))
    ds = sub.dataset.open()
    report, files = sub.check_names(ds)
    assert report.ok and len(files) == 5
    assert sub.check_contents(ds, report, files).ok
    api = evaluate(EvalConfig(submission=sub, workers=1, validate=True)).to_dict()
    cli = json.loads(out.read_text())
    assert _timeless(api) == _timeless(cli)
    assert api["header"]["method"] == {"name": "submitted-predictions", "options": {}}
    assert api["header"]["dataset"]["onboard"] is None  # the folder is named, not taken for an onboard model
    assert api["header"]["predictions"] == str(folder)


def test_a_submission_is_given_alone():
    sub = Submission("model", DatasetSpec("semantickitti", "root", "val"))
    with pytest.raises(ValueError, match="not both"):
        EvalConfig(dataset=DatasetSpec(), submission=sub)
    with pytest.raises(ValueError, match="not both"):
        EvalConfig(method=MethodSpec("onboard"), submission=sub)
    with pytest.raises(ValueError, match="or a submission"):
        EvalConfig()


def test_the_submission_reader_names_the_submitted_files(tree, folder):
    """The jobs open the split with the submission as its predictions: ``Frame.prediction_file`` is the file."""
    sub = Submission(str(folder), DatasetSpec("semantickitti", str(tree), "val", "noisy", {"sequences": ["08"]}))
    reader = sub.reader()
    assert reader == DatasetSpec(
        "semantickitti", str(tree), "val", "model", {"sequences": ["08"], "predictions_root": str(folder.parent)}
    )
    seq = reader.open()["08"]
    assert seq.frame(5).prediction_file() == folder / "sequences" / "08" / "predictions" / "000005.label"
    foreign = Submission(str(folder), sub.dataset, ForeignFormat("npy"))
    assert foreign.reader().kwargs["predictions_format"] == ForeignFormat("npy")


def test_refine_writes_the_grids_evaluate_saves_and_scores(tree, tmp_path):
    """One scaffold: the files ``refine`` writes are those ``evaluate --save-predictions`` writes, and scored as a
    submission they give the method's scores."""
    dspec, mspec = DatasetSpec("semantickitti", str(tree), "val", "noisy"), MethodSpec("average-fusion", {"n": 3})
    written, total = refine_split(dspec, mspec, str(tmp_path / "refined"), workers=1)
    assert written == total == 5
    res = evaluate(
        EvalConfig(
            dataset=dspec,
            method=mspec,
            workers=1,
            save_predictions_dir=str(tmp_path / "saved"),
            save_compressed=False,
            metrics=("city",),
        )
    ).to_dict()
    refined, saved = PredictionStore(tmp_path / "refined"), PredictionStore(tmp_path / "saved")
    assert refined.frames("08") == saved.frames("08") == [0, 5, 10, 15, 20]
    for t in saved.frames("08"):
        assert refined.find("08", t).read_bytes() == saved.find("08", t).read_bytes()
    scored = evaluate(
        EvalConfig(submission=Submission(str(tmp_path / "refined"), dspec), workers=1, metrics=("city",))
    ).to_dict()
    assert scored["metrics"] == res["metrics"]
    assert scored["header"]["dataset"]["fingerprint"] == res["header"]["dataset"]["fingerprint"]

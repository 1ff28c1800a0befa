"""The evaluation spine: methods through the registry, workers, resumable outputs, submissions, leaderboards."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import confusion_matrix

from occbench.cli import main
from occbench.datasets import SemanticKITTI
from occbench.evaluation.run import DatasetSpec, EvalConfig, MethodSpec, evaluate, plan_jobs
from occbench.io.predictions import PredictionStore
from occbench.methods import OffboardMethod, available_methods, register_method
from occbench.testing import make_semantickitti_tree

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(tmp_path_factory.mktemp("ev"), {"08": 16}, onboard={"noisy": 0.2}, compressed=True)


def spec(tree, **kw):
    return DatasetSpec("semantickitti", str(tree), "val", "noisy", kw)


def test_reference_methods_registered():
    assert {"onboard", "average-fusion", "occfiner-voting"} <= set(available_methods())


def test_onboard_scores_match_sklearn_oracle(tree):
    res = evaluate(EvalConfig(dataset=spec(tree), method=MethodSpec("onboard"), workers=1, metrics=())).to_dict()
    ds = SemanticKITTI(tree, "val", onboard="noisy")
    cm = np.zeros((20, 20), np.int64)
    for f in ds.frames():
        gt, pr = f.ground_truth().reshape(-1), f.prediction().reshape(-1)
        keep = gt != 255
        cm += confusion_matrix(gt[keep], pr[keep], labels=np.arange(20))  # rows = gt
    tp = np.diag(cm).astype(float)
    iou = tp / (cm.sum(0) + cm.sum(1) - tp + 1e-15)
    occ_tp = cm[1:, 1:].sum()
    comp = occ_tp / (cm.sum() - cm[0, 0])
    full = res["metrics"]["ssc"]["51.2"]
    assert full["iou"] == pytest.approx(comp, abs=1e-12)
    assert full["miou"] == pytest.approx(iou[1:].mean(), abs=1e-12)
    assert res["units"] == "fraction" and res["header"]["frames"] == 4 and res["protocol"]["id"] == "semantickitti-ssc"


def test_identical_numbers_for_any_worker_count(tree):
    a = evaluate(EvalConfig(dataset=spec(tree), method=MethodSpec("onboard"), workers=1)).to_dict()
    b = evaluate(EvalConfig(dataset=spec(tree), method=MethodSpec("onboard"), workers=2)).to_dict()
    assert len(plan_jobs(SemanticKITTI(tree, "val", onboard="noisy"), 2)) > 1
    assert a["metrics"] == b["metrics"]


class _RecordingBar:
    def __init__(self, *a, total=None, **kw):
        self.total, self.calls = total, []
        _RecordingBar.last = self

    def update(self, n):
        self.calls.append(n)

    def close(self):
        pass


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_advances_frame_by_frame_with_any_worker_count(tmp_path, monkeypatch, workers):
    """Worker processes report each frame through a queue, so the bar does not stand still for a whole job."""
    import occbench.evaluation.jobs as ev  # the scaffold evaluate and refine share draws the bar

    big = make_semantickitti_tree(tmp_path, {"08": 40}, onboard={"noisy": 0.2})
    ds = SemanticKITTI(big, "val", onboard="noisy")
    assert max(len(j.targets) for j in plan_jobs(ds, workers)) > 1  # jobs of several frames
    monkeypatch.setattr(ev, "progress_bar", lambda it, desc="", total=None, **kw: _RecordingBar(total=total))
    res = evaluate(EvalConfig(dataset=spec(big), method=MethodSpec("onboard"), workers=workers, metrics=())).to_dict()
    bar = _RecordingBar.last
    assert bar.total == res["header"]["frames"] == sum(len(t) for t in [s.labelled_frames for s in ds.sequences])
    assert bar.calls == [1] * bar.total


@pytest.mark.parametrize("workers", [1, 2])
def test_refine_progress_advances_frame_by_frame_and_counts_resumed_frames(tmp_path, monkeypatch, workers):
    import occbench.evaluation.jobs as rf
    from occbench.evaluation.refine import refine_split

    big = make_semantickitti_tree(tmp_path / "tree", {"08": 40}, onboard={"noisy": 0.2})
    monkeypatch.setattr(rf, "progress_bar", lambda it, desc="", total=None, **kw: _RecordingBar(total=total))
    out = tmp_path / "out"
    written, total = refine_split(spec(big), MethodSpec("onboard"), str(out), workers=workers)
    assert written == total > 2 and _RecordingBar.last.calls == [1] * total
    first = sorted(out.rglob("*.label"))[0]
    first.unlink()  # resume: one frame to write, the others already there
    written, total = refine_split(spec(big), MethodSpec("onboard"), str(out), workers=workers)
    assert written == 1 and _RecordingBar.last.calls == [1] * total


class ShiftedOnboard(OffboardMethod):
    """A third-party method in a few lines: returns the onboard prediction of the previous scan."""

    name = "previous-scan"

    def refine(self, sequence, targets) -> Iterator:
        for t in targets:
            yield t, sequence.prediction(max(t - 1, 0))


def test_third_party_method_and_resume(tree, tmp_path):
    register_method("previous-scan", ShiftedOnboard)
    out = tmp_path / "refined"
    r1 = evaluate(
        EvalConfig(
            dataset=spec(tree),
            method=MethodSpec("previous-scan"),
            workers=1,
            save_predictions_dir=str(out),
            save_compressed=True,
            metrics=(),
        )
    ).to_dict()
    store = PredictionStore(out)
    assert store.frames("08") == [0, 5, 10, 15]
    victim = store.find("08", 5)
    mtime = store.find("08", 10).stat().st_mtime_ns
    victim.unlink()
    r2 = evaluate(
        EvalConfig(
            dataset=spec(tree),
            method=MethodSpec("previous-scan"),
            workers=1,
            save_predictions_dir=str(out),
            save_compressed=True,
            metrics=(),
        )
    ).to_dict()
    assert store.find("08", 10).stat().st_mtime_ns == mtime  # not rewritten
    assert store.exists("08", 5)
    assert r1["metrics"] == r2["metrics"]
    assert not list(out.rglob("*.tmp"))


def test_cli_evaluate_predictions_valid_and_invalid(tree, tmp_path):
    runner = CliRunner()
    sub = tmp_path / "sub"
    shutil.copytree(
        tree / "predictions" / "noisy",
        sub,
        ignore=lambda d, names: [n for n in names if n.endswith(".gz") and int(n[:6]) % 5],
    )  # labelled scans only
    ok = runner.invoke(
        main,
        [
            "evaluate",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--predictions",
            str(sub),
            "--output",
            str(tmp_path / "r.json"),
            "-q",
            "-j",
            "1",
        ],
    )
    assert ok.exit_code == 0, ok.output
    direct = evaluate(EvalConfig(dataset=spec(tree), method=MethodSpec("onboard"), workers=1)).to_dict()
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["ssc"] == direct["metrics"]["ssc"]
    d = sub / "sequences" / "08" / "predictions"
    (d / "000005.label.gz").unlink()  # missing frame
    (d / "000010.label.gz").write_bytes(b"garbage")  # corrupt file
    raw = np.full((256, 256, 32), 52, np.uint16)  # other-structure: maps to ignore, not predictable
    PredictionStore(sub).write("08", 15, raw)
    (d / "000015.label.gz").unlink()
    PredictionStore(sub, compressed=False).write("08", 15, raw)
    (d / "notes.txt").write_text("hi")  # stray file
    shutil.copy(tree / "predictions/noisy/sequences/08/predictions/000003.label.gz", d)  # scan without ground truth
    bad = runner.invoke(
        main, ["evaluate", "--dataset", "semantickitti", "--root", str(tree), "--predictions", str(sub), "-q"]
    )
    assert bad.exit_code == 3
    msg = bad.output
    assert "000005.label: missing" in msg and "000010.label.gz" in msg and "[52]" in msg and "notes.txt" in msg
    assert "scan 3, which has no ground truth" in msg
    assert "5 problem(s)" in msg


def test_cli_missing_root_message(tmp_path):
    r = CliRunner().invoke(
        main, ["evaluate", "--dataset", "semantickitti", "--root", str(tmp_path / "none"), "--method", "onboard", "-q"]
    )
    assert r.exit_code == 1
    assert "none/sequences" in r.output and "downloaded by hand" in r.output


def test_cli_refine_resumable(tree, tmp_path):
    runner = CliRunner()
    args = [
        "refine",
        "--dataset",
        "semantickitti",
        "--root",
        str(tree),
        "--onboard",
        "noisy",
        "--method",
        "onboard",
        "--output",
        str(tmp_path / "o"),
        "-j",
        "1",
    ]
    r = runner.invoke(main, args)
    assert r.exit_code == 0 and "4 of 4 frames written" in r.output
    r = runner.invoke(main, args)
    assert "0 of 4 frames written" in r.output


def test_leaderboard_render_and_check(tree, tmp_path):
    res_dir, out = tmp_path / "results", tmp_path / "lb"
    res_dir.mkdir()
    out.mkdir()
    for m in ("onboard", "previous-scan"):
        register_method("previous-scan", ShiftedOnboard)
        evaluate(
            EvalConfig(dataset=spec(tree), method=MethodSpec(m), workers=1, command=f"occbench evaluate --method {m}")
        ).write(res_dir / f"{m}.json")
    shutil.copytree(REPO / "leaderboards/reported", tmp_path / "reported")
    runner = CliRunner()
    args = ["leaderboard", "--results", str(res_dir), "--reported", str(tmp_path / "reported"), "--output", str(out)]
    assert runner.invoke(main, args + ["--check"]).exit_code == 4
    assert runner.invoke(main, args).exit_code == 0
    assert runner.invoke(main, args + ["--check"]).exit_code == 0
    page = (out / "semantickitti-val.md").read_text()
    measured, reported = page.split("## Reported in the OccFiner paper")
    assert "previous-scan" in measured and "65.38" not in measured
    assert "65.38" in reported and "previous-scan" not in reported
    assert "+0.0%" in measured  # onboard row relative to itself
    (res_dir / "onboard.json").unlink()  # a result removed -> the committed page is stale
    assert runner.invoke(main, args + ["--check"]).exit_code == 4


class _PerOnboardConfig(OffboardMethod):
    name = "per-onboard-config"

    def config(self, onboard=None):
        return {"name": self.name, "options": {}, "for": onboard}

    def refine(self, sequence, targets):
        for t in targets:
            yield t, sequence.prediction(t)


def test_results_header_records_the_method_config_for_the_runs_onboard_model(tree):
    assert _PerOnboardConfig().config()["for"] is None
    register_method("per-onboard-config", _PerOnboardConfig)
    per = evaluate(
        EvalConfig(dataset=spec(tree), method=MethodSpec("per-onboard-config"), workers=1, metrics=())
    ).to_dict()
    assert per["header"]["method"] == {
        "name": "per-onboard-config",
        "options": {},
        "for": "noisy",
        "source": {"registered": "in-process", "object": "test_evaluate:_PerOnboardConfig"},
    }


def test_leaderboard_names_the_data_generation_and_warns_when_rows_mix_them(tmp_path):
    from occbench.leaderboard import render_pages

    res_dir = tmp_path / "results"
    res_dir.mkdir()
    d = json.loads((REPO / "leaderboards/results/mini-val-voxformer-sim-onboard.json").read_text())
    g = d["header"]["dataset"]["generator"]
    g.update(generator_version="7.3", seed=0, size="default")
    for name in ("onboard", "other"):
        d["header"]["method"]["name"] = name
        (res_dir / f"{name}.json").write_text(json.dumps(d))
    page = render_pages(res_dir, REPO / "leaderboards/reported")["occbench-mini-val.md"]
    assert "Data: occbench-mini generator 7.3 (seed 0, size default)." in page
    assert "Rows from different data generations" not in page
    g["generator_version"] = "0.9"
    (res_dir / "other.json").write_text(json.dumps(d))
    page = render_pages(res_dir, REPO / "leaderboards/reported")["occbench-mini-val.md"]
    assert "Rows from different data generations" in page and "generator 0.9 (seed 0, size default): 1 row" in page

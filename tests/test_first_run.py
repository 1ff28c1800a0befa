"""First-run manners: one data cache, no generation into a typo'd --root, results always written (and checked
writable first), scores printed even when the results file cannot be written."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import occbench.synth
from occbench.cli import main
from occbench.errors import MissingDataError, OccbenchError
from occbench.evaluation.run import DatasetSpec, EvalConfig, MethodSpec, evaluate
from occbench.synth.cache import default_data_dir, default_mini_root, ensure_mini
from occbench.synth.config import GENERATOR_VERSION, default_mini_config
from occbench.testing import make_semantickitti_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(tmp_path_factory.mktemp("fr"), {"08": 11}, onboard={"noisy": 0.2})


@pytest.fixture()
def no_generation(monkeypatch, tmp_path):
    """The data cache in a temporary folder, and generation replaced by a recorder (a full mini takes minutes)."""
    calls = []
    monkeypatch.setenv("OCCBENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(occbench.synth, "generate_mini", lambda root, cfg, **kw: calls.append((root, cfg)))
    return calls


def _sk(tree, *args):
    return [
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
        "--no-city",
        "--no-consistency",
        *args,
    ]


def test_one_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv("OCCBENCH_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("OCCBENCH_MINI", str(tmp_path / "elsewhere"))  # not a setting any more
    assert default_data_dir() == tmp_path / "d"
    assert default_mini_root() == tmp_path / "d" / f"mini-v{GENERATOR_VERSION}"
    monkeypatch.delenv("OCCBENCH_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_mini_root() == tmp_path / "home" / ".cache" / "occbench" / f"mini-v{GENERATOR_VERSION}"


def test_typod_root_is_an_error_and_generates_nothing(tmp_path, no_generation):
    typo = tmp_path / "some" / "typo"
    r = CliRunner().invoke(
        main, ["evaluate", "--root", str(typo), "--method", "onboard", "-q", "-o", str(tmp_path / "r.json")]
    )
    assert r.exit_code == 1
    assert f"{typo / 'mini.json'}" in r.output and "holds no generated occbench-mini" in r.output
    assert f"occbench synth --output {typo}" in r.output
    assert no_generation == [] and not typo.exists() and not (tmp_path / "r.json").exists()
    (tmp_path / "other").mkdir()
    with pytest.raises(MissingDataError, match="mini.json"):
        ensure_mini(tmp_path / "other")
    assert no_generation == []


def test_default_cache_generates_on_first_use_and_says_where(no_generation, tmp_path, capsys):
    root = ensure_mini()
    assert root == tmp_path / "cache" / f"mini-v{GENERATOR_VERSION}"
    assert [(r, c.size) for r, c in no_generation] == [(root, "default")]
    err = capsys.readouterr().err
    assert str(root) in err and "1,000 scans" in err and "GB" in err and "minutes" in err and "$OCCBENCH_DATA" in err


def test_explicit_generation_only_into_an_empty_folder(tmp_path, no_generation):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(OccbenchError, match="new or empty folder"):
        ensure_mini(busy, generate=True)
    r = CliRunner().invoke(main, ["synth", "-o", str(busy), "--size", "tiny", "-q"])
    assert r.exit_code == 1 and "new or empty folder" in r.output and "notes.txt" in r.output
    r = CliRunner().invoke(main, ["synth", "-o", str(busy), "--size", "tiny", "-q", "--overwrite"])
    assert r.exit_code == 1 and "new or empty folder" in r.output
    assert no_generation == [] and sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    assert ensure_mini(tmp_path / "new", generate=True) == tmp_path / "new"
    assert [r for r, _ in no_generation] == [tmp_path / "new"]


def test_generation_estimate_scales_with_scans():
    from occbench.synth.cache import generation_estimate

    assert generation_estimate(default_mini_config()).startswith("1,000 scans, about 1.3 GB")


def test_default_results_path_written_and_printed(tree, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, _sk(tree, "-q"))
    assert r.exit_code == 0, r.output
    files = list((tmp_path / "occbench-results").glob("*.json"))
    assert len(files) == 1 and files[0].name.startswith("semantickitti-val-noisy-onboard-")
    assert f"results written to {files[0].relative_to(tmp_path)}" in r.output
    direct = evaluate(
        EvalConfig(
            dataset=DatasetSpec("semantickitti", str(tree), "val", "noisy"),
            method=MethodSpec("onboard"),
            workers=1,
            metrics=(),
        )
    ).to_dict()
    assert json.loads(files[0].read_text())["metrics"]["ssc"] == direct["metrics"]["ssc"]
    r = CliRunner().invoke(main, _sk(tree, "-q"))  # a second run in the same second does not overwrite the first
    assert r.exit_code == 0 and len(list((tmp_path / "occbench-results").glob("*.json"))) == 2
    out_dir = tmp_path / "mine"
    out_dir.mkdir()
    r = CliRunner().invoke(main, _sk(tree, "-q", "-o", str(out_dir)))  # -o FOLDER: the default name inside it
    assert r.exit_code == 0 and len(list(out_dir.glob("semantickitti-val-noisy-onboard-*.json"))) == 1


def test_unwritable_output_is_refused_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("")
    missing_root = tmp_path / "no-dataset-here"
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--dataset",
            "semantickitti",
            "--root",
            str(missing_root),
            "--method",
            "onboard",
            "-q",
            "-o",
            str(tmp_path / "afile" / "r.json"),
        ],
    )
    assert r.exit_code == 2  # the output is checked first: the missing dataset is not even looked at
    assert "'-o' / '--output'" in r.output and "afile is a file, expected a folder" in r.output
    assert "no-dataset-here" not in r.output


def test_results_write_failure_still_prints_the_scores(tree, tmp_path, monkeypatch):
    from occbench.results import Results

    def broken(self, path, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Results, "write", broken)
    out = tmp_path / "r.json"
    r = CliRunner().invoke(main, _sk(tree, "-q", "-o", str(out)))
    assert r.exit_code == 1
    assert f"could not be written to {out} (No space left on device)" in r.output
    direct = evaluate(
        EvalConfig(
            dataset=DatasetSpec("semantickitti", str(tree), "val", "noisy"),
            method=MethodSpec("onboard"),
            workers=1,
            metrics=(),
        )
    ).to_dict()
    iou = direct["metrics"]["ssc"]["51.2"]["iou"]
    assert "mIoU" in r.output and f"{100 * iou:.2f}" in r.output


def test_results_are_written_before_the_tables_are_printed(tree, tmp_path, monkeypatch):
    import click

    out = tmp_path / "r.json"
    printed = []
    echo = click.echo

    def spy(message=None, *a, **kw):
        printed.append((str(message), out.is_file()))
        return echo(message, *a, **kw)

    monkeypatch.setattr(click, "echo", spy)
    r = CliRunner().invoke(main, _sk(tree, "-o", str(out)))
    assert r.exit_code == 0, r.output
    tables = [written for message, written in printed if "mIoU" in message]
    assert tables and all(tables)

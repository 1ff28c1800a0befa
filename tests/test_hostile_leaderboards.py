"""Hostile results files for ``occbench leaderboard``: each bad file is reported by name (exit 5), nothing is
written, page names come from an allowlist and every text cell is inert Markdown/HTML."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.leaderboard import md_text, render_pages

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = json.loads((REPO / "leaderboards/results/mini-val-voxformer-sim-onboard.json").read_text())
REPORTED = REPO / "leaderboards/reported"


def _doc(**changes):
    d = copy.deepcopy(TEMPLATE)
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        cur = d
        for k in path:
            cur = cur[k]
        if value is _DELETE:
            del cur[last]
        else:
            cur[last] = value
    return d


_DELETE = object()


def _run(tmp_path, files: dict[str, object], check=False):
    res, out = tmp_path / "results", tmp_path / "out"
    res.mkdir()
    out.mkdir()
    (out / "README.md").write_text("keep me\n")
    for name, doc in files.items():
        if isinstance(doc, bytes):
            (res / name).write_bytes(doc)
        else:
            (res / name).write_text(doc if isinstance(doc, str) else json.dumps(doc))
    args = ["leaderboard", "--results", str(res), "--reported", str(REPORTED), "--output", str(out)] + (
        ["--check"] if check else []
    )
    return CliRunner().invoke(main, args), out


BAD = {
    "traversal.json": _doc(header__dataset__split="val/../../README"),
    "unknown-dataset.json": _doc(header__dataset__dataset="../x"),
    "script.json": _doc(header__method__name="<script>alert(1)</script>"),
    "img.json": _doc(header__dataset__onboard="<img src=x onerror=alert(1)>"),
    "pipe.json": _doc(header__method__name="evil | 99.99 | 99.99"),
    "newline-command.json": _doc(header__command="occbench evaluate\n# Spoofed heading"),
    "missing-metrics.json": _doc(metrics=_DELETE),
    "missing-header.json": _doc(header=_DELETE),
    "version-999.json": _doc(schema_version=999),
    "nan.json": re.sub(r'"miou": [-0-9.e]+', '"miou": NaN', json.dumps(_doc()), count=1),
    "inf.json": re.sub(r'"iou": [-0-9.e]+', '"iou": Infinity', json.dumps(_doc()), count=1),
    "negative.json": _doc(metrics__city_map__iou=-3),
    "above-one.json": _doc(metrics__temporal_consistency__pair_agreement=7.5),
    "bool.json": _doc(metrics__temporal_consistency__n_observations=True),
    "invalid.json": "{not json",
    "empty.json": "",
    "list.json": "[]",
    "binary.json": b"\xff\xfe{}",
    "wrong-schema.json": _doc(schema="something.else"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_bad_results_file_is_named_and_nothing_is_written(tmp_path, name):
    r, out = _run(tmp_path, {"good.json": _doc(), name: BAD[name]})
    assert r.exit_code == 5, (r.output, r.exception)
    assert name in r.output and "Traceback" not in r.output
    assert "1 invalid file(s); nothing written" in r.output
    assert sorted(p.name for p in out.iterdir()) == ["README.md"] and (out / "README.md").read_text() == "keep me\n"


def test_every_bad_file_is_reported_at_once_and_check_fails_too(tmp_path):
    r, _ = _run(
        tmp_path, {"good.json": _doc(), **{k: BAD[k] for k in ("list.json", "nan.json", "traversal.json")}}, check=True
    )
    assert r.exit_code == 5 and "3 invalid file(s)" in r.output
    assert all(k in r.output for k in ("list.json", "nan.json", "traversal.json"))


def test_unsafe_results_file_names_are_refused(tmp_path):
    r, out = _run(tmp_path, {"a](javascript:x).json": _doc()})
    assert r.exit_code == 5 and "file name" in r.output


def test_free_text_is_escaped_for_markdown_and_html(tmp_path):
    hostile = "<img src=x onerror=alert(1)>|99.99|*b*_i_`c`[l](u)"
    d = _doc()
    pci = d["metrics"]["ssc"]["51.2"]["per_class_iou"]
    pci[hostile] = 0.5
    d["protocol"]["class_names"].append(hostile)  # per-class keys must be class names of the file's protocol
    d["header"]["dataset"]["generator"]["size"] = "<script>x</script>"
    res = tmp_path / "r"
    res.mkdir()
    (res / "x.json").write_text(json.dumps(d))
    page = render_pages(res, REPORTED)["occbench-mini-val.md"]
    assert "<img" not in page and "<script>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;\\|99.99\\|*b*_i_\\`c\\`\\[l\\](u)" in page
    header = next(line for line in page.splitlines() if "&lt;img" in line)
    cells = re.split(r"(?<!\\)\|", header)[1:-1]
    assert len(cells) == 1 + len(pci) - 1  # method + classes other than "empty": no spoofed cells


def test_md_text_leaves_ordinary_names_alone():
    for s in (
        "occfiner-voting",
        "OccFiner (SSCNet-full)",
        "Table 2: SemanticKITTI val, IoU / mIoU at 12.8 m",
        "voxformer-sim",
    ):
        assert md_text(s) == s
    assert md_text("a\nb|c") == "a b\\|c"


def test_committed_results_validate_and_pages_regenerate_byte_identically(monkeypatch):
    monkeypatch.chdir(REPO)  # the command's default folders are the repository's
    r = CliRunner().invoke(main, ["leaderboard", "--check"])
    assert r.exit_code == 0, r.output

"""Malformed data files of strangers become one line naming the file and what was expected: dataset files under
$OCCBENCH_DATASET_PATH (left out and reported; --help and the other datasets still work), JSON that is not
strict JSON (NaN, Infinity, 1e999)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from occbench.errors import FormatError
from occbench.io.files import read_json_document

REPO_CARDS = os.path.join(os.path.dirname(__file__), "..", "occbench", "datasets", "cards")


def _card(**over):
    with open(os.path.join(REPO_CARDS, "semantickitti.json")) as f:
        d = json.load(f)
    d.update(over)
    return d


@pytest.fixture(scope="module")
def broken_cards(tmp_path_factory):
    d = tmp_path_factory.mktemp("cards")
    (d / "badjson.json").write_text("{")
    (d / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (d / "listy.json").write_text(json.dumps(_card(name="listy", results_name="listy", title=["a", "list"])))
    proto = {**_card()["protocol"], "id": "eps-ssc"}
    (d / "eps.json").write_text(
        json.dumps(_card(name="eps", results_name="eps", protocol={**proto, "iou_epsilon": 1e-9})).replace(
            "1e-09", "Infinity"
        )
    )
    (d / "eps2.json").write_text(
        json.dumps(
            _card(name="eps2", results_name="eps2", protocol={**proto, "id": "e2", "iou_epsilon": 1e-9})
        ).replace("1e-09", "1e999")
    )
    (d / "good.json").write_text(json.dumps(_card(name="good", results_name="good", protocol="semantickitti-ssc")))
    return d


def _occbench(args, cards):
    env = {**os.environ, "OCCBENCH_DATASET_PATH": str(cards)}
    return subprocess.run(
        [sys.executable, "-c", "from occbench.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_works_and_names_each_broken_dataset_file(broken_cards):
    r = _occbench(["--help"], broken_cards)
    assert r.returncode == 0 and "Commands:" in r.stdout, r.stderr
    assert "Traceback" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("warning: ")]
    named = sorted(os.path.basename(x.split(": ", 2)[1]) for x in lines)
    assert named == ["badjson.json", "deep.json", "eps.json", "eps2.json", "listy.json"], r.stderr
    assert "'title': a one-line text" in r.stderr and "Infinity (not a JSON number)" in r.stderr
    assert "1e999, too large" in r.stderr and "nesting too deep" in r.stderr


def test_the_other_datasets_still_work_and_the_broken_one_says_why(broken_cards):
    r = _occbench(["evaluate", "--help"], broken_cards)
    assert r.returncode == 0 and "good" in r.stdout and "listy" not in r.stdout.split("--dataset")[1].split("\n")[0]
    r = _occbench(["evaluate", "--dataset", "listy", "-q"], broken_cards)
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "text, found",
    [
        ("NaN", "NaN"),
        ('{"a": -Infinity}', "-Infinity"),
        ("[1e999]", "1e999"),
        ('{"a": 1.5e308, "b": -1e400}', "-1e400"),
    ],
)
def test_json_readers_refuse_what_is_not_strict_json(tmp_path, text, found):
    p = tmp_path / "x.json"
    p.write_text(text)
    with pytest.raises(
        FormatError, match=rf"x\.json: expected a thing \(valid JSON of finite numbers\), found {found}"
    ):
        read_json_document(p, "a thing")
    p.write_text('{"a": 1.5e308, "b": [1, 2.5, "Infinity"], "c": null}')
    assert read_json_document(p, "a thing") == {"a": 1.5e308, "b": [1, 2.5, "Infinity"], "c": None}

"""``mini.json``'s one format (occbench.io.mini_manifest): what the generator writes is what the loader reads, and a
manifest that names a path instead of a plain name is refused before it is written."""

from __future__ import annotations

import json

import pytest

from occbench.errors import FormatError
from occbench.io.mini_manifest import MANIFEST, generated, present_splits, read_manifest, write_manifest

GOOD = {
    "name": "occbench-mini",
    "format_version": 1,
    "seed": 3,
    "size": "pico",
    "splits": {"train": ["00"], "val": ["08"]},
    "onboard": ["a-sim", "b-sim"],
    "sensors": {"a-sim": "camera"},
    "generated": {"val": ["a-sim"]},
    "test_ground_truth": "test-ground-truth",
    "predictions": "predictions",
    "config": {"seed": 3},
}


def test_written_manifest_reads_back_with_sorted_keys(tmp_path):
    write_manifest(tmp_path, GOOD)
    text = (tmp_path / MANIFEST).read_text()
    assert text == json.dumps(GOOD, indent=1, sort_keys=True) + "\n"  # the bytes the generator always wrote
    m = read_manifest(tmp_path)
    assert m == GOOD
    assert generated(m) == {"val": ["a-sim"]} and present_splits(m) == ["val"]
    complete = {k: v for k, v in GOOD.items() if k != "generated"}
    assert generated(complete) == {"train": ["a-sim", "b-sim"], "val": ["a-sim", "b-sim"]}


@pytest.mark.parametrize(
    "change, entry",
    [
        ({"splits": {"val": ["../x"]}}, "'splits'"),
        ({"onboard": ["/etc"]}, "'onboard'"),
        ({"generated": {"val": ["c-sim"]}}, "'generated'"),
        ({"seed": "3"}, "'seed'"),
    ],
)
def test_a_bad_manifest_is_not_written(tmp_path, change, entry):
    with pytest.raises(FormatError, match=entry) as e:
        write_manifest(tmp_path, {**GOOD, **change})
    assert str(tmp_path / MANIFEST) in str(e.value)
    assert not (tmp_path / MANIFEST).exists()

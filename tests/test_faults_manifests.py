"""Hand-edited occbench-mini manifests and damaged generator records: refused naming the file and the entry, never a
traceback, never a path outside the root."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.errors import FormatError
from occbench.io.mini_manifest import read_manifest
from occbench.synth import MiniConfig, generate_mini

PICO = MiniConfig(seed=5, scans={"08": 6}, splits={"val": ("08",)}, onboard=("voxformer-sim",), size="pico")


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini") / "m"
    generate_mini(root, PICO, progress=False, workers=1)
    return root


def _edited(tmp_path, mini, **changes):
    import shutil

    root = tmp_path / "m"
    shutil.copytree(mini, root, symlinks=True)
    m = json.loads((root / "mini.json").read_text())
    for k, v in changes.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    (root / "mini.json").write_text(json.dumps(m))
    return root


BAD = {
    "generated-list": ({"generated": ["val"]}, "'generated'"),
    "generated-unknown-model": ({"generated": {"val": ["nope"]}}, "'generated'"),
    "config-text": ({"config": "garbage"}, "'config'"),
    "sensors-number": ({"sensors": {"voxformer-sim": 5}}, "'sensors'"),
    "sequence-traversal": ({"splits": {"val": ["../../x"]}}, "'splits'"),
    "sequence-absolute": ({"splits": {"val": ["/etc"]}}, "'splits'"),
    "split-unknown": ({"splits": {"evil": ["08"]}}, "'splits'"),
    "onboard-path": ({"onboard": ["../voxformer-sim"]}, "'onboard'"),
    "predictions-path": ({"predictions": "../../elsewhere"}, "'predictions'"),
    "seed-text": ({"seed": "5"}, "'seed'"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_manifest_is_refused_naming_the_entry(tmp_path, mini, name):
    changes, entry = BAD[name]
    root = _edited(tmp_path, mini, **changes)
    with pytest.raises(FormatError, match=entry) as e:
        read_manifest(root)
    assert e.value.path == root / "mini.json"
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--root",
            str(root),
            "--method",
            "onboard",
            "--onboard",
            "voxformer-sim",
            "-q",
            "-j",
            "1",
            "-o",
            str(tmp_path / "r.json"),
        ],
    )
    assert r.exit_code == 1, (r.output, r.exception)
    assert f"{root / 'mini.json'}: expected" in r.output and entry in r.output
    assert not (tmp_path / "r.json").exists()


def test_the_generated_manifest_is_accepted(tmp_path, mini):
    m = read_manifest(mini)
    assert m["splits"] == {"val": ["08"]} and m["onboard"] == ["voxformer-sim"]


def test_config_that_does_not_rebuild_is_named(tmp_path, mini):
    root = _edited(tmp_path, mini, config={"seed": 1})  # an object, but not a configuration
    from occbench.synth.cache import ensure_mini

    with pytest.raises(FormatError, match=r"mini\.json: expected 'config': the generator configuration"):
        ensure_mini(root, splits=["test"])  # a split it lacks: the configuration is needed


def test_a_damaged_generation_record_is_named(tmp_path, mini):
    import shutil

    root = tmp_path / "m"
    shutil.copytree(mini, root)
    rec = root / ".synth" / "08-gt.json"
    assert rec.is_file()
    rec.write_text(rec.read_text()[:20])  # truncated
    (root / "mini.json").unlink()  # the manifest is rebuilt from the records
    with pytest.raises(
        FormatError,
        match=r"08-gt\.json: expected the ground-truth record of a generated sequence"
        r".*delete it",
    ):
        generate_mini(root, PICO, progress=False, workers=1)


@pytest.mark.parametrize(
    "scans",
    [{"08": 1_000_000_000}, {"08": -5}, {"08": "8"}, {"08": 1e3}, {"08": True}, ["08"], {"../x": 6}],
)
def test_scan_counts_of_the_wrong_type_or_size_are_refused(tmp_path, mini, scans):
    """Accepted silently before (a billion scans asked a loop over a billion frames of the tools that read it)."""
    root = _edited(tmp_path, mini, scans=scans)
    with pytest.raises(FormatError, match="'scans'") as e:
        read_manifest(root)
    assert str(root / "mini.json") in str(e.value)


@pytest.mark.parametrize("every", [0, -1, "5", 2.5, 10**9])
def test_label_every_of_the_wrong_type_or_size_is_refused(tmp_path, mini, every):
    root = _edited(tmp_path, mini, label_every=every)
    with pytest.raises(FormatError, match="'label_every'"):
        read_manifest(root)


def test_the_generated_manifest_passes(mini):
    m = read_manifest(mini)
    assert m["scans"] == {"08": 6} and m["label_every"] == 5

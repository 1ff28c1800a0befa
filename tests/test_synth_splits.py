"""occbench-mini generated split by split: what a command needs, the same bytes, resumable, added later."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from test_synth import MICRO, MICRO_DIGEST, content_digest

from occbench.errors import MissingDataError
from occbench.synth import generate_mini


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.relative_to(root).as_posix().startswith(".synth/")
    }


def _gt_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Sequences whose ground-truth job runs from now on (inline generation)."""
    from occbench.synth import generate as G

    runs: list[str] = []
    real = G.run_gt_job

    def counted(root, cfg, seq, tick=None):
        runs.append(seq)
        return real(root, cfg, seq, tick)

    monkeypatch.setattr(G, "run_gt_job", counted)
    return runs


def test_splits_one_by_one_give_the_pinned_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = _gt_runs(monkeypatch)
    m = generate_mini(tmp_path, MICRO, progress=False, workers=1, splits=["val"])
    assert runs == ["08"]
    assert m["generated"] == {"val": ["voxformer-sim", "sscnet-sim"]}
    assert list(m["voxel_counts"]) == ["val"] and list(m["gt_stats"]) == ["08"]
    assert m["splits"] == {"train": ["00"], "val": ["08"], "test": ["11"]}  # the layout is always the whole one
    assert sorted(p.name for p in (tmp_path / "sequences").iterdir()) == ["08"]
    assert json.loads((tmp_path / "mini.json").read_text()) == m
    # asking again for what is there generates nothing
    assert generate_mini(tmp_path, MICRO, progress=False, workers=1, splits=["val"]) == m and runs == ["08"]
    m = generate_mini(tmp_path, MICRO, progress=False, workers=1, splits=["test"], onboard=["sscnet-sim"])
    assert runs == ["08", "11"] and m["generated"] == {"val": ["voxformer-sim", "sscnet-sim"], "test": ["sscnet-sim"]}
    assert not (tmp_path / "predictions" / "voxformer-sim" / "sequences" / "11").exists()
    m = generate_mini(tmp_path, MICRO, progress=False, workers=1)  # all: train, and test's other model, are left
    assert runs == ["08", "11", "00"] and "generated" not in m
    # every file, mini.json included, is byte for byte that of the one-pass generation
    assert content_digest(tmp_path) == MICRO_DIGEST


def test_a_split_is_the_same_with_two_workers(tmp_path: Path) -> None:
    one = generate_mini(tmp_path / "one", MICRO, progress=False, workers=1, splits=["val"])
    two = generate_mini(tmp_path / "two", MICRO, progress=False, workers=2, splits=["val"])
    assert one == two
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


def test_an_interrupted_split_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from occbench.synth import generate as G

    cfg = dataclasses.replace(MICRO, scans={"00": 3, "08": 3, "11": 3}, lookahead=0, onboard=("sscnet-sim",))
    generate_mini(tmp_path, cfg, progress=False, workers=1, splits=["val"])
    before = (tmp_path / "mini.json").read_bytes()

    def boom(*a: object, **k: object) -> dict:
        raise RuntimeError("interrupted")

    monkeypatch.setattr(G, "run_model_job", boom)
    with pytest.raises(RuntimeError):
        generate_mini(tmp_path, cfg, progress=False, workers=1, splits=["train"])
    assert (tmp_path / ".synth" / "00-gt.json").is_file()
    assert (tmp_path / "mini.json").read_bytes() == before  # still says: val only
    monkeypatch.undo()
    runs = _gt_runs(monkeypatch)
    m = generate_mini(tmp_path, cfg, progress=False, workers=1, splits=["train"])
    assert runs == [] and m["generated"] == {
        "train": ["sscnet-sim"],
        "val": ["sscnet-sim"],
    }  # 00's ground truth not redone
    ref = generate_mini(tmp_path / "ref", cfg, progress=False, workers=1, splits=["train", "val"])
    assert ref == m and _files(tmp_path / "ref") == {
        k: v for k, v in _files(tmp_path).items() if not k.startswith("ref/")
    }


def test_unknown_split_and_other_configuration(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown split"):
        generate_mini(tmp_path, MICRO, progress=False, workers=1, splits=["nope"])
    small = dataclasses.replace(MICRO, scans={"00": 2, "08": 2, "11": 2}, lookahead=0, onboard=("sscnet-sim",))
    generate_mini(tmp_path, small, progress=False, workers=1, splits=["test"])
    with pytest.raises(FileExistsError):
        generate_mini(tmp_path, dataclasses.replace(small, seed=9), progress=False, workers=1, splits=["val"])


def test_the_loader_generates_only_the_split_it_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import occbench.synth as S
    from occbench.datasets import OccbenchMini
    from occbench.synth.frequencies import split_counts

    small = dataclasses.replace(MICRO, scans={"00": 2, "08": 2, "11": 2}, lookahead=0, onboard=("sscnet-sim",))
    monkeypatch.setattr(S, "default_mini_config", lambda: small)
    root = tmp_path / "mini"
    ds = OccbenchMini(root, split="val", onboard="sscnet-sim", progress=False, generate=True)  # a new folder
    assert ds.sequence_names == ["08"] and ds.manifest["generated"] == {"val": ["sscnet-sim"]}
    assert not (root / "sequences" / "00").exists()
    assert list(split_counts(root)) == ["val"]
    with pytest.raises(MissingDataError, match="occbench synth --output .* --split train"):
        OccbenchMini(root, split="train", onboard="sscnet-sim", generate=False)
    # a later command adds its split to the same cache, with the configuration the root was made with
    monkeypatch.setattr(S, "default_mini_config", lambda: dataclasses.replace(small, seed=9))
    ds = OccbenchMini(root, split="train", onboard="sscnet-sim", progress=False)
    assert ds.sequence_names == ["00"] and ds.manifest["generated"] == {"train": ["sscnet-sim"], "val": ["sscnet-sim"]}
    assert ds.manifest["seed"] == small.seed


def test_synth_cli_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from occbench.cli import synth as command

    small = dataclasses.replace(MICRO, scans={"00": 2, "08": 2, "11": 2}, lookahead=0)
    monkeypatch.setattr(command, "config_for_size", lambda size, seed: dataclasses.replace(small, seed=seed))
    r = CliRunner().invoke(
        command.synth, ["-o", str(tmp_path), "--split", "test", "--onboard", "sscnet-sim", "--workers", "1", "--quiet"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "mini.json").read_text())["generated"] == {"test": ["sscnet-sim"]}
    r = CliRunner().invoke(
        command.synth, ["-o", str(tmp_path), "--split", "bogus", "--onboard", "sscnet-sim", "--quiet"]
    )
    assert r.exit_code != 0 and "unknown split" in r.output


@pytest.mark.parametrize("workers", [1, 2])
def test_generation_progress_moves_scan_by_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    """Worker processes report every scan (through a queue), weighted by its kind of job: the bar never waits
    for a whole job, and it ends exactly full."""
    import tqdm.auto

    from occbench.runtime import progress

    bars = []

    class Bar:
        def __init__(self, total=None, **kw):
            self.total, self.calls = total, []
            bars.append(self)

        def update(self, n):
            self.calls.append(n)

        def close(self):
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    monkeypatch.setattr(progress, "is_quiet", lambda: False)
    cfg = dataclasses.replace(MICRO, scans={"00": 2, "08": 11, "11": 2}, lookahead=0, onboard=("sscnet-sim",))
    generate_mini(tmp_path, cfg, progress=True, workers=workers, splits=["val"])
    (bar,) = bars
    assert bar.total == 11 * 1 + 11 * 3  # ground truth: 1 unit a scan; predictions: 1 + 2 a model a scan
    assert sum(bar.calls) == bar.total
    assert len(bar.calls) >= 11 + 3 and max(bar.calls) <= 5  # an update per predicted scan and per labelled frame


def test_the_loader_generates_only_the_onboard_model_it_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import occbench.synth as S
    from occbench.datasets import OccbenchMini

    small = dataclasses.replace(MICRO, scans={"00": 2, "08": 3, "11": 2}, lookahead=0)
    monkeypatch.setattr(S, "default_mini_config", lambda: small)
    root = tmp_path / "mini"
    ds = OccbenchMini(root, split="val", onboard="voxformer-sim", progress=False, generate=True)  # a new folder
    assert ds.manifest["generated"] == {"val": ["voxformer-sim"]}
    assert ds["08"].prediction(2).shape == (256, 256, 32)
    assert not (root / "predictions" / "sscnet-sim").exists()
    with pytest.raises(MissingDataError, match="with the predictions of sscnet-sim"):
        OccbenchMini(root, split="val", onboard="sscnet-sim", generate=False)
    runs = _gt_runs(monkeypatch)
    ds = OccbenchMini(root, split="val", onboard="sscnet-sim", progress=False)
    assert runs == [] and ds.manifest["generated"] == {"val": ["voxformer-sim", "sscnet-sim"]}
    with pytest.raises(MissingDataError, match="this mini has: voxformer-sim, sscnet-sim"):
        OccbenchMini(root, split="val", onboard="monoscene-sim", progress=False)
    ref = generate_mini(tmp_path / "ref", small, progress=False, workers=1, splits=["val"])
    assert ref == ds.manifest and _files(tmp_path / "ref") == _files(root)

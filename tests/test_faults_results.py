"""Nothing lost: a results file is created exclusively when it is written (never over another run's file unless
--overwrite), default names are claimed per run, and the start-up write check reserves real space."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import occbench.evaluation.run
from occbench.cli import main
from occbench.evaluation.results_path import check_writable
from occbench.results import Results
from occbench.testing import make_semantickitti_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(tmp_path_factory.mktemp("fr"), {"08": 6}, onboard={"noisy": 0.2})


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
        "-q",
        *args,
    ]


def _results(a: int) -> Results:
    return Results(protocol={}, header={"a": a}, metrics={})


def _a(p):
    return json.loads(p.read_text())["header"]["a"]


def test_write_results_never_replaces_a_file(tmp_path):
    p = tmp_path / "r.json"
    assert _results(1).write(p) == p
    with pytest.raises(FileExistsError):
        _results(2).write(p)
    assert _a(p) == 1
    assert _results(3).write(p, number=True) == tmp_path / "r-2.json"
    assert _results(4).write(p, number=True) == tmp_path / "r-3.json"
    assert _results(5).write(p, overwrite=True) == p and _a(p) == 5
    assert sorted(q.name for q in tmp_path.iterdir()) == ["r-2.json", "r-3.json", "r.json"]  # no temporary file left


def _other_run_writes(monkeypatch, target):
    """While this run computes, 'another run' creates ``target`` (the race of two runs started together)."""
    real = occbench.evaluation.run.evaluate

    def racing(*a, **kw):
        res = real(*a, **kw)
        t = target() if callable(target) else target
        t.parent.mkdir(parents=True, exist_ok=True)
        t.write_text('{"other": "run"}\n')
        return res

    monkeypatch.setattr(occbench.evaluation.run, "evaluate", racing)


def test_same_output_second_run_fails_and_keeps_both(tree, tmp_path, monkeypatch):
    out = tmp_path / "r.json"
    _other_run_writes(monkeypatch, out)
    r = CliRunner().invoke(main, _sk(tree, "-o", str(out)))
    assert r.exit_code == 1, r.output
    assert out.read_text() == '{"other": "run"}\n'  # the other run's file is untouched
    alt = tmp_path / "r-2.json"
    assert f"{out} was created by another run" in r.output and str(alt) in r.output
    assert json.loads(alt.read_text())["metrics"]["ssc"]["51.2"]["iou"] is not None


def test_default_names_are_claimed_at_write_time(tree, tmp_path, monkeypatch):
    import occbench.evaluation.results_path as rp

    monkeypatch.chdir(tmp_path)
    picked = []
    real_default = rp.default_results_path
    monkeypatch.setattr(
        rp, "default_results_path", lambda *a, **kw: picked.append(real_default(*a, **kw)) or picked[-1]
    )
    _other_run_writes(monkeypatch, lambda: tmp_path / picked[0])  # the name picked at start, taken meanwhile
    r = CliRunner().invoke(main, _sk(tree))
    assert r.exit_code == 0, r.output
    files = sorted((tmp_path / "occbench-results").glob("*.json"))
    assert len(files) == 2 and (tmp_path / picked[0]).read_text() == '{"other": "run"}\n'
    mine = picked[0].with_name(picked[0].stem + "-2.json")
    assert (tmp_path / mine).exists() and f"results written to {mine}" in r.output


def test_existing_output_refused_at_start_unless_overwrite(tree, tmp_path):
    out = tmp_path / "r.json"
    out.write_text("keep me")
    r = CliRunner().invoke(main, _sk(tree, "-o", str(out)))
    assert r.exit_code == 2 and f"{out} exists" in r.output and "--overwrite" in r.output
    assert out.read_text() == "keep me"
    r = CliRunner().invoke(main, _sk(tree, "-o", str(out), "--overwrite"))
    assert r.exit_code == 0, r.output
    assert "metrics" in json.loads(out.read_text())


def test_output_with_trailing_slash_is_a_folder(tree, tmp_path):
    """`-o my-results/` names a folder even before it exists: it is created and holds a default-named file (it once
    became a file called `my-results`); a second run adds a second file; without the slash the path is a file."""
    folder = tmp_path / "my-results"
    for _ in range(2):
        r = CliRunner().invoke(main, _sk(tree, "-o", f"{folder}/"))
        assert r.exit_code == 0, r.output
    files = sorted(folder.glob("semantickitti-val-noisy-onboard-*.json"))
    assert folder.is_dir() and len(files) == 2, list(folder.iterdir())
    written = r.output.split("results written to ")[1].strip()
    assert Path(written).parent == folder and Path(written) in files
    assert all("metrics" in json.loads(f.read_text()) for f in files)
    plain = tmp_path / "results-file"
    r = CliRunner().invoke(main, _sk(tree, "-o", str(plain)))
    assert r.exit_code == 0 and plain.is_file(), r.output


def test_write_check_reserves_real_space(tmp_path, monkeypatch):
    def full(fd, off, n):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError, match="No space left on device") as e:
        check_writable(tmp_path / "r.json")
    assert str(tmp_path / "r.json") in str(e.value)
    assert list(tmp_path.iterdir()) == []  # the probe is gone


def _can_mount() -> bool:
    return os.geteuid() == 0 and subprocess.run(["which", "mount"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_mount(), reason="mounting a small tmpfs needs root")
def test_full_disk_is_found_before_the_run(tree, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
    try:
        (mnt / "filler").write_bytes(
            b"\0" * 16 * 1024
        )  # 48 KiB left: more than a tiny probe, less than a results file's reserve
        r = CliRunner().invoke(main, _sk(tree, "-o", str(mnt / "r.json")))
        assert r.exit_code == 2 and "No space left on device" in r.output and str(mnt / "r.json") in r.output
        assert sorted(p.name for p in mnt.iterdir()) == ["filler"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)

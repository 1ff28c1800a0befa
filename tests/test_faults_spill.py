"""The world map's spill files on a full temporary folder: one line naming the file and saying that the temporary
folder ($TMPDIR) is full, exit 1 (a failed write carries no file name of its own)."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import tempfile

import pytest
from click.testing import CliRunner

import occbench.evaluation.run
import occbench.metrics.worldmap as worldmap
from occbench.cli import main
from occbench.testing import make_semantickitti_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(tmp_path_factory.mktemp("spill"), {"08": 12}, onboard={"noisy": 0.2}, speed=4.0)


def _evaluate(tree):
    args = ["evaluate", "--dataset", "semantickitti", "--root", str(tree), "--onboard", "noisy"]
    return CliRunner().invoke(main, [*args, "--method", "onboard", "-j", "1", "--no-consistency"])


def _spill_everything(monkeypatch):
    """Three jobs run inline (records are written for the tiles that jobs share), and records go to disk as soon
    as there are any (the default keeps 128 MiB in memory first)."""
    plan = occbench.evaluation.run.plan_jobs
    monkeypatch.setattr(occbench.evaluation.run, "plan_jobs", lambda ds, workers, *a: plan(ds, 3, *a))
    init = worldmap._Records.__init__

    def tiny(self, width, spill_bytes, spill_dir):
        init(self, width, 0, spill_dir)

    monkeypatch.setattr(worldmap._Records, "__init__", tiny)


def _spill_file(path) -> bool:
    return re.fullmatch(r"part\d\d-\w+\.bin", os.path.basename(path)) is not None


def _check(r, tmp):
    assert r.exit_code == 1 and r.output.count("error:") == 1 and "Traceback" not in r.output, r.output
    line = "error:" + r.output.split("error:")[1]  # (after the progress bar)
    assert len(line.strip().splitlines()) == 1, r.output
    assert re.match(
        rf"error: {re.escape(str(tmp))}/occbench-evaluate-\w+/part\d\d-\w+\.bin: No space left on device", line
    ), line
    assert f"the temporary folder {tmp} is full" in line and "$TMPDIR" in line, line


def test_the_spill_is_written_when_there_is_room(tree, monkeypatch, tmp_path):
    """The same run with room to spill: the spill path is taken (files appear) and the run succeeds."""
    seen = []
    real_open = open

    def spy(path, mode="r", *a, **k):
        if _spill_file(path) and "a" in mode:
            seen.append(str(path))
        return real_open(path, mode, *a, **k)

    _spill_everything(monkeypatch)
    monkeypatch.setattr(worldmap, "open", spy, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    r = _evaluate(tree)
    assert r.exit_code == 0, r.output
    assert seen and all(p.startswith(str(tmp_path)) for p in seen)


def test_a_failed_spill_write_names_the_file_and_the_full_temporary_folder(tree, monkeypatch, tmp_path):
    real_open = open

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def tell(self):
            return self.fh.tell()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")  # as a real write: no file name

    def full(path, mode="r", *a, **k):
        fh = real_open(path, mode, *a, **k)
        return Full(fh) if _spill_file(path) and "a" in mode else fh

    _spill_everything(monkeypatch)
    monkeypatch.setattr(worldmap, "open", full, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _check(_evaluate(tree), tmp_path)


def _can_mount() -> bool:
    return os.geteuid() == 0 and subprocess.run(["which", "mount"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_mount(), reason="mounting a small tmpfs needs root")
def test_a_real_full_temporary_folder(tree, monkeypatch, tmp_path):
    mnt = tmp_path / "tmp"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(mnt)], check=True)
    try:
        _spill_everything(monkeypatch)
        monkeypatch.setattr(tempfile, "tempdir", str(mnt))
        _check(_evaluate(tree), mnt)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_spill_file_cut_short_is_an_error_naming_it(tmp_path):
    """Records read back from a spill file that ends early (cut after it was written) are an error naming the
    file, not a shorter batch."""
    import numpy as np

    from occbench.metrics.testing import synthetic_frame

    rng = np.random.default_rng(1)
    state = worldmap.WorldMapState(spill_dir=tmp_path, spill_bytes=0, keep_frames=0)
    for t in range(3):
        pred, gt, inv = synthetic_frame(rng)
        pose = np.eye(4)
        pose[0, 3] = 40.0 * t  # frames 40 m apart: tiles left behind are sealed and spilled
        state.add(pred, gt, pose, inv)
    state.flush()
    files = sorted(p for p in tmp_path.iterdir() if _spill_file(p))
    assert files, "nothing was spilled"
    state.reduce()  # read back whole: fine
    victim = max(files, key=lambda p: p.stat().st_size)
    with open(victim, "r+b") as fh:
        fh.truncate(victim.stat().st_size - 4)
    with pytest.raises(OSError, match=re.escape(str(victim)) + ".*end early"):
        state.reduce()

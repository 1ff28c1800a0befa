"""A second round of faults: wrong counts of workers, checkpoints that are compressed, truncated or not archives,
... Each is one line naming what is wrong, never a traceback, never memory beyond the file's size."""

from __future__ import annotations

import zipfile

import pytest
from click.testing import CliRunner

from occbench.checkpoints import load_checkpoint_file
from occbench.cli import main
from occbench.errors import FormatError


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "-j", "0"],
        ["evaluate", "--workers", "-3"],
        ["refine", "-j", "0"],
        ["synth", "--workers", "0"],
    ],
)
def test_worker_counts_below_one_are_usage_errors(args):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "is not in the range x>=1" in r.output and "Traceback" not in r.output, r.output


@pytest.fixture
def checkpoint(tmp_path):
    import torch

    p = tmp_path / "ok.pt"
    torch.save({"model_config": {"hidden": 4}, "model": {"w": torch.arange(1000, dtype=torch.int64)}}, p)
    return p


def test_a_checkpoint_as_torch_save_writes_it_loads(checkpoint):
    import torch

    got = load_checkpoint_file(checkpoint)
    assert torch.equal(got["model"]["w"], torch.arange(1000)) and got["model_config"] == {"hidden": 4}


def test_a_compressed_checkpoint_is_refused_before_inflating(checkpoint, tmp_path):
    """A deflated entry can ask for far more memory than the file's size (here 8,000 bytes from a few hundred;
    a 2 MB file can inflate to 2 GB); torch.save never compresses."""
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(checkpoint) as zin, zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for i in zin.infolist():
            z.writestr(i.filename, zin.read(i.filename))
    with pytest.raises(FormatError, match="compressed") as e:
        load_checkpoint_file(bomb)
    assert str(bomb) in str(e.value) and "stored, not compressed" in str(e.value)


@pytest.mark.parametrize(
    "content, found",
    [
        (lambda b: b[: len(b) // 2], "a truncated or damaged zip archive"),
        (lambda b: b"not a checkpoint at all", "neither a zip archive nor a pickle"),
        (lambda b: b"", "neither a zip archive nor a pickle"),
    ],
)
def test_a_damaged_checkpoint_is_one_line_naming_it(checkpoint, tmp_path, content, found):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content(checkpoint.read_bytes()))
    with pytest.raises(FormatError) as e:
        load_checkpoint_file(bad)
    msg = str(e.value)
    assert str(bad) in msg and found in msg and "\n" not in msg, msg


def test_an_output_folder_that_is_a_file_says_so(tmp_path):
    f = tmp_path / "pages"
    f.write_text("a file")
    r = CliRunner().invoke(main, ["leaderboard", "--output", str(f)])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert r.output.strip() == f"error: {f}: File exists (a file stands where a folder is expected)", r.output


def test_a_malformed_ray_address_is_one_line(tmp_path):
    from occbench.testing import make_semantickitti_tree

    root = make_semantickitti_tree(tmp_path, {"08": 2}, onboard={"noisy": 0.2})
    args = ["evaluate", "--dataset", "semantickitti", "--root", str(root), "--onboard", "noisy", "-q"]
    r = CliRunner().invoke(main, [*args, "--method", "onboard", "--executor", "ray", "--address", "head-node"])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "--address 'head-node': expected a Ray cluster address HOST:PORT" in r.output


@pytest.mark.parametrize("address", ["127.0.0.1:6379", "[::1]:6379", "ray://head:10001", "head.example.org:6379"])
def test_ray_addresses_of_every_form_are_accepted(address):
    from occbench.evaluation.ray_session import ADDRESS

    assert ADDRESS.fullmatch(address)


def test_an_address_where_no_cluster_answers_is_one_line_at_once(tmp_path):
    """Ray itself retries for minutes (a warning every 5 s, SIGTERM not heard meanwhile)."""
    import socket
    import time

    from occbench.testing import make_semantickitti_tree

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = make_semantickitti_tree(tmp_path, {"08": 2}, onboard={"noisy": 0.2})
    args = ["evaluate", "--dataset", "semantickitti", "--root", str(root), "--onboard", "noisy", "-q"]
    t0 = time.monotonic()
    r = CliRunner().invoke(main, [*args, "--method", "onboard", "--executor", "ray", "--address", f"127.0.0.1:{port}"])
    assert time.monotonic() - t0 < 60
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert f"--address 127.0.0.1:{port}: no Ray cluster answers there (Connection refused)" in r.output, r.output


def _can_mount() -> bool:
    import os
    import shutil

    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.mark.skipif(not _can_mount(), reason="mounting a small tmpfs needs root")
def test_a_full_disk_mounted_below_the_temporary_folder_is_not_called_the_temporary_folder(tmp_path):
    """The output on a full disk of its own that happens to be mounted below $TMPDIR: the message says to free
    space there, not that the temporary folder is full."""
    import subprocess
    from pathlib import Path

    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
    try:
        (mnt / "fill").write_bytes(b"\0" * 60 * 1024)
        repo = Path(__file__).resolve().parents[1] / "leaderboards"
        r = CliRunner().invoke(
            main,
            [
                "leaderboard",
                "--results",
                str(repo / "results"),
                "--reported",
                str(repo / "reported"),
                "--output",
                str(mnt / "lb"),
            ],
        )
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert r.output.startswith(f"error: {mnt}/lb/") and "No space left on device" in r.output, r.output
        assert "(free some space, or write elsewhere)" in r.output and "TMPDIR" not in r.output, r.output
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    from occbench.testing import make_semantickitti_tree

    return make_semantickitti_tree(tmp_path_factory.mktemp("k"), {"08": 3}, onboard={"noisy": 0.2})


def test_convert_refuses_a_destination_another_writer_holds(kitti, tmp_path):
    """Two converts into one folder would mix their frames and both report success."""
    from occbench.io.folder_lock import LOCK_NAME, folder_lock

    dst = tmp_path / "out"
    with folder_lock(dst):
        r = CliRunner().invoke(main, ["convert", str(kitti / "predictions" / "noisy"), str(dst), "-q"])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert r.output.startswith(f"error: {dst}: ") and "already writing into this folder" in r.output, r.output
    assert not list(dst.rglob("*.label*"))
    r = CliRunner().invoke(main, ["convert", str(kitti / "predictions" / "noisy"), str(dst), "-q"])
    assert r.exit_code == 0, r.output
    assert len(list(dst.rglob("*.label.gz"))) == 3 and not (dst / LOCK_NAME).exists()


def test_convert_removes_what_an_interrupted_convert_left(kitti, tmp_path):
    dst = tmp_path / "out"
    d = dst / "sequences" / "08" / "predictions"
    d.mkdir(parents=True)
    stale = d / ".000001.label.gz.abcd1234.tmp"
    stale.write_bytes(b"half a frame")
    r = CliRunner().invoke(main, ["convert", str(kitti / "predictions" / "noisy"), str(dst), "-q"])
    assert r.exit_code == 0, r.output
    assert not stale.exists() and sorted(p.name for p in d.iterdir()) == [f"{t:06d}.label.gz" for t in range(3)]

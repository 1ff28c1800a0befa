"""Operating-system errors (no space, read-only, a file where a folder belongs) are one line naming the file, exit 1;
a second first-use generation says the folder is busy before announcing anything."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from occbench.cli.group import os_error_message
from occbench.testing import make_semantickitti_tree

OCCBENCH = [sys.executable, "-c", "from occbench.cli import main; main()"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(tmp_path_factory.mktemp("kitti"), {"08": 11}, onboard={"noisy": 0.2})


def _run(args, **env):
    return subprocess.run(OCCBENCH + args, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def _one_line_error(r, *names):
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("error: ")]
    assert len(errors) == 1, r.stderr
    for n in names:
        assert str(n) in errors[0], errors[0]
    return errors[0]


def _refine(tree, out, *more):
    return [
        "refine",
        "--dataset",
        "semantickitti",
        "--root",
        str(tree),
        "--onboard",
        "noisy",
        "--method",
        "onboard",
        "-o",
        str(out),
        "-j",
        "1",
        "-q",
        *more,
    ]


def test_data_cache_that_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("")
    r = _run(
        ["evaluate", "--method", "onboard", "-q", "-o", str(tmp_path / "r.json")], OCCBENCH_DATA=str(tmp_path / "afile")
    )
    line = _one_line_error(r, tmp_path / "afile")
    assert "Not a directory" in line and "generating" not in r.stderr and not (tmp_path / "r.json").exists()


def test_refine_into_a_file(tree, tmp_path):
    (tmp_path / "afile").write_text("keep")
    line = _one_line_error(_run(_refine(tree, tmp_path / "afile")), tmp_path / "afile")
    assert "Not a directory" in line or "File exists" in line
    assert (tmp_path / "afile").read_text() == "keep"


def _mount(mnt: Path, size: str, ro: bool = False) -> None:
    mnt.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}" + (",ro" if ro else ""), "tmpfs", str(mnt)], check=True
    )


def _can_mount() -> bool:
    return os.geteuid() == 0 and sys.platform.startswith("linux")


@pytest.mark.skipif(not _can_mount(), reason="mounting a small tmpfs needs root on Linux")
def test_refine_onto_a_full_disk(tree, tmp_path):
    mnt = tmp_path / "small"
    _mount(mnt, "3m")  # a plain frame is 4 MiB
    try:
        line = _one_line_error(_run(_refine(tree, mnt / "out")), mnt)
        assert "No space left on device" in line
        left = [p.name for p in mnt.rglob("*") if p.is_file()]
        assert not [n for n in left if n.endswith(".tmp") or n == ".occbench.lock"], left
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.skipif(not _can_mount(), reason="mounting a small tmpfs needs root on Linux")
def test_refine_onto_a_read_only_folder(tree, tmp_path):
    mnt = tmp_path / "ro"
    _mount(mnt, "1m", ro=True)
    try:
        line = _one_line_error(_run(_refine(tree, mnt / "out")), mnt / "out")
        assert "Read-only file system" in line
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_messages_say_which_folder_is_full():
    import tempfile

    e = OSError(
        errno.ENOSPC, "No space left on device", os.path.join(tempfile.gettempdir(), "occbench-evaluate-x", "s.bin")
    )
    assert "temporary folder" in os_error_message(e) and "$TMPDIR" in os_error_message(e)
    e = OSError(errno.ENOSPC, "No space left on device", "/data/out/x.label")
    assert os_error_message(e).startswith("/data/out/x.label: No space left on device")
    assert "TMPDIR" not in os_error_message(e)
    e = OSError(errno.ENOSPC, "No space left on device")  # a write that names no file
    assert tempfile.gettempdir() in os_error_message(e) and "$TMPDIR" in os_error_message(e)


def test_a_second_generation_reports_the_lock_before_announcing(tmp_path):
    data = tmp_path / "cache"
    from occbench.synth.config import GENERATOR_VERSION

    root = data / f"mini-v{GENERATOR_VERSION}"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys\nfrom occbench.io.folder_lock import folder_lock\n"
                f"with folder_lock({str(root)!r}):\n    print('locked', flush=True)\n    sys.stdin.read()\n"
            ),
        ],
        stdin=subprocess.PIPE,  # the lock is held until this test ends the holder (not for a fixed time)
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        r = _run(["evaluate", "--method", "onboard", "-q", "-o", str(tmp_path / "r.json")], OCCBENCH_DATA=str(data))
        _one_line_error(r, root)
        assert "another occbench process" in r.stderr and "generating" not in r.stderr, r.stderr
    finally:
        holder.kill()
        holder.wait()

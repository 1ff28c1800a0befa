"""Interruption: workers die with their parent, writers remove their own stale temporary files on resume, and one
writer at a time per output folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.io.folder_lock import LOCK_NAME, FolderBusyError, folder_lock
from occbench.synth import generate_mini
from occbench.testing import descendants as _descendants
from occbench.testing import left_running, make_semantickitti_tree, pico_mini_config
from occbench.testing import process_alive as _alive

PICO = pico_mini_config()


def _kill_main_then_check_orphans(cmd: list[str], want_children: int, env=None) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        deadline = time.time() + 120
        kids: set[int] = set()
        while time.time() < deadline and proc.poll() is None:
            kids = {k for k in _descendants(proc.pid) if _alive(k)}
            if len(kids) >= want_children:
                break
            time.sleep(0.2)
        kids = {k for k in _descendants(proc.pid) if _alive(k)}  # all of them, a worker still starting included
        assert proc.poll() is None and len(kids) >= want_children, f"workers never started ({kids})"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # they go at once, or (still starting) when they reach the check: on a loaded machine seconds later; one
        # left behind stays (it waits for its next job, or does this one to the end, then waits), so a minute tells
        orphans = left_running(kids, 60.0)
        assert not orphans, f"still running 60 s after kill -9 of the main process: {orphans}"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # clean up whatever is left in its session
        except ProcessLookupError:
            pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_evaluate_workers_die_with_a_killed_main_process(tmp_path):
    tree = make_semantickitti_tree(tmp_path / "kitti", {"08": 60}, onboard={"noisy": 0.2})
    occbench = [sys.executable, "-c", "from occbench.cli import main; main()"]
    _kill_main_then_check_orphans(
        occbench
        + [
            "evaluate",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--onboard",
            "noisy",
            "--method",
            "average-fusion",
            "-j",
            "2",
        ],
        want_children=4,  # the resource tracker, the progress bar's manager and the 2 workers: all started
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_synth_workers_die_with_a_killed_main_process(tmp_path):
    occbench = [sys.executable, "-c", "from occbench.cli import main; main()"]
    _kill_main_then_check_orphans(
        occbench + ["synth", "--size", "tiny", "--output", str(tmp_path / "mini"), "--workers", "2", "-q"],
        want_children=3,  # the resource tracker and the 2 workers: all started
    )


def test_refine_removes_its_stale_temporary_files_on_resume(tmp_path):
    tree = make_semantickitti_tree(tmp_path / "kitti", {"08": 11}, onboard={"noisy": 0.2})
    out = tmp_path / "out"
    args = [
        "refine",
        "--dataset",
        "semantickitti",
        "--root",
        str(tree),
        "--onboard",
        "noisy",
        "--method",
        "onboard",
        "--output",
        str(out),
        "-j",
        "1",
        "-q",
    ]
    assert CliRunner().invoke(main, args).exit_code == 0
    d = out / "sequences" / "08" / "predictions"
    (d / "000005.label").unlink()
    stale = [d / ".000005.label.ab12cd34.tmp", d / ".000010.label.gz.zz_99xyz.tmp"]
    for p in stale:
        p.write_bytes(b"half a frame")
    keep = d / ".notes.tmp"  # not a name this writer makes
    keep.write_text("x")
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert not any(p.exists() for p in stale) and keep.exists() and (d / "000005.label").is_file()
    assert not (out / LOCK_NAME).exists()


def test_generation_removes_its_stale_temporary_files_on_resume(tmp_path):
    root = tmp_path / "mini"
    (root / "sequences" / "08" / "voxels").mkdir(parents=True)
    stale = root / "sequences" / "08" / "voxels" / ".000005.label.q1w2e3r4.tmp"
    stale.write_bytes(b"interrupted")
    generate_mini(root, PICO, progress=False, workers=1, splits=["val"])  # the split of sequence 08 is enough
    assert not stale.exists() and not (root / LOCK_NAME).exists()


def test_a_second_synth_into_the_same_folder_gets_a_clear_error(tmp_path):
    root = tmp_path / "mini"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys\n"
                "from occbench.io.folder_lock import folder_lock\n"
                f"with folder_lock({str(root)!r}):\n"
                "    print('locked', flush=True)\n"
                "    sys.stdin.read()\n"  # held until this test ends it (not for a fixed time a slow test outlasts)
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        r = CliRunner().invoke(main, ["synth", "--size", "tiny", "--output", str(root), "-q"])
        assert r.exit_code == 1 and "another occbench process (pid" in r.output and str(root) in r.output, r.output
        assert not (root / "mini.json").exists() and not (root / "sequences").exists()
        r = CliRunner().invoke(main, ["synth", "--size", "tiny", "--output", str(root), "--overwrite", "-q"])
        assert r.exit_code == 1 and "another occbench process" in r.output
    finally:
        holder.kill()
        holder.wait()


def test_refine_into_a_folder_being_written_is_refused(tmp_path):
    tree = make_semantickitti_tree(tmp_path / "kitti", {"08": 6}, onboard={"noisy": 0.2})
    out = tmp_path / "out"
    with folder_lock(out):
        r = CliRunner().invoke(
            main,
            [
                "refine",
                "--dataset",
                "semantickitti",
                "--root",
                str(tree),
                "--onboard",
                "noisy",
                "--method",
                "onboard",
                "--output",
                str(out),
                "-j",
                "1",
                "-q",
            ],
        )
        assert r.exit_code == 1 and "this process itself (pid" in r.output, r.output
        with pytest.raises(FolderBusyError):
            with folder_lock(out):
                pass
    with folder_lock(out):  # released
        pass

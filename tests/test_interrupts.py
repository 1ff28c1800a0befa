"""Ctrl-C and SIGTERM stop `evaluate -j 2`, `refine` and generation promptly: queued jobs cancelled, workers
ended, one line, exit 130 / 143, no lock or temporary file left, completed frames kept (a re-run resumes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from occbench.io.folder_lock import LOCK_NAME
from occbench.testing import descendants as _descendants
from occbench.testing import left_running, make_semantickitti_tree, method_package_env
from occbench.testing import process_alive as _alive

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

SLOW = '''
import os
import time
from occbench.methods import OffboardMethod


class SlowMethod(OffboardMethod):
    name = "slow-test"
    worker_memory_gb = 0.5
    description = "The onboard predictions, SLOW_TEST_S s each (default 0.5; a job's first SLOW_TEST_QUICK at once)."

    def refine(self, sequence, targets):
        quick = int(os.environ.get("SLOW_TEST_QUICK", "0"))
        for i, t in enumerate(targets):
            if i >= quick:
                time.sleep(float(os.environ.get("SLOW_TEST_S", "0.5")))
            yield t, sequence.prediction(t)
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A method that takes 0.5 s a frame (``SLOW_TEST_S``; a job's first ``SLOW_TEST_QUICK`` frames at once),
    registered as an entry point (worker processes find it too)."""
    return method_package_env(tmp_path_factory.mktemp("site"), "slow_test_method", SLOW, "slow-test", "SlowMethod")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(tmp_path_factory.mktemp("kitti"), {"08": 40}, onboard={"noisy": 0.2}, label_every=1)


def _interrupt(cmd, env, sig, ready, kids=3):
    """Start ``cmd``, wait until ``ready()`` and ``kids`` live descendants, send ``sig`` to the main process only;
    return (exit code, seconds from the signal to the exit, stderr, the descendants seen)."""
    # SIGINT as a terminal delivers it: a shell running this suite as a background job without job control
    # starts it with SIGINT ignored, which the command would inherit (and rightly keep)
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        start_new_session=True,
    )
    try:
        deadline = time.time() + 180
        seen: set[int] = set()
        while time.time() < deadline and proc.poll() is None:
            seen = {k for k in _descendants(proc.pid) if _alive(k)}
            if len(seen) >= kids and ready():
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        assert ready() and len(seen) >= kids, f"never ready ({seen})"
        t0 = time.monotonic()
        os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=60)
        return proc.returncode, time.monotonic() - t0, err, seen
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _none_left(kids: set[int]) -> None:
    # the multiprocessing resource tracker exits once it reads the end of its pipe: soon, later on a loaded machine
    left = {k: Path(f"/proc/{k}/cmdline").read_bytes().replace(b"\0", b" ")[:200] for k in left_running(kids)}
    assert not left, f"processes left running: {left}"


def _written(out: Path) -> list[Path]:
    d = out / "sequences" / "08" / "predictions"
    return sorted(d.glob("*.label")) if d.is_dir() else []


def _all_files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


OCCBENCH = [sys.executable, "-c", "from occbench.cli import main; main()"]
LIMIT_S = 6.0  # the promise is 2 s; a loaded shared test machine gets some slack (the previous code took > 15 s)
# each job's first two frames at once, then each frame held 10 minutes: the 4 frames the tests wait for are written
# at once, and the run is then mid-way (workers busy, most frames to go) however fast or loaded the machine is
HOLD = {"SLOW_TEST_QUICK": "2", "SLOW_TEST_S": "600"}


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_refine_stops_promptly_and_resumes(tree, env, tmp_path, sig, code):
    out = tmp_path / "out"
    cmd = OCCBENCH + [
        "refine",
        "--dataset",
        "semantickitti",
        "--root",
        str(tree),
        "--onboard",
        "noisy",
        "--method",
        "slow-test",
        "-o",
        str(out),
        "-j",
        "2",
        "-q",
    ]
    rc, dt, err, kids = _interrupt(cmd, {**env, **HOLD}, sig, lambda: len(_written(out)) >= 4)
    assert rc == code, err
    print(f"stopped {sig.name} in {dt:.2f} s")
    assert dt < LIMIT_S, f"took {dt:.1f} s to stop"
    assert "stopped by SIG" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "leaked semaphore" not in err
    _none_left(kids)
    files = _all_files(out)
    assert LOCK_NAME not in [Path(f).name for f in files] and not [f for f in files if f.endswith(".tmp")], files
    done = _written(out)
    assert 4 <= len(done) < 40  # stopped early, completed frames kept
    # resume; the frames need not be slow any more (the slowness only let the interrupt land mid-run)
    r = subprocess.run(cmd[:-1], env={**env, "SLOW_TEST_S": "0"}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{40 - len(done)} of 40 frames written" in r.stdout


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_evaluate_j2_stops_promptly_without_a_results_file(tree, env, tmp_path, sig, code):
    saved = tmp_path / "saved"
    res = tmp_path / "r.json"
    cmd = OCCBENCH + [
        "evaluate",
        "--dataset",
        "semantickitti",
        "--root",
        str(tree),
        "--onboard",
        "noisy",
        "--method",
        "slow-test",
        "-j",
        "2",
        "--save-predictions",
        str(saved),
        "-o",
        str(res),
    ]
    rc, dt, err, kids = _interrupt(cmd, {**env, **HOLD}, sig, lambda: len(_written(saved)) >= 4)
    assert rc == code, err
    print(f"stopped {sig.name} in {dt:.2f} s")
    assert dt < LIMIT_S, f"took {dt:.1f} s to stop"
    assert "stopped by SIG" in err and "Traceback" not in err and "Aborted" not in err, err
    _none_left(kids)
    assert not res.exists() and list(tmp_path.glob(".r.json*")) == []  # nothing that looks like results
    files = _all_files(saved)
    assert LOCK_NAME not in [Path(f).name for f in files] and not [f for f in files if f.endswith(".tmp")], files


def test_a_killed_progress_channel_does_not_fail_the_run(capsys):
    """The progress bar's manager process killed mid-run: ticks are dropped, the run goes on, one warning."""
    from occbench.runtime.ticks import FrameTicks

    got = []
    with FrameTicks(got.append, "local", inline=False) as ticks:
        ticks.tick()
        deadline = time.time() + 60  # the tick goes through the manager process: soon, later on a loaded machine
        while not got and time.time() < deadline:
            time.sleep(0.05)
        ticks._manager._process.kill()
        ticks._manager._process.join(5)
        for _ in range(3):
            ticks.tick()  # from a worker this would be a chain of connection errors
    assert got == [1]
    err = capsys.readouterr().err
    assert "progress display stopped" in err and "Traceback" not in err

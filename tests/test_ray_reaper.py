"""The watcher of a driver's local Ray instance (:mod:`occbench.evaluation.ray_reaper`): after the driver's ``done``
line or its death it ends what is left of the instance, found by the driver's Ray session name too (an agent whose
raylet ended is adopted by init, so it is no longer below the driver). Stand-in processes carry the session names;
no Ray is started here (tests/test_ray_cluster.py does that)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from occbench.evaluation.ray_reaper import _start_time, session_processes
from occbench.testing import process_alive

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _session(pid: int) -> str:
    return f"/tmp/ray/session_2026-12-06_16-18-06_476470_{pid}/sockets/plasma_store"


def _stand_in(*args: str) -> subprocess.Popen:
    """A sleeping process whose command line carries ``args`` (as a Ray agent's carries its session's paths)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *args])


def _wait_started(procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all(b"time.sleep" in open(f"/proc/{p.pid}/cmdline", "rb").read() for p in procs):
            return
        time.sleep(0.02)
    raise AssertionError("stand-in processes did not start")


def test_session_processes_finds_the_driver_s_session_only_and_only_newer_processes():
    driver = 4242
    before = _stand_in("--session-dir", _session(driver))
    _wait_started([before])
    time.sleep(0.05)  # a later clock tick for the processes below
    since = int(_start_time(before.pid) or 0) + 1
    ours = _stand_in("--object-store-name", _session(driver))
    other_pid = _stand_in("--session-dir", _session(42420))  # 42420 starts with 4242: a different driver
    not_ray = _stand_in("--node-id", "4242")
    procs = [before, ours, other_pid, not_ray]
    try:
        _wait_started(procs)
        found = session_processes(driver, since)
        assert ours.pid in found
        assert found[ours.pid] == _start_time(ours.pid)
        assert before.pid not in found  # started before the watcher: never touched
        assert other_pid.pid not in found and not_ray.pid not in found
        assert ours.pid in session_processes(driver, 0) and before.pid in session_processes(driver, 0)
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.mark.parametrize("driver_ends", ["done", "killed"])
def test_what_is_left_of_the_session_ends_after_done_or_the_driver_s_death(driver_ends):
    """The driver here is a stand-in holding the watcher's stdin; a left-over 'agent' names the driver's session
    and is not below it (as an agent adopted by init is not). Before this rule, ``done`` left such an agent running
    for Ray's 60 s timeout."""
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    reaper = subprocess.Popen(
        [sys.executable, "-m", "occbench.evaluation.ray_reaper", str(driver.pid)], stdin=subprocess.PIPE
    )
    time.sleep(0.3)  # the watcher's own start time comes before the agent's
    agent = _stand_in("--session-dir", _session(driver.pid))
    bystander = _stand_in("--session-dir", _session(driver.pid + 100000))
    try:
        _wait_started([agent, bystander])
        assert reaper.stdin is not None
        if driver_ends == "done":
            reaper.stdin.write(b"done\n")
            reaper.stdin.close()
        else:
            driver.kill()
            reaper.stdin.close()  # the driver's end of the pipe closes with it
        assert reaper.wait(20) == 0
        agent.wait(5)
        assert not process_alive(agent.pid)
        assert process_alive(bystander.pid) and bystander.poll() is None
    finally:
        for p in (agent, bystander, driver, reaper):
            if p.poll() is None:
                p.kill()
            p.wait()

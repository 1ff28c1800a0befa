"""Ends the local Ray instance of a driver that was killed outright (``kill -9``): ``python -m
occbench.evaluation.ray_reaper DRIVER_PID`` with the driver holding its stdin (:mod:`occbench.evaluation.ray_session`).

While the driver lives, this process notes twice a second which of its descendants are Ray's (its executables or
``ray::`` process titles), with their start times. When its stdin ends without the driver's ``done`` line, the
driver is gone: the noted processes still running (same start time, so never a reused process id) get SIGTERM,
then SIGKILL after a second. Without it, Ray's per-node agents outlive a killed driver by about a minute (they
try to report the lost node to Ray's head, already gone, with a 60 s timeout).

After the ``done`` line (the driver shut Ray down itself) the same is done to whatever is still running: a shutdown
while the instance was starting (Ctrl-C or SIGTERM during ``ray.init``) ends the raylet before it ends its two
agents, which then wait out that timeout too. An agent whose raylet ended is no longer below the driver (init
adopts it), and one may have started less than half a second before, unnoted: so the processes of the driver's Ray
session are also found by its name, ``session_<date>_<time>_<driver pid>``, which every Ray process of the instance
carries in its command line, among the processes started after this one. Linux only (reads ``/proc``); standard
library only, so it starts in a fraction of a second.
"""

from __future__ import annotations

import os
import re
import select
import signal
import sys
import time


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            out.setdefault(ppid, []).append(int(name))
    return out


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return None if fields[0] == b"Z" else fields[19].decode()  # a zombie has exited already
    except (OSError, IndexError):
        return None


def _is_ray(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return False
    return cmd.startswith(b"ray::") or b"/ray/" in cmd


def ray_descendants(driver: int) -> dict[int, str]:
    """Ray's processes below ``driver``: process id -> start time."""
    children, out, todo = _children(), {}, [driver]
    while todo:
        for c in children.get(todo.pop(), []):
            todo.append(c)
            if c != os.getpid() and _is_ray(c):
                start = _start_time(c)
                if start is not None:
                    out[c] = start
    return out


def end(processes: dict[int, str], grace: float = 1.0) -> None:
    """SIGTERM the ``processes`` still running, SIGKILL those left after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [p for p, t in processes.items() if _start_time(p) == t]
        for p in alive:
            try:
                os.kill(p, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            alive = [p for p in alive if _start_time(p) == processes[p]]
        if not alive:
            return


def session_processes(driver: int, since: int) -> dict[int, str]:
    """The processes started at or after clock tick ``since`` whose command line names a Ray session of ``driver``
    (``.../session_2026-12-06_16-18-06_476470_<driver>/...``): process id -> start time."""
    name = re.compile(rb"session_[0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{2}-[0-9]{2}-[0-9]{2}_[0-9]+_%d(?![0-9])" % driver)
    out: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        start = _start_time(pid)
        if start is None or int(start) < since:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if name.search(cmd):
            out[pid] = start
    return out


def main(driver: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    since = int(_start_time(os.getpid()) or 0)  # this watcher starts before the driver's ray.init
    noted: dict[int, str] = {}
    while True:
        noted.update(ray_descendants(driver))
        ready, _, _ = select.select([sys.stdin.buffer], [], [], 0.5)
        if ready:
            line = sys.stdin.buffer.readline()
            if line.strip() == b"done" or not line:  # Ray shut down by the driver, or the driver gone
                break
    noted.update(ray_descendants(driver))
    noted.update(session_processes(driver, since))
    end(noted)


if __name__ == "__main__":
    main(int(sys.argv[1]))

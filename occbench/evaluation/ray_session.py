"""Connecting to Ray for ``--executor ray``: a local instance of the run's own, or a cluster at ``--address``.

- A local instance (no address) listens on the loopback interface only, and so does the driver of a cluster
  whose address is on loopback (``127.0.0.1:PORT``, ``localhost:PORT``: several nodes on one machine). Ray
  otherwise replaces a loopback address by the machine's network address, so its servers would listen on
  every interface, or the driver would not reach a cluster started with ``--node-ip-address 127.0.0.1``.
- A local instance is the run's own even where another Ray instance runs on the machine (``ray.init()``
  would join that one, the last started with ``ray start``, or ``$RAY_ADDRESS``).
- A local instance is stopped when the command ends, interrupted included; a driver killed outright
  (``kill -9``) takes Ray's head processes and workers with it, but Ray's two per-node agents wait out a
  60 s timeout first. On Linux a small watcher process (:mod:`occbench.evaluation.ray_reaper`) ends them
  at once.
- Ctrl-C and SIGTERM stop the command while it connects too: Ray's connect waits in native code that does not
  return to Python until it gives up (half a minute and more where something that is not Ray answers), so the
  driver of a cluster connects in a helper thread while the main thread waits, interruptible; and ``ray.init``'s
  own SIGTERM handler (``sys.exit``, no message) is replaced by the command's again
  (:mod:`occbench.runtime.interrupts`).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
ADDRESS = re.compile(r"(ray://)?(\[[0-9A-Fa-f:.]+\]|[^:/\s\[\]]+):[0-9]{1,5}")


def is_loopback(address: str) -> bool:
    """Whether a Ray address ``HOST:PORT`` (or ``ray://HOST:PORT``) names this machine's loopback interface."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in LOOPBACK_HOSTS or host.startswith("127.")


@contextmanager
def _on_loopback(ray: Any) -> Iterator[None]:
    """Ray resolves a loopback node address to the machine's network address unless it runs as a one-machine
    instance (its setting for macOS and Windows): ask for that while connecting."""
    consts: Any = getattr(getattr(ray, "_private", None), "ray_constants", None)
    before = getattr(consts, "ENABLE_RAY_CLUSTER", None)
    if before is None:  # another Ray version: the environment variable it reads at import
        yield
        return
    consts.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        consts.ENABLE_RAY_CLUSTER = before


class RaySession:
    """What :func:`connect` started: :meth:`close` stops it (a no-op when Ray was already connected)."""

    def __init__(self, ray: Any, started: bool, reaper: subprocess.Popen | None = None):
        self.ray = ray
        self.started = started
        self.reaper = reaper

    def close(self) -> None:
        if not self.started:
            return
        try:
            self.ray.shutdown()
        finally:
            if self.reaper is not None:  # tell the watcher the driver ended normally; it ends what is left
                try:
                    assert self.reaper.stdin is not None
                    self.reaper.stdin.write(b"done\n")
                    self.reaper.stdin.close()
                except OSError:
                    pass
                try:
                    self.reaper.wait(5)
                except subprocess.TimeoutExpired:
                    self.reaper.kill()


def connect(address: str | None, workers: int) -> RaySession:
    """Connect this process to Ray: to the cluster at ``address``, or to a new local instance with ``workers`` CPUs
    (``address`` None), unless it is connected already."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("--executor ray needs Ray: pip install 'occbench[ray]'") from None
    if ray.is_initialized():
        return RaySession(ray, started=False)
    if address and address != "auto" and not ADDRESS.fullmatch(address):
        raise ValueError(f"--address {address!r}: expected a Ray cluster address HOST:PORT (or ray://HOST:PORT, auto)")
    if address:
        _check_reachable(address)
        with _on_loopback(ray) if is_loopback(address) else nullcontext():
            # a driver starts no process of Ray's here, so the helper thread may end with the connection made
            _in_helper_thread(lambda: ray.init(address=address, log_to_driver=False))
        return RaySession(ray, started=True)
    reaper = _start_reaper()
    with _on_loopback(ray):
        try:
            # address='local': a new instance, never a cluster that happens to run on this machine (or $RAY_ADDRESS).
            # In the main thread: Ray ends the processes it starts when their starting thread ends (PR_SET_PDEATHSIG)
            with _sigterm_kept():
                ray.init(address="local", num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)
        except BaseException:
            RaySession(ray, True, reaper).close()
            raise
    return RaySession(ray, started=True, reaper=reaper)


@contextmanager
def _sigterm_kept() -> Iterator[None]:
    """``ray.init`` in the main thread replaces the SIGTERM handler by one that calls ``sys.exit(15)``: the
    command's handler is put back afterwards, and a SIGTERM during the call raises
    :class:`~occbench.runtime.interrupts.Terminated` like everywhere else (exit 143 and the interrupt's line)."""
    from occbench.runtime.interrupts import Terminated

    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    except SystemExit as e:
        if e.code == signal.SIGTERM:
            raise Terminated() from None
        raise
    finally:
        if main and before is not None:
            signal.signal(signal.SIGTERM, before)


class _NotMainThreadWarning(logging.Filter):
    """Drops Ray's warning that it set no SIGTERM handler outside the main thread (the command has its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("SIGTERM handler is not set")


def _in_helper_thread(call: Callable[[], object], poll: float = 0.1) -> None:
    """Run ``call`` in a daemon thread while the main thread waits for it, taking Ctrl-C and SIGTERM itself: both are
    blocked in every thread while ``call`` runs (the native threads it starts inherit that) and the main thread
    collects them with ``sigtimedwait``, so a handler the native code installs cannot swallow them. A signal raises
    :class:`KeyboardInterrupt` / :class:`~occbench.runtime.interrupts.Terminated` here at once (the thread is left
    to the process's end); ``call``'s exception is raised here."""
    from occbench.runtime.interrupts import Terminated

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "sigtimedwait"):
        call()
        return
    # only signals this process handles in Python: an ignored one stays ignored, a default one still ends it
    stops = {s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) not in (signal.SIG_DFL, signal.SIG_IGN)}
    failed: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            failed.append(e)

    quiet = _NotMainThreadWarning()
    log = logging.getLogger("ray._private.worker")
    log.addFilter(quiet)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        helper = threading.Thread(target=run, name="occbench-ray-connect", daemon=True)
        helper.start()
        while helper.is_alive():
            if not stops:
                helper.join(poll)
                continue
            got = signal.sigtimedwait(stops, poll)
            if got is not None:
                raise Terminated() if got.si_signo == signal.SIGTERM else KeyboardInterrupt()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
        log.removeFilter(quiet)
    if failed:
        raise failed[0]


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """One line when nothing answers at ``address`` (Ray itself retries for minutes, logging each try)."""
    import socket

    if address == "auto":
        return
    host, port = address.split("://", 1)[-1].rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(
            f"--address {address}: no Ray cluster answers there ({e.strerror or e}); start one (ray start --head) "
            "or leave --address out for a local instance"
        ) from None


def _start_reaper() -> subprocess.Popen | None:
    """The watcher of this driver's local Ray processes (Linux: it reads ``/proc``), started before Ray so that it
    sees every process Ray starts. It runs in a session of its own, so a terminal's Ctrl-C does not reach it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "occbench.evaluation.ray_reaper", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:  # pragma: no cover - no watcher: Ray's agents then end on their own timeout
        return None

"""Ctrl-C and SIGTERM: both stop a command promptly and the same way.

SIGINT raises :class:`KeyboardInterrupt` (Python's default); while a command runs, SIGTERM raises
:class:`Terminated`, a :class:`KeyboardInterrupt` too, so every ``finally`` runs for both: worker processes are
ended (:func:`occbench.evaluation.executors.run_jobs`), folder locks released and temporary files removed. The CLI
then prints one line and exits 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (raised by the handler :func:`stop_on_signals` installs)."""

    signum = int(signal.SIGTERM)


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def exit_code(e: KeyboardInterrupt) -> int:
    """128 + the signal's number: 143 for SIGTERM, 130 for SIGINT."""
    return 128 + (Terminated.signum if isinstance(e, Terminated) else int(signal.SIGINT))


def signal_name(e: KeyboardInterrupt) -> str:
    return "SIGTERM" if isinstance(e, Terminated) else "SIGINT (Ctrl-C)"


# What an interrupted command kept, what it discarded and how to go on, after "workers ended; " (one line).
AFTER_INTERRUPT = {
    "evaluate": "files already complete are kept, nothing half-written is left; no results file was written",
    "refine": "frames already written are kept, nothing half-written is left; run the same command again to resume",
    "convert": (
        "frames already converted are kept, nothing half-written is left; run the same command again to convert "
        "the rest (frames already there are skipped)"
    ),
    "synth": (
        "finished parts (a sequence's ground truth, a chunk's predictions) are kept, nothing half-written is left, "
        "no mini.json was written (not yet a data set); run the same command again to resume"
    ),
}
AFTER_INTERRUPT_OTHERS = "files already complete are kept, nothing half-written is left"


def interrupted_line(e: KeyboardInterrupt, command: str | None) -> str:
    """The one line an interrupted ``occbench COMMAND`` prints: the signal, then what was kept, what was discarded
    and how to go on."""
    after = AFTER_INTERRUPT.get(command or "", AFTER_INTERRUPT_OTHERS)
    return f"occbench: stopped by {signal_name(e)} (workers ended; {after})"


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises :class:`Terminated`; the previous handler is put
    back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM while the block runs (the clean-up after an interrupt must not be cut short by a
    second Ctrl-C); handlers are put back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)

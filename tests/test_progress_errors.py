"""A message printed after a run failed or was interrupted starts on a line of its own: the progress bar the run
left on the terminal's current line (drawn with carriage returns, no newline) is erased first. The captured output
is replayed the way a terminal shows it (a carriage return goes back to the line's start, text overwrites)."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.runtime.interrupts import Terminated
from occbench.runtime.progress import end_progress_lines, progress_bar, set_quiet
from occbench.testing import make_semantickitti_tree


def screen(text: str) -> list[str]:
    """The lines a terminal shows for ``text``."""
    lines: list[str] = []
    cur: list[str] = []
    col = 0
    for ch in text:
        if ch == "\n":
            lines.append("".join(cur).rstrip())
            cur, col = [], 0
        elif ch == "\r":
            col = 0
        else:
            if col < len(cur):
                cur[col] = ch
            else:
                cur.append(ch)
            col += 1
    if cur:
        lines.append("".join(cur).rstrip())
    return [x for x in lines if x]


def test_screen_replays_a_terminal():
    assert screen("\rbar 1/3\rbar 2/3error: x\n") == ["bar 2/3error: x"]  # what the fix prevents
    assert screen("\rbar 2/3\r       \rerror: x\n") == ["error: x"]


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def loud():
    set_quiet(False)
    yield
    set_quiet(False)


def test_end_progress_lines_erases_a_bar_left_mid_line():
    tty = FakeTTY()
    bar = progress_bar(iter(()), desc="work", total=10, file=tty, mininterval=0)
    bar.update(3)  # type: ignore[attr-defined]
    assert screen(tty.getvalue())[-1].startswith("work:  30%")
    end_progress_lines()
    tty.write("error: something\n")
    assert screen(tty.getvalue()) == ["error: something"]
    end_progress_lines()  # nothing left: a no-op


@pytest.fixture(scope="module")
def broken_tree(tmp_path_factory):
    """Three labelled scans, the last one's ground truth truncated: the run fails after a frame or two."""
    tree = make_semantickitti_tree(tmp_path_factory.mktemp("pe"), {"08": 12}, onboard={"noisy": 0.2})
    labels = sorted((tree / "sequences" / "08" / "voxels").glob("*.label"))
    labels[-1].write_bytes(b"x" * 10)
    return tree, labels[-1]


def _evaluate(tree, tmp_path):
    args = ["evaluate", "--dataset", "semantickitti", "--root", str(tree), "--onboard", "noisy", "--method", "onboard"]
    return CliRunner().invoke(main, [*args, "-j", "1", "--no-city", "--no-consistency", "-o", str(tmp_path / "r.json")])


def test_an_error_after_a_drawn_bar_starts_on_its_own_line(broken_tree, tmp_path):
    tree, bad = broken_tree
    r = _evaluate(tree, tmp_path)
    assert r.exit_code == 1, r.output
    assert "evaluate onboard:" in r.output  # a bar was drawn
    shown = screen(r.output)
    assert shown[-1].startswith(f"error: {bad}: expected 4,194,304 bytes"), shown


def test_an_interrupt_after_a_drawn_bar_starts_on_its_own_line(broken_tree, tmp_path, monkeypatch):
    import occbench.evaluation.run

    def interrupted(*a, **k):
        bar = progress_bar(iter(()), desc="evaluate onboard", total=4, mininterval=0)
        bar.update(1)  # type: ignore[attr-defined]
        raise Terminated()

    monkeypatch.setattr(occbench.evaluation.run, "evaluate", interrupted)
    r = _evaluate(broken_tree[0], tmp_path)
    assert r.exit_code == 143, r.output
    assert "evaluate onboard:  25%" in r.output
    assert screen(r.output)[-1].startswith("occbench: stopped by SIGTERM"), screen(r.output)

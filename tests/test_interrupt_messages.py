"""The one line an interrupted command prints says, in one pattern for every command, the signal, what was kept,
what was discarded and how to go on: ``occbench: stopped by SIG... (workers ended; KEPT, DISCARDED; RESUME)``.
The commands run as they ship up to the point where their work starts, which raises the interrupt."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.runtime.interrupts import AFTER_INTERRUPT, Terminated, interrupted_line
from occbench.testing import make_semantickitti_tree

SIGNALS = [(KeyboardInterrupt(), 130, "SIGINT (Ctrl-C)"), (Terminated(), 143, "SIGTERM")]


def _stopped(r, code: int, name: str) -> str:
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert r.exit_code == code, r.output
    assert len(lines) == 1 and lines[0].startswith(f"occbench: stopped by {name} (workers ended; "), r.output
    return lines[0]


@pytest.mark.parametrize("exc, code, name", SIGNALS)
def test_convert_says_what_it_kept_and_how_to_resume(tmp_path, monkeypatch, exc, code, name):
    import occbench.io.predictions

    def interrupted(*a, **k):
        raise exc

    monkeypatch.setattr(occbench.io.predictions, "convert_store", interrupted)
    src = tmp_path / "src"
    (src / "sequences" / "08" / "predictions").mkdir(parents=True)
    line = _stopped(CliRunner().invoke(main, ["convert", str(src), str(tmp_path / "dst"), "-q"]), code, name)
    assert "frames already converted are kept, nothing half-written is left" in line
    assert "run the same command again to convert the rest" in line
    assert "results file" not in line  # convert writes none: before, every command said "no results file was written"


@pytest.mark.parametrize("exc, code, name", SIGNALS)
def test_synth_says_what_it_kept_and_how_to_resume(tmp_path, monkeypatch, exc, code, name):
    import occbench.synth.generate

    def interrupted(*a, **k):
        raise exc

    monkeypatch.setattr(occbench.synth.generate, "generate_mini", interrupted)
    line = _stopped(CliRunner().invoke(main, ["synth", "-o", str(tmp_path / "m"), "-q"]), code, name)
    assert "finished parts (a sequence's ground truth, a chunk's predictions) are kept" in line
    assert "nothing half-written is left, no mini.json was written" in line
    assert line.endswith("run the same command again to resume)")
    assert "results file" not in line


def test_evaluate_keeps_its_line(tmp_path, monkeypatch):
    """The pattern the others follow: evaluate's line is as it was."""
    import occbench.evaluation.run

    def interrupted(*a, **k):
        raise Terminated()

    monkeypatch.setattr(occbench.evaluation.run, "evaluate", interrupted)
    tree = make_semantickitti_tree(tmp_path / "t", {"08": 6}, onboard={"noisy": 0.2})
    args = ["evaluate", "--dataset", "semantickitti", "--root", str(tree), "--onboard", "noisy", "--method", "onboard"]
    line = _stopped(CliRunner().invoke(main, [*args, "-q", "-o", str(tmp_path / "r.json")]), 143, "SIGTERM")
    assert line == (
        "occbench: stopped by SIGTERM (workers ended; files already complete are kept, nothing half-written is left; "
        "no results file was written)"
    )


def test_every_line_follows_one_pattern():
    for command in [*AFTER_INTERRUPT, "leaderboard", None]:
        line = interrupted_line(Terminated(), command)
        assert line.startswith("occbench: stopped by SIGTERM (workers ended; ") and line.endswith(")")
        assert "kept" in line and "nothing half-written is left" in line
    assert "results file" not in interrupted_line(KeyboardInterrupt(), "leaderboard")

"""benchmarks/switch_generator.py: the plan re-runs every committed results file by its own recorded command."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import switch_generator as S  # noqa: E402


def test_plan_rewrites_every_results_file_by_its_recorded_command() -> None:
    plan = S.plan("1.3")
    assert list(plan) == list(S.STEPS)
    written = {}
    for step in ("rows", "ablations", "autolabel"):
        for cmd in plan[step]:
            args = shlex.split(cmd)
            out = args[args.index("-o") + 1] if "-o" in args else args[args.index("--json") + 1]
            written[out] = (step, args)
    committed = sorted(
        p.relative_to(REPO).as_posix()
        for p in [*REPO.glob("leaderboards/results/mini-*.json"), *REPO.glob("leaderboards/ablations/mini-val-*.json")]
    )
    assert committed and set(committed) <= set(written)
    for path in committed:  # the same method, model and options as recorded, only the output is the file itself
        recorded = shlex.split(json.loads((REPO / path).read_text())["header"]["command"])
        step, args = written[path]
        i = recorded.index("-o")
        assert args[:i] == recorded[:i] and args[i + 2 :] == recorded[i + 2 :]
    # both auto-labeling files, in fresh runs folders (old runs would be read back)
    for name in ("mini-curve.json", "mini-full.json"):
        step, args = written[f"leaderboards/autolabel/{name}"]
        assert step == "autolabel" and args[args.index("--out") + 1].startswith("runs/switch/")
    assert any("occfiner-train" in c and "--export auto" in c for c in plan["train"])
    assert plan["default"][0].startswith("sed -i") and '"1.3"' in plan["default"][0]


def test_unknown_generator_and_broken_header_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        S.main(["--generator", "9.9", "--dry-run"])
    assert "expected one of" in capsys.readouterr().err
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"header": {"command": "occbench evaluate --method onboard"}}))
    with pytest.raises(SystemExit, match="no -o OUTPUT"):
        S.recorded(bad)
    bad.write_text(json.dumps({"header": {}}))
    with pytest.raises(SystemExit, match="header.command"):
        S.recorded(bad)


def test_dry_run_runs_nothing_and_changelog_compares_with_the_commit() -> None:
    config = (REPO / "occbench/synth/config.py").read_text()
    out = subprocess.run(
        [sys.executable, "benchmarks/switch_generator.py", "--dry-run", "--only", "default"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("[default] sed -i")
    assert (REPO / "occbench/synth/config.py").read_text() == config  # the dry run changed nothing
    table = S.changelog().splitlines()
    rows = [r for r in table[2:] if "leaderboards/results/" in r]
    assert len(rows) == len(list(REPO.glob("leaderboards/results/mini-*.json")))
    # on the committed tree old and new are the same numbers (outside a git checkout every old one is "(new file)")
    for r in table[2:]:
        _, _, old, new, _ = r.split("|")
        assert old.strip() == new.strip() or old.strip() == "(new file)"


def test_rows_step_removes_each_results_file_before_its_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "row.json"
    out.write_text("{}")
    seen = tmp_path / "seen.txt"
    # the command records whether its output still existed when it started
    cmd = f"sh -c 'test -e {out} && echo there > {seen} || echo gone > {seen}' -o {out}"
    monkeypatch.setattr(S, "plan", lambda generator: {step: [] for step in S.STEPS} | {"rows": [cmd]})
    assert S.main(["--only", "rows"]) == 0
    assert seen.read_text().strip() == "gone"

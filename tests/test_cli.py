"""CLI manners: help without heavy imports, lazily loaded commands, usage errors (exit 2) with suggestions,
option values parsed against the method's declared types, `occbench methods` listing options."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.methods import OffboardMethod, parse_options, register_method
from occbench.testing import make_semantickitti_tree


@pytest.fixture(autouse=True)
def _no_generation(monkeypatch, tmp_path):
    """No test here may generate occbench-mini (minutes): the data cache is a temporary folder, generation fails."""
    import occbench.synth

    def refuse(*a, **kw):
        raise AssertionError("occbench-mini generation started")

    monkeypatch.setenv("OCCBENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(occbench.synth, "generate_mini", refuse)


HELPS = [
    [],
    ["evaluate"],
    ["refine"],
    ["methods"],
    ["convert"],
    ["occfiner-train"],
    ["autolabel"],
    ["synth"],
    ["render"],
    ["leaderboard"],
]


@pytest.mark.parametrize("cmd", HELPS, ids=lambda c: " ".join(c) or "occbench")
def test_help_imports_no_torch(cmd):
    code = (
        "import sys, json\nfrom occbench.cli import main\n"
        f"try:\n    main({cmd + ['--help']!r}, prog_name='occbench')\nexcept SystemExit as e:\n    code = e.code\n"
        "print(json.dumps({'code': code, 'heavy': sorted(m for m in ('torch', 'scipy', 'numba', 'matplotlib') "
        "if m in sys.modules)}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res == {"code": 0, "heavy": []}


def test_top_level_help_lists_every_command_and_the_exit_codes():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0
    for name in (
        "evaluate",
        "refine",
        "methods",
        "convert",
        "occfiner-train",
        "autolabel",
        "synth",
        "render",
        "leaderboard",
    ):
        assert f"  {name} " in r.output
    assert "Exit codes:" in r.output and "usage error" in r.output and "stale leaderboards" in r.output
    assert "$OCCBENCH_DATA" in r.output


def test_lazy_command_help_lines_match_the_commands():
    from occbench.cli import LAZY_COMMANDS
    from occbench.cli.group import _load

    for name, (target, short) in LAZY_COMMANDS.items():
        cmd = _load(target)
        assert cmd.help.split("\n\n")[0].strip() == short, name


def test_occfiner_train_comes_from_the_commands_entry_point():
    """OccFiner's training command is named for its method; no generic ``train`` verb is taken."""
    from occbench.cli.group import LazyGroup

    eps = LazyGroup.entry_points()
    assert eps["occfiner-train"] == "occbench_baselines.occfiner.command:train" and "train" not in eps


def test_unknown_command_suggests():
    r = CliRunner().invoke(main, ["evalute"])
    assert r.exit_code == 2 and "Did you mean 'evaluate'?" in r.output


def test_unknown_method_exits_2_with_suggestion(tmp_path):
    r = CliRunner().invoke(main, ["evaluate", "--method", "ocfiner", "-q", "-o", str(tmp_path / "r.json")])
    assert r.exit_code == 2
    assert "unknown method 'ocfiner'; did you mean 'occfiner'" in r.output
    assert "\"'" not in r.output and "'\"" not in r.output  # no KeyError quoting around the message
    r = CliRunner().invoke(main, ["refine", "--method", "average-fusin", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "did you mean 'average-fusion'" in r.output


def test_option_value_error_names_option_and_type(tmp_path):
    r = CliRunner().invoke(
        main, ["evaluate", "--method", "average-fusion", "-O", "n=abc", "-q", "-o", str(tmp_path / "r.json")]
    )
    assert r.exit_code == 2
    assert "option 'n' of method 'average-fusion' expects int | None, got 'abc'" in r.output
    assert "invalid literal" not in r.output
    r = CliRunner().invoke(
        main, ["evaluate", "--method", "average-fusion", "-O", "nn=3", "-q", "-o", str(tmp_path / "r.json")]
    )
    assert r.exit_code == 2 and "unknown option 'nn'" in r.output and "did you mean 'n'" in r.output
    assert not (tmp_path / "r.json").exists()


def test_unknown_split_exits_2_with_suggestion(tmp_path):
    tree = make_semantickitti_tree(tmp_path / "t", {"08": 6}, onboard={"noisy": 0.2})
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--onboard",
            "noisy",
            "--split",
            "vall",
            "--method",
            "onboard",
            "-q",
            "-o",
            str(tmp_path / "r.json"),
        ],
    )
    assert r.exit_code == 2 and "unknown split 'vall'; did you mean 'val'?" in r.output


def test_unknown_dataset_exits_2():
    r = CliRunner().invoke(main, ["evaluate", "--dataset", "semantickiti", "--method", "onboard"])
    assert r.exit_code == 2 and "semantickiti" in r.output


@dataclass(frozen=True)
class _Opts:
    n: int = 3
    scale: float = 0.5
    mode: str | None = None
    flag: bool = True
    box: tuple[float, float, float] = (1.0, 2.0, 3.0)


class _Typed(OffboardMethod):
    name = "typed-options"
    description = "A method with typed options."
    Options = _Opts

    def refine(self, sequence, targets):
        for t in targets:
            yield t, sequence.prediction(t)


def test_methods_lists_options_with_types_and_defaults():
    register_method("typed-options", _Typed)
    r = CliRunner().invoke(main, ["methods", "typed-options"])
    assert r.exit_code == 0, r.output
    lines = [line.split() for line in r.output.splitlines()]
    assert ["A", "method", "with", "typed", "options."] in lines
    assert ["n", "int", "default", "3"] in lines
    assert ["scale", "float", "default", "0.5"] in lines
    assert ["mode", "str", "|", "None", "default", "null"] in lines
    assert ["flag", "bool", "default", "true"] in lines
    assert ["box", "tuple[float,", "float,", "float]", "default", "(1.0,", "2.0,", "3.0)"] in lines
    r = CliRunner().invoke(main, ["methods", "typed-option"])
    assert r.exit_code == 2 and "did you mean 'typed-options'" in r.output


def test_methods_lists_the_reference_methods_options():
    r = CliRunner().invoke(main, ["methods"])
    assert r.exit_code == 0, r.output
    blocks = {b.splitlines()[0]: b for b in r.output.strip().split("\n\n")}
    assert {"onboard", "average-fusion", "occfiner-voting", "occfiner", "occfiner-stage1"} <= set(blocks)
    assert "options: none" in blocks["onboard"]
    lines = [line.split() for line in blocks["average-fusion"].splitlines()]
    assert ["preset", "str", "default", "'occbench'"] in lines  # n and the empty policy come from the preset
    assert ["n", "int", "|", "None", "default", "null"] in lines
    assert any(line.split()[:2] == ["checkpoint", "str"] for line in blocks["occfiner"].splitlines())
    top2 = "  top-2 scores: yes (refine_top2; `occbench autolabel --pl-format top2`)"
    for name in ("average-fusion", "occfiner-voting", "occfiner", "occfiner-stage1"):  # docs/autolabel.md's table
        assert top2 in blocks[name].splitlines(), blocks[name]
    assert top2 not in blocks["onboard"]  # stored predictions are labels only


def test_parse_options_converts_to_the_declared_types():
    from occbench.errors import UnknownNameError
    from occbench.methods.options import OptionError

    got = parse_options(["n=7", "scale=2", "mode=null", "flag=false", "box=4,5,6"], _Typed, "typed-options")
    assert got == {"n": 7, "scale": 2.0, "mode": None, "flag": False, "box": (4.0, 5.0, 6.0)}
    assert type(got["scale"]) is float
    assert parse_options(["mode=fast", "box=[1, 2, 3]"], _Typed)["box"] == (1.0, 2.0, 3.0)
    for bad, words in (
        (["n=2.5"], "'n'"),
        (["flag=maybe"], "'flag'"),
        (["box=1,2"], "'box'"),
        (["scale=x"], "'scale'"),
    ):
        with pytest.raises(OptionError, match=words):
            parse_options(bad, _Typed)
    with pytest.raises(UnknownNameError, match="did you mean 'mode'"):
        parse_options(["mod=x"], _Typed)
    assert parse_options(["a=1", "b=x"]) == {"a": 1, "b": "x"}  # no class: JSON, else the string


def test_unknown_name_error_message_and_pickle():
    import pickle

    from occbench.errors import UnknownNameError, did_you_mean

    e = UnknownNameError("split", "vall", ["train", "val", "test"])
    assert str(e) == "unknown split 'vall'; did you mean 'val'? (available: train, val, test)"
    assert isinstance(e, KeyError) and isinstance(e, ValueError)
    assert str(pickle.loads(pickle.dumps(e))) == str(e)
    assert did_you_mean("xyz", ["train", "val"]) == []


def test_leaderboard_refuses_without_results_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["leaderboard"])
    assert r.exit_code == 2 and "leaderboards/results" in r.output and "--results" in r.output
    assert list(tmp_path.iterdir()) == []


class _NeedsFile(OffboardMethod):
    name = "needs-file"

    def __init__(self, **options):
        from occbench.errors import MissingDataError

        super().__init__(**options)
        raise MissingDataError("/nowhere/weights.pt", "weights of needs-file")

    def refine(self, sequence, targets):
        yield from ()


def test_a_method_missing_its_files_is_a_failed_run_not_a_traceback(tmp_path):
    register_method("needs-file", _NeedsFile)
    r = CliRunner().invoke(main, ["evaluate", "--method", "needs-file", "-q", "-o", str(tmp_path / "r.json")])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.exception
    assert "weights of needs-file not found: /nowhere/weights.pt" in r.output


def test_one_module_per_command_in_the_cli_package():
    import importlib

    from occbench.cli import main

    for name in ("evaluate", "refine", "methods", "convert", "leaderboard", "render", "autolabel", "synth"):
        cmd = main.get_command(None, name)
        assert cmd is not None and cmd.callback.__module__ == f"occbench.cli.{name}", name
        assert importlib.import_module(f"occbench.cli.{name}") is not None


def test_python_dash_m_runs_the_command_line():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "occbench.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("occbench, version")


def test_importing_the_main_module_runs_nothing():
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-c", "import occbench.cli.__main__; print('imported')", "evaluate", "--bogus"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout.strip() == "imported", r.stderr

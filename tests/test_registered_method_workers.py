"""A method registered in the running process (``register_method``) and run in worker processes: where the workers
cannot find it (a notebook, another module, a script that runs its work at top level) the error says why and what
to do, instead of "unknown method" or multiprocessing's bootstrapping message; where they can (a guarded script,
one worker) it runs (the guarded script: tests/test_script_safe_loaders.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from occbench.entry_points import PluginRegistry
from occbench.evaluation.run import EvalConfig, evaluate
from occbench.evaluation.specs import DatasetSpec, MethodSpec
from occbench.methods import OffboardMethod, register_method
from occbench.methods import registry as method_registry
from occbench.testing import make_semantickitti_tree

REPO = Path(__file__).resolve().parents[1]


class PassThrough(OffboardMethod):
    name = "pass-through-here"

    def refine(self, sequence, targets):
        for t in targets:
            yield t, sequence.prediction(t)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(tmp_path_factory.mktemp("reg"), {"08": 11}, onboard={"noisy": 0.2}, seed=3)


@pytest.fixture
def local_registry(monkeypatch):
    """A registry of this test's own, so that the registration does not outlive it."""
    fresh = PluginRegistry(method_registry.GROUP, "method")
    fresh.builtin = method_registry._REGISTRY.builtin
    monkeypatch.setattr(method_registry, "_REGISTRY", fresh)
    return fresh


def _config(tree: Path, workers: int) -> EvalConfig:
    return EvalConfig(
        dataset=DatasetSpec("semantickitti", str(tree), "val", "noisy"),
        method=MethodSpec("pass-through-here"),
        metrics=(),
        workers=workers,
    )


def test_registered_from_a_module_one_worker_runs_two_are_refused(tree, local_registry):
    register_method("pass-through-here", PassThrough)
    one = evaluate(_config(tree, 1))
    assert one.method == "pass-through-here" and one.header["frames"] == 3
    with pytest.raises(ValueError) as e:
        evaluate(_config(tree, 2))
    msg = str(e.value)
    assert "'pass-through-here' is registered in this process only" in msg, msg
    assert f"module {__name__}:PassThrough" in msg and "workers=1" in msg and "entry point" in msg, msg


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


SCRIPT = """
from occbench.evaluation import DatasetSpec, EvalConfig, MethodSpec, evaluate
from occbench.methods import OffboardMethod, register_method

class Same(OffboardMethod):
    def refine(self, sequence, targets):
        for t in targets:
            yield t, sequence.prediction(t)

register_method("same-here", Same)
res = evaluate(EvalConfig(dataset=DatasetSpec("semantickitti", TREE, "val", "noisy"), method=MethodSpec("same-here"),
                          metrics=(), workers=2))
print("scored", res.header["frames"], flush=True)
"""


def test_notebook_cell_with_two_workers_is_refused_before_work(tree, tmp_path):
    cell = f"TREE = {str(tree)!r}\n" + SCRIPT  # a notebook cell: code run in __main__ with no file behind it
    r = subprocess.run(
        [sys.executable, "-c", f"exec(compile({cell!r}, '<cell 1>', 'exec'))"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1 and "scored" not in r.stdout
    assert "ValueError: method 'same-here' is registered in this process only" in r.stderr, r.stderr[-3000:]
    assert "a notebook or interactive session" in r.stderr and "unknown method" not in r.stderr


def test_unguarded_script_with_two_workers_says_to_guard_it(tree, tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(f"TREE = {str(tree)!r}\n" + SCRIPT)
    r = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 1 and "scored" not in r.stdout
    assert "freeze_support" not in r.stderr, r.stderr[-3000:]  # multiprocessing's own message, about frozen apps
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: a worker process ended abruptly") and '__name__ == "__main__"' in last, last

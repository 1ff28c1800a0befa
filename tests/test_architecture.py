"""Layering: the core knows no method, loaders only read, the generator and the methods lean on no layer above
them, scoring a submission needs no torch."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from occbench.testing import make_semantickitti_tree, submission_from_onboard

REPO = Path(__file__).resolve().parents[1]


def _imports(source: str, pkg: str) -> list[str]:
    """Every module a source imports (absolute names; relative imports resolved against its package ``pkg``)."""
    tree = ast.parse(source)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
            out += [base] + [f"{base}.{a.name}" for a in node.names]
    return out


def _offenders(folder: str, forbidden: str) -> list[str]:
    return sorted(
        f"{p.relative_to(REPO)}: {m}"
        for p in (REPO / folder).rglob("*.py")
        for m in _imports(p.read_text(), ".".join(p.relative_to(REPO).parts[:-1]))
        if m == forbidden or m.startswith(forbidden + ".")
    )


def test_import_walker_sees_absolute_and_relative_imports():
    src = "import occbench_baselines.voting\nfrom ..synth import world\nfrom occbench.synth.config import A\n"
    assert _imports(src, "occbench.datasets") == [
        "occbench_baselines.voting",
        "occbench.synth",
        "occbench.synth.world",
        "occbench.synth.config",
        "occbench.synth.config.A",
    ]


def test_the_core_imports_no_method():
    assert _offenders("occbench", "occbench_baselines") == []


def test_loaders_do_not_import_the_generator():
    assert _offenders("occbench/datasets", "occbench.synth") == []


# the layers below the orchestration (occbench/evaluation/): what runs jobs, the generator and the reference methods
# get progress and process supervision from occbench/runtime/, never from the evaluation
BELOW_THE_EVALUATION = (
    "occbench/runtime",
    "occbench/io",
    "occbench/labels",
    "occbench/datasets",
    "occbench/metrics",
    "occbench/methods",
    "occbench/synth",
    "occbench_baselines",
)


@pytest.mark.parametrize("folder", BELOW_THE_EVALUATION)
def test_layers_below_the_evaluation_do_not_import_it(folder):
    assert (REPO / folder).is_dir(), folder
    assert _offenders(folder, "occbench.evaluation") == []


def test_the_generator_does_not_read_the_loaders():
    """The generator writes what the loaders read through one format module below both (``mini.json``:
    ``occbench.io.mini_manifest``); it imports no loader, as the loaders import no generator."""
    assert _offenders("occbench/synth", "occbench.datasets") == []


def test_the_runtime_layer_imports_nothing_above_it():
    """``occbench/runtime/`` (progress, worker processes, their supervision, interrupts) is below every layer that
    runs something: of occbench it imports only itself."""
    runtime = REPO / "occbench" / "runtime"
    names = sorted(p.stem for p in runtime.glob("*.py"))
    assert {"progress", "ticks", "processes", "supervision", "interrupts"} <= set(names), names
    found = sorted(
        f"{p.relative_to(REPO)}: {m}"
        for p in runtime.rglob("*.py")
        for m in _imports(p.read_text(), "occbench.runtime")
        if m.split(".")[0] in ("occbench", "occbench_baselines")
        and not (m == "occbench.runtime" or m.startswith("occbench.runtime."))
    )
    assert found == []


def test_no_module_imports_another_modules_private_names():
    """A name starting with ``_`` is its module's own (private modules such as ``_kernels`` are their package's)."""
    found = []
    for p in sorted((REPO / "occbench").rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.module.split(".")[-1].startswith("_"):
                pkg = REPO.joinpath(*node.module.split("."))
                found += [
                    f"{p.relative_to(REPO)}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and a.name != "__version__" and not (pkg / f"{a.name}.py").is_file()
                ]  # a private module of that package
    assert found == []


def test_scoring_a_submission_imports_no_torch(tmp_path):
    tree = make_semantickitti_tree(tmp_path / "kitti", {"08": 12}, onboard={"noisy": 0.2}, seed=3)
    sub = submission_from_onboard(tree, "noisy", tmp_path / "model")
    out = tmp_path / "r.json"
    code = (
        "import sys\n"
        "sys.argv = ['occbench', 'evaluate', '--dataset', 'semantickitti', '--root', sys.argv[1], "
        "'--predictions', sys.argv[2], '-q', '-j', '1', '-o', sys.argv[3]]\n"
        "from occbench.cli import main\n"
        "try:\n    main()\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    env = {**os.environ, "OCCBENCH_DATA": str(tmp_path / "cache")}
    r = subprocess.run(
        [sys.executable, "-c", code, str(tree), str(sub), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(out.read_text())["metrics"], "no scores written"
    assert r.stdout.strip().splitlines()[-1] == "NO-TORCH"


@pytest.mark.parametrize("argv", [["--help"], ["evaluate", "--help"]])
def test_help_imports_no_torch(argv):
    code = (
        "import sys\nsys.argv = ['occbench'] + sys.argv[1:]\nfrom occbench.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)
    assert r.stdout.strip().splitlines()[-1] == "NO-TORCH", r.stderr[-2000:]


def test_each_metric_lives_in_its_own_module():
    from occbench.metrics import CityMapMetric, SSCMetric, TemporalConsistency

    mods = [c.__module__ for c in (SSCMetric, CityMapMetric, TemporalConsistency)]
    assert len(set(mods)) == 3, mods


def test_evaluate_takes_a_config_whose_fields_are_keywords():
    import inspect

    from occbench.evaluation.config import EvalConfig
    from occbench.evaluation.run import evaluate

    params = list(inspect.signature(evaluate).parameters.values())
    assert [p.name for p in params] == ["config"]  # one way in: an EvalConfig
    fields = list(inspect.signature(EvalConfig).parameters.values())
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in fields)
    assert "submission" in [p.name for p in fields]  # a Submission is named, never passed as a disguised onboard


def test_the_command_line_offers_the_registered_datasets():
    from occbench.cli import DATASET_NAMES
    from occbench.datasets import DATASETS

    assert DATASET_NAMES == tuple(DATASETS)


def test_orchestration_reads_no_dataset_layout():
    """Frame and ScanSequence know the files of a dataset; the evaluation package asks them (no layout attributes)."""
    import re

    pattern = re.compile(r"\.(layout|gt_voxel_dir|voxel_dir|onboard_store|_gt_path)\b")
    found = [
        f"{p.relative_to(REPO)}:{i}"
        for p in sorted((REPO / "occbench" / "evaluation").glob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []

"""pyproject.toml declares what the package uses and ships what exists: every runtime dependency is imported by
some module of ``occbench/`` or ``occbench_baselines/``, and every package-data pattern matches a file."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: the test extras install tomli
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _dist(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _imported_top_levels() -> set[str]:
    found = set()
    for pkg in ("occbench", "occbench_baselines"):
        for p in (REPO / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(p.read_text())):
                if isinstance(node, ast.Import):
                    found |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names)


def test_every_declared_dependency_is_imported():
    dists_of = metadata.packages_distributions()  # import name -> distributions that install it
    imported = {_dist(d) for top in _imported_top_levels() for d in dists_of.get(top, [top])}
    declared = {_dist(r) for r in PYPROJECT["project"]["dependencies"]}
    assert "numpy" in declared and "numpy" in imported  # the check sees the obvious one
    assert sorted(declared - imported) == []


def test_every_package_data_pattern_matches_a_file():
    for pkg, patterns in PYPROJECT["tool"]["setuptools"]["package-data"].items():
        for pattern in patterns:
            assert any((REPO / pkg).glob(pattern)), f"{pkg}: {pattern} matches no file"

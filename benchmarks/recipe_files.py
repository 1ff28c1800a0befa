"""The files a change of one kind touches, measured: every file of ``occbench/`` (and ``pyproject.toml``) whose code
names a thing, for the recipes of docs/architecture.md.

Python files count by their code only: identifiers, imported names and string constants (help texts and messages
included), not comments and not docstrings; data files (JSON, text, NOTICE, TOML) by their text. Run it with the
names an existing dataset, metric or method goes by; the files it lists are what naming one more of that kind
touches, less those that are the existing one's own (its module, its data files).

    python benchmarks/recipe_files.py '(?i)sscbench.?kitti.?360'     # a dataset
    python benchmarks/recipe_files.py '(?i)consistency'               # a metric
    python benchmarks/recipe_files.py '(?i)average.?fusion|occfiner'  # methods
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body:
            b = n.body[0]
            if isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str):
                out.add(id(b.value))
    return out


def code_names(source: str) -> list[str]:
    """The identifiers, imported names and non-docstring string constants of a Python source."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    out: list[str] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip:
            out.append(n.value)
        elif isinstance(n, ast.Name):
            out.append(n.id)
        elif isinstance(n, ast.Attribute):
            out.append(n.attr)
        elif isinstance(n, ast.alias):
            out.append(n.name)
        elif isinstance(n, ast.ImportFrom) and n.module:
            out.append(n.module)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append(n.name)
    return out


def files_naming(pattern: re.Pattern[str], where: list[Path]) -> dict[str, list[str]]:
    """Repository-relative path -> the distinct matches of ``pattern`` in that file (files without one left out)."""
    found: dict[str, list[str]] = {}
    for base in where:
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for p in files:
            if "__pycache__" in p.parts or p.suffix in (".pyc", ".pt", ".so"):
                continue
            texts = code_names(p.read_text()) if p.suffix == ".py" else [p.read_text(errors="replace")]
            hits = sorted({m.group(0) for t in texts for m in pattern.finditer(t)})
            if hits:
                found[p.relative_to(REPO).as_posix()] = hits
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pattern", help="a regular expression for the names the thing goes by")
    ap.add_argument("where", nargs="*", default=["occbench", "pyproject.toml"], help="folders or files of the repo")
    a = ap.parse_args()
    found = files_naming(re.compile(a.pattern), [REPO / w for w in a.where])
    for path, hits in found.items():
        print(f"{path}: {', '.join(hits)}")
    print(f"{len(found)} file(s)")


if __name__ == "__main__":
    main()

"""No import circles among occbench's and the reference methods' modules, counting imports at module level and
inside functions alike (an import in a function body closes a circle as soon as the function runs).

Read from the sources (AST), not by importing them. ``import a.b`` is an edge to module ``a.b``; ``from a.b import
c`` an edge to ``a.b.c`` when that is a module and to ``a.b`` otherwise. Imports under ``if TYPE_CHECKING:`` never
run and are not counted."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("occbench", "occbench_baselines")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom node, at any depth, except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            children = list(node.orelse)
        stack.extend(children)


def import_graph(
    root: Path, packages=PACKAGES, sources: dict[str, tuple[str, bool]] | None = None
) -> dict[str, set[str]]:
    """module -> the modules (among ``packages``) it imports. ``sources`` (name -> (source, is_package)) replaces
    reading ``root`` (for testing the walker itself)."""
    if sources is None:
        sources = {}
        for pkg in packages:
            for p in sorted((root / pkg).rglob("*.py")):
                sources[_module_name(p, root)] = (p.read_text(), p.name == "__init__.py")
    graph: dict[str, set[str]] = {name: set() for name in sources}
    for name, (text, is_pkg) in sources.items():
        package = name if is_pkg else name.rpartition(".")[0]
        for node in _import_nodes(ast.parse(text)):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = package.split(".")
                    up = up[: len(up) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in sources else base for a in node.names]
            for t in targets:
                while t and t not in sources:  # `import a.b.c` of a name that is an attribute: its module
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_the_cycle_finder_sees_module_level_function_level_and_relative_imports():
    sources = {
        "p": ("", True),
        "p.a": ("from p.b import f\n", False),
        "p.b": ("def f():\n    from p import c\n", False),
        "p.c": ("from . import a\n", False),
        "p.d": ("import p.e\n", False),
        "p.e": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p.d import X\n", False),
        "p.sub": ("from .. import d\n", True),
    }
    graph = import_graph(REPO, sources=sources)
    assert graph["p.a"] == {"p.b"} and graph["p.b"] == {"p.c"} and graph["p.c"] == {"p.a"}
    assert graph["p.e"] == set() and graph["p.sub"] == {"p.d"}
    assert cycles(graph) == [["p.a", "p.b", "p.c"]]
    sources["p.e"] = ("def g():\n    import p.d.X\n", False)  # a name in p.d: the edge goes to p.d
    assert cycles(import_graph(REPO, sources=sources)) == [["p.a", "p.b", "p.c"], ["p.d", "p.e"]]


def test_the_graph_covers_both_packages():
    graph = import_graph(REPO)
    assert "occbench.evaluation.run" in graph and "occbench_baselines.voting" in graph
    assert "occbench.evaluation.executors" in graph["occbench.evaluation.jobs"]


def test_no_import_circles_in_occbench_and_baselines():
    found = cycles(import_graph(REPO))
    assert found == [], "import circles (module or function level):\n" + "\n".join(" <-> ".join(c) for c in found)

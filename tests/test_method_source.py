"""The results header says where the method came from: its distribution's name and version and its entry point, or
that it was registered in this process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from occbench.evaluation.run import EvalConfig, evaluate
from occbench.evaluation.specs import DatasetSpec, MethodSpec
from occbench.methods import OffboardMethod, register_method
from occbench.results import Results
from occbench.testing import make_semantickitti_tree

REPO = Path(__file__).resolve().parents[1]


class Unchanged(OffboardMethod):
    name = "unchanged-here"

    def refine(self, sequence, targets):
        for t in targets:
            yield t, sequence.prediction(t)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(tmp_path_factory.mktemp("src"), {"08": 11}, onboard={"noisy": 0.2}, seed=2)


def _run(tree: Path, name: str) -> dict:
    res = evaluate(
        EvalConfig(
            dataset=DatasetSpec("semantickitti", str(tree), "val", "noisy"),
            method=MethodSpec(name),
            workers=1,
            metrics=(),
        )
    ).to_dict()
    assert Results.problems(res) == []
    return res["header"]["method"]


def test_an_entry_point_method_names_its_distribution(tree):
    ep = next(e for e in entry_points(group="occbench.methods") if e.name == "onboard")
    method = _run(tree, "onboard")
    assert method["name"] == "onboard"
    assert method["source"] == {
        "distribution": "occbench",
        "version": ep.dist.version,
        "entry_point": f"onboard = {ep.value}",
    }


def test_a_method_registered_in_process_says_so(tree):
    register_method("unchanged-here", Unchanged)
    assert _run(tree, "unchanged-here")["source"] == {"registered": "in-process", "object": f"{__name__}:Unchanged"}


def test_a_third_party_distribution(tree, tmp_path):
    """An installed distribution of its own (a dist-info folder with entry_points.txt on the path, as pip leaves)."""
    site = tmp_path / "site"
    (site / "mymethods").mkdir(parents=True)
    (site / "mymethods" / "__init__.py").write_text(
        "from occbench.methods import OffboardMethod\n"
        "class Keep(OffboardMethod):\n"
        "    name = 'keep'\n"
        "    def refine(self, sequence, targets):\n"
        "        for t in targets:\n"
        "            yield t, sequence.prediction(t)\n"
    )
    info = site / "mymethods-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mymethods\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[occbench.methods]\nkeep = mymethods:Keep\n")
    code = (
        "import json\nfrom occbench.evaluation.run import EvalConfig, evaluate\n"
        "from occbench.evaluation.specs import DatasetSpec, MethodSpec\n"
        f"config = EvalConfig(dataset=DatasetSpec('semantickitti', {str(tree)!r}, 'val', 'noisy'), "
        "method=MethodSpec('keep'), metrics=())\n"
        "print(json.dumps(evaluate(config).header['method']))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    method = json.loads(r.stdout.splitlines()[-1])
    assert method["name"] == "keep"
    assert method["source"] == {"distribution": "mymethods", "version": "1.2.3", "entry_point": "keep = mymethods:Keep"}


def test_the_schema_checks_the_source():
    doc = json.loads((REPO / "leaderboards" / "results" / "mini-val-voxformer-sim-onboard.json").read_text())
    doc["header"]["method"]["source"] = {"distribution": "x", "version": "1.0", "entry_point": "a = b:C"}
    assert Results.problems(doc) == []
    doc["header"]["method"]["source"] = {"distribution": "x\u0007"}
    assert any("header.method.source.distribution" in p for p in Results.problems(doc))
    doc["header"]["method"]["source"] = "x"
    assert any("header.method.source" in p for p in Results.problems(doc))

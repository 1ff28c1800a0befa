"""What a method yields is checked as it comes, and a wrong grid is an error naming the method, the scan and what
was wrong (docs/methods.md, "The contract"); right grids, uint8 or another integer type, are scored."""

from __future__ import annotations

import numpy as np
import pytest

from occbench.entry_points import PluginRegistry
from occbench.errors import OccbenchError
from occbench.evaluation.run import EvalConfig, evaluate
from occbench.evaluation.specs import DatasetSpec, MethodSpec
from occbench.methods import OffboardMethod, register_method
from occbench.methods import registry as method_registry
from occbench.testing import make_semantickitti_tree

MODE = {"value": "uint8"}


class Shaped(OffboardMethod):
    name = "shaped-here"

    def refine(self, sequence, targets):
        mode = MODE["value"]
        for i, t in enumerate(targets):
            p = sequence.prediction(t)
            if mode == "missing" and i == len(targets) - 1:
                return
            yield (
                t,
                {
                    "uint8": p,
                    "int64": p.astype(np.int64),
                    "missing": p,
                    "float": p.astype(np.float32),
                    "flat": p.reshape(-1),
                    "twice": p,
                }[mode],
            )
            if mode == "twice":
                yield t, p


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(tmp_path_factory.mktemp("out"), {"08": 11}, onboard={"noisy": 0.2}, seed=6)


@pytest.fixture
def shaped(monkeypatch):
    fresh = PluginRegistry(method_registry.GROUP, "method")
    fresh.builtin = method_registry._REGISTRY.builtin
    monkeypatch.setattr(method_registry, "_REGISTRY", fresh)
    register_method("shaped-here", Shaped)


def _run(tree, mode: str):
    MODE["value"] = mode
    config = EvalConfig(
        dataset=DatasetSpec("semantickitti", str(tree), "val", "noisy"), method=MethodSpec("shaped-here"), metrics=()
    )
    return evaluate(config)


def test_integer_grids_are_scored_as_the_onboard_predictions(tree, shaped):
    onboard = evaluate(EvalConfig(dataset=DatasetSpec("semantickitti", str(tree), "val", "noisy"), metrics=()))
    for mode in ("uint8", "int64"):
        assert _run(tree, mode).metrics["ssc"] == onboard.metrics["ssc"], mode


@pytest.mark.parametrize(
    "mode, words",
    [
        ("float", "method shaped-here returned a grid of dtype float32 for 08/000000; expected integer train ids"),
        ("flat", "method shaped-here returned a grid of shape (2097152,) for 08/000000; expected (256, 256, 32)"),
        ("missing", "method shaped-here returned no prediction for 1 scan(s) of sequence 08, first [10]"),
        ("twice", "method shaped-here returned scan 0 of sequence 08, which was not asked for or was returned twice"),
    ],
)
def test_wrong_grids_name_the_method_and_the_scan(tree, shaped, mode, words):
    with pytest.raises(OccbenchError) as e:
        _run(tree, mode)
    assert words in str(e.value)

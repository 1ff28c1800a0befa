"""Executors give identical numbers: inline, local processes, and a local Ray instance."""

from __future__ import annotations

import pytest

from occbench.evaluation.executors import run_jobs
from occbench.evaluation.run import DatasetSpec, EvalConfig, MethodSpec, evaluate
from occbench.testing import make_semantickitti_tree


def _square(x: int) -> int:
    return x * x


def _torch_state(import_it: bool) -> tuple[bool, int | None]:
    """In a worker: whether torch was imported before this job, and its intra-op threads once imported here."""
    import sys

    before = "torch" in sys.modules
    if not import_it:
        return before, None
    import torch

    return before, torch.get_num_threads()


def test_a_worker_imports_torch_only_when_a_job_does_and_then_gets_its_share_of_the_cores():
    from occbench.evaluation import executors

    jobs = [(False,), (True,)]
    got = run_jobs(_torch_state, jobs, workers=2)
    assert got[0][1] is None and got[1][1] == executors.threads_per_worker(2)
    assert got[1][0] is False  # scoring-only workers start without torch
    # in a process that imported torch already, the setting applies at once
    import torch

    before = torch.get_num_threads()
    try:
        executors.torch_threads_on_import(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_run_jobs_order_and_errors():
    assert run_jobs(_square, [(i,) for i in range(5)], workers=1) == [0, 1, 4, 9, 16]
    assert run_jobs(_square, [(i,) for i in range(5)], workers=2) == [0, 1, 4, 9, 16]
    with pytest.raises(ValueError, match="unknown executor"):
        run_jobs(_square, [(1,)], executor="dask")


def test_ray_matches_local(tmp_path):
    import ray  # noqa: F401  (the test extras install it; a missing Ray must fail here, not skip)

    root = make_semantickitti_tree(tmp_path, {"08": 11}, onboard={"noisy": 0.2}, compressed=True)
    spec = DatasetSpec("semantickitti", str(root), "val", "noisy")
    local = evaluate(EvalConfig(dataset=spec, method=MethodSpec("onboard"), workers=1)).to_dict()
    on_ray = evaluate(EvalConfig(dataset=spec, method=MethodSpec("onboard"), workers=2, executor="ray")).to_dict()
    assert on_ray["header"]["executor"] == "ray"
    assert on_ray["metrics"] == local["metrics"]

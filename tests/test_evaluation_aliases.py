"""The orchestration modules moved into ``occbench.evaluation``: their old names still work, with a warning."""
from __future__ import annotations

import importlib
import sys

import pytest

# old module -> (new module, names the old module offered that code and docs use)
MOVED = {
    "occbench.evaluate": ("occbench.evaluation.run", ["evaluate", "DatasetSpec", "MethodSpec", "Job", "plan_jobs",
                                                      "split_targets", "run_job", "useful_workers", "write_results"]),
    "occbench.refine": ("occbench.evaluation.refine", ["refine_split"]),
    "occbench.executors": ("occbench.evaluation.executors", ["run_jobs", "runs_inline", "die_with_parent",
                                                             "threads_per_worker", "EXECUTORS"]),
    "occbench.submission": ("occbench.evaluation.submission", ["validate_predictions", "check_submission_names",
                                                               "check_submission_contents", "InvalidSubmission",
                                                               "ValidationReport", "prediction_id_problem",
                                                               "submission_store"]),
    "occbench.results_path": ("occbench.evaluation.results_path", ["default_results_path", "resolve_output",
                                                                   "check_writable", "DEFAULT_DIR"]),
    "occbench.resources": ("occbench.evaluation.resources", ["choose_workers", "usable_cores", "available_memory",
                                                             "worker_memory_gb", "worker_threads", "GIB"]),
}


def _forget(monkeypatch, name: str) -> None:
    """Import ``name`` afresh in this test (restored afterwards)."""
    monkeypatch.delitem(sys.modules, name, raising=False)
    parent, _, child = name.rpartition(".")
    monkeypatch.delattr(sys.modules[parent], child, raising=False)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_warns_and_is_the_new_module(old, monkeypatch):
    new, names = MOVED[old]
    module = importlib.import_module(new)
    _forget(monkeypatch, old)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated: it moved to {new}"):
        alias = importlib.import_module(old)
    assert alias is module
    for name in names:
        assert getattr(alias, name) is getattr(module, name)


def test_from_import_of_an_old_name_gives_the_same_object(monkeypatch):
    from occbench.evaluation import run

    _forget(monkeypatch, "occbench.evaluate")
    with pytest.warns(DeprecationWarning):
        from occbench.evaluate import DatasetSpec, evaluate
    assert evaluate is run.evaluate and DatasetSpec is run.DatasetSpec


def test_the_package_offers_the_public_names():
    import occbench.evaluation as ev
    from occbench.evaluation import executors, refine, run, submission

    assert ev.evaluate is run.evaluate and ev.refine_split is refine.refine_split
    assert ev.Submission is run.Submission and ev.DatasetSpec is run.DatasetSpec
    assert ev.run_jobs is executors.run_jobs and ev.validate_predictions is submission.validate_predictions
    assert set(ev.__all__) <= set(dir(ev))


def test_frame_ticks_moved_to_the_executors_and_warns_under_its_old_name():
    import occbench.progress as progress
    from occbench.evaluation.progress import FrameTicks

    with pytest.warns(DeprecationWarning, match="occbench.evaluation.progress.FrameTicks"):
        assert progress.FrameTicks is FrameTicks
    assert callable(progress.progress_bar) and callable(progress.set_quiet)  # the bars themselves stay
    with pytest.raises(AttributeError):
        progress.no_such_name  # noqa: B018

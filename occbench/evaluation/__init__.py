"""Orchestration: split a dataset into jobs, run a method (or read a submission), score, write the results file.

One module per part: :mod:`~occbench.evaluation.run` (the scoring run, :func:`evaluate`),
:mod:`~occbench.evaluation.config` (what a scoring run is asked to do: ``EvalConfig``, its only argument),
:mod:`~occbench.evaluation.specs` (what a run is made of: ``DatasetSpec``, ``MethodSpec``, ``Job``, ``Submission``,
and what a scoring job is given and returns: ``JobRequest``, ``JobResult``),
:mod:`~occbench.evaluation.jobs` (the scaffold ``evaluate`` and ``refine`` share),
:mod:`~occbench.evaluation.refine` (write a method's predictions without scoring them),
:mod:`~occbench.evaluation.executors` (where jobs run), :mod:`~occbench.evaluation.submission` (checking a folder of
predictions), :mod:`~occbench.evaluation.results_path` (where the results file goes) and
:mod:`~occbench.evaluation.resources` (how many workers fit). The names below are imported on first use, so that
importing one small submodule (e.g. in a worker process) imports nothing else.
"""

from occbench._lazy import lazy_exports

_EXPORTS = {
    "EvalConfig": "occbench.evaluation.config",
    "DatasetSpec": "occbench.evaluation.specs",
    "MethodSpec": "occbench.evaluation.specs",
    "Job": "occbench.evaluation.specs",
    "Submission": "occbench.evaluation.specs",
    "JobRequest": "occbench.evaluation.specs",
    "JobResult": "occbench.evaluation.specs",
    "evaluate": "occbench.evaluation.run",
    "plan_jobs": "occbench.evaluation.jobs",
    "refine_split": "occbench.evaluation.refine",
    "run_jobs": "occbench.evaluation.executors",
    "validate_predictions": "occbench.evaluation.submission",
    "ValidationReport": "occbench.evaluation.submission",
    "InvalidSubmission": "occbench.evaluation.submission",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

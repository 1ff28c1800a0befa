"""``EvalConfig`` checks every field when it is made (a ``ValueError`` naming the field), and the run's typed
boundaries travel by pickle as worker processes and Ray send them."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from occbench.evaluation import DatasetSpec, EvalConfig, Job, JobRequest, JobResult, MethodSpec, Submission, evaluate
from occbench.evaluation.run import run_job
from occbench.testing import make_semantickitti_tree

DS = DatasetSpec("semantickitti", "root", "val", "noisy")


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"workers": 0}, "EvalConfig.workers"),
        ({"workers": 1.5}, "EvalConfig.workers"),
        ({"executor": "dask"}, "EvalConfig.executor"),
        ({"max_frames": 0}, "EvalConfig.max_frames"),
        ({"frames": [3, -1]}, "EvalConfig.frames"),
        ({"frames": "0,5"}, "EvalConfig.frames"),
        ({"metrics": "city"}, "EvalConfig.metrics"),
        ({"metrics": ("city", 3)}, "EvalConfig.metrics"),
        ({"method": "onboard"}, "EvalConfig.method"),
        ({"dataset": "mini"}, "EvalConfig.dataset"),
        ({"method": MethodSpec("onboard"), "validate": True}, "EvalConfig.validate"),
    ],
)
def test_a_bad_field_is_refused_naming_it(fields, named):
    with pytest.raises(ValueError, match=named):
        EvalConfig(**{"dataset": DS, **fields})


def test_fields_are_normalised_and_frozen():
    c = EvalConfig(dataset=DS, frames=[np.int64(10), 5, 5, 0], metrics=["city"], save_predictions_dir="out")
    assert c.frames == (0, 5, 10) and type(c.frames[0]) is int and c.metrics == ("city",)
    assert c.save == ("out", False) and c.scored == DS
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.workers = 4  # type: ignore[misc]
    sub = Submission("/x/model", DS)
    assert EvalConfig(submission=sub).scored == sub.reader()
    assert pickle.loads(pickle.dumps(c)) == c
    with pytest.raises(TypeError):
        EvalConfig(DS)  # type: ignore[misc]  # keyword-only: no positional order to get wrong


def test_evaluate_takes_a_config_only():
    with pytest.raises(TypeError, match="expected an EvalConfig"):
        evaluate(DS)  # type: ignore[arg-type]


def test_a_job_request_and_its_result_travel_by_pickle(tmp_path):
    root = make_semantickitti_tree(tmp_path, {"08": 11}, onboard={"noisy": 0.2})
    dspec = DatasetSpec("semantickitti", str(root), "val", "noisy")
    req = JobRequest(dspec, MethodSpec("onboard"), Job("08", (0, 5, 10)), metrics=("city",))
    assert pickle.loads(pickle.dumps(req)) == req
    out = run_job(pickle.loads(pickle.dumps(req)))
    assert isinstance(out, JobResult) and (out.sequence, out.frames, out.problems) == ("08", 3, ())
    assert out.maps is not None and out.metrics == {}  # city: the world map state, no registry metric
    back = pickle.loads(pickle.dumps(out))
    assert np.array_equal(back.ssc._counts, out.ssc._counts) and back.ssc.n_frames == 3

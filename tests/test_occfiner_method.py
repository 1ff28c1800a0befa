"""The ``occfiner`` / ``occfiner-stage1`` methods, the ``train`` command and the checkpoint export (CI size)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from occbench.datasets.semantickitti import SemanticKITTI
from occbench.errors import MissingDataError
from occbench.evaluation.run import DatasetSpec, EvalConfig, MethodSpec, evaluate
from occbench.methods import method_class
from occbench.testing import make_semantickitti_tree
from occbench_baselines.occfiner.command import train as train_cmd
from occbench_baselines.occfiner.infer import refine_sequence
from occbench_baselines.occfiner.method import (
    OccFiner,
    OccFinerStage1,
    _StreamCache,
    needed_scans,
    resolve_checkpoint,
    shipped_checkpoint,
)
from occbench_baselines.occfiner.train import load_model
from occbench_baselines.occfiner.windows import WindowConfig

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A SemanticKITTI-layout tree (val = sequence 08, 6 scans, 2 labelled) and a tiny model trained 2 steps."""
    tmp = tmp_path_factory.mktemp("occfiner-method")
    root = make_semantickitti_tree(tmp / "kitti", {"08": 6}, onboard={"noisy": 0.2})
    res = CliRunner().invoke(
        train_cmd,
        [
            "--dataset",
            "semantickitti",
            "--root",
            str(root),
            "--onboard",
            "noisy",
            "--split",
            "val",
            "--config",
            "tiny",
            "--epochs",
            "1",
            "--max-steps-per-epoch",
            "2",
            "--local",
            "2",
            "--reference",
            "1",
            "--reference-radius",
            "3",
            "--lovasz-voxels",
            "16384",
            "--output",
            str(tmp / "run"),
            "--export",
            str(tmp / "noisy.pt"),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output + repr(res.exception)
    return root, tmp


def test_train_command_writes_run_folder_and_export(trained):
    root, tmp = trained
    run = tmp / "run"
    for f in ("checkpoint-last.pt", "checkpoint-epoch-1.pt", "metrics.jsonl", "run.json"):
        assert (run / f).is_file(), f
    rec = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert rec["epoch"] == 1 and rec["steps"] == 2 and np.isfinite(rec["loss"])
    meta = json.loads((run / "run.json").read_text())
    assert meta["model_config"] == "tiny" and meta["window_config"]["local"] == 2
    ex = torch.load(tmp / "noisy.pt", weights_only=True)
    assert ex["format"] == "occfiner-export-1" and "optimizer" not in ex
    assert ex["window_config"] == {"local": 2, "reference": 1, "reference_radius": 3, "reference_stride": 1}
    assert all(v.dtype == torch.float32 for v in ex["model"].values() if v.is_floating_point())
    full = load_model(run / "checkpoint-last.pt")
    small = load_model(tmp / "noisy.pt")
    for (k, a), (_, b) in zip(full.state_dict().items(), small.state_dict().items()):
        assert torch.equal(a, b), k
    assert (tmp / "noisy.pt").stat().st_size < 0.6e6


def test_occfiner_end_to_end_through_evaluate(trained):
    root, tmp = trained
    ds = DatasetSpec("semantickitti", str(root), "val", "noisy")
    opts = {"checkpoint": str(tmp / "noisy.pt"), "n": 1, "sensor": "lidar"}
    res = evaluate(EvalConfig(dataset=ds, method=MethodSpec("occfiner", opts), workers=1, metrics=())).to_dict()
    assert res["header"]["frames"] == 2 and res["header"]["method"]["name"] == "occfiner"
    assert res["header"]["method"]["options"]["checkpoint"] == opts["checkpoint"]
    for scores in res["metrics"]["ssc"].values():
        assert 0.0 <= scores["iou"] <= 1.0 and 0.0 <= scores["miou"] <= 1.0


def test_occfiner_numbers_do_not_depend_on_the_worker_count(trained):
    """Jobs split a sequence's targets into blocks; stage 1 windows and stage 2 votes must not see the split."""
    from occbench.evaluation.run import plan_jobs

    root, tmp = trained
    ds = DatasetSpec("semantickitti", str(root), "val", "noisy")
    assert len(plan_jobs(ds.open(), 2)) == 2  # the two labelled scans go to two processes
    opts = {"checkpoint": str(tmp / "noisy.pt"), "n": 2, "sensor": "lidar", "threads": 1}
    one = evaluate(EvalConfig(dataset=ds, method=MethodSpec("occfiner", opts), workers=1, metrics=())).to_dict()
    two = evaluate(EvalConfig(dataset=ds, method=MethodSpec("occfiner", opts), workers=2, metrics=())).to_dict()
    assert one["metrics"] == two["metrics"]


def test_stage1_method_equals_refine_sequence_and_stage2_with_n0_equals_stage1(trained):
    root, tmp = trained
    seq = SemanticKITTI(root, split="val", onboard="noisy", sensor="lidar")["08"]
    ck = str(tmp / "noisy.pt")
    s1 = dict(OccFinerStage1(checkpoint=ck).refine(seq, [0, 5]))
    model = load_model(ck)
    ref = dict(
        refine_sequence(
            model,
            seq.prediction,
            seq.poses,
            seq.num_scans,
            [0, 5],
            WindowConfig(local=2, reference=1, reference_radius=3),
            progress=False,
        )
    )
    assert sorted(s1) == [0, 5]
    for t in s1:
        np.testing.assert_array_equal(s1[t], ref[t])
    both = dict(OccFiner(checkpoint=ck, n=0).refine(seq, [5, 0]))
    for t in s1:
        np.testing.assert_array_equal(both[t], s1[t])


def test_registered_and_missing_checkpoint_message(trained):
    root, _ = trained
    assert method_class("occfiner") is OccFiner and method_class("occfiner-stage1") is OccFinerStage1
    seq = SemanticKITTI(root, split="val", onboard="noisy", sensor="lidar")["08"]
    with pytest.raises(MissingDataError) as e:
        list(OccFiner().refine(seq, [0]))
    msg = str(e.value)
    assert str(shipped_checkpoint("noisy")) in msg and "--onboard noisy" in msg
    # the hint trains on the dataset the sequence comes from, not on mini
    assert f"occbench occfiner-train --dataset semantickitti --root {root} --onboard noisy --config paper" in msg
    with pytest.raises(MissingDataError):
        resolve_checkpoint("/nonexistent/x.pt", "noisy")


def test_config_records_only_the_checkpoint_the_onboard_model_uses(tmp_path):
    """Results and pseudo-label manifests of one onboard model must not change when another model's shipped
    checkpoint does: with ``onboard`` known, ``checkpoint=auto`` records that model's digest only."""
    import hashlib

    from occbench_baselines.occfiner.method import CHECKPOINT_DIR

    shipped = sorted(p.stem for p in CHECKPOINT_DIR.glob("*.pt"))
    assert {"voxformer-sim", "sscnet-sim"} <= set(shipped)
    m = OccFiner()
    every = m.config()["checkpoint_sha256"]
    assert sorted(every) == shipped
    one = m.config(onboard="voxformer-sim")["checkpoint_sha256"]
    digest = hashlib.sha256(shipped_checkpoint("voxformer-sim").read_bytes()).hexdigest()[:16]
    assert one == {"voxformer-sim": digest} == {"voxformer-sim": every["voxformer-sim"]}
    assert m.config(onboard="no-such-model")["checkpoint_sha256"] == {"no-such-model": "missing"}
    f = tmp_path / "x.pt"
    f.write_bytes(b"abc")
    by_path = OccFinerStage1(checkpoint=str(f)).config(onboard="voxformer-sim")["checkpoint_sha256"]
    assert by_path == {str(f): hashlib.sha256(b"abc").hexdigest()[:16]}


def test_needed_scans_and_stream_cache():
    assert needed_scans([0, 10], 2, 11) == [0, 1, 2, 8, 9, 10]
    assert needed_scans([5], 25, 8) == list(range(8))
    src = iter([(i, np.full((2,), i, np.uint8)) for i in (1, 2, 5)])
    c = _StreamCache(src)
    assert c(2)[0] == 2 and c(1)[0] == 1 and sorted(c.grids) == [1, 2]
    c.drop_below(2)
    assert sorted(c.grids) == [2] and c(5)[0] == 5
    with pytest.raises(RuntimeError):
        c(1)
    once = _StreamCache(iter([(i, np.full((2,), i, np.uint8)) for i in (1, 2, 5)]), once=True)
    assert once(2)[0] == 2 and sorted(once.grids) == [1]  # a grid read is dropped, the ones pulled before it kept
    with pytest.raises(RuntimeError):
        once(2)

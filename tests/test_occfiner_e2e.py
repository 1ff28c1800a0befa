"""End to end on a tiny SemanticKITTI-layout tree at full grid size: run_training then refine_sequence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from occbench.datasets.semantickitti import SemanticKITTI
from occbench.testing import make_semantickitti_tree
from occbench_baselines.occfiner.infer import refine_sequence
from occbench_baselines.occfiner.train import TrainConfig, load_model, run_training
from occbench_baselines.occfiner.windows import WindowConfig

torch.set_num_threads(1)


@pytest.mark.slow
def test_run_training_and_refine_on_semantickitti_tree(tmp_path):
    root = make_semantickitti_tree(tmp_path / "kitti", {"00": 6}, onboard={"noisy": 0.2})
    ds = SemanticKITTI(root, split="train", onboard="noisy", sequences=["00"])
    wcfg = WindowConfig(local=2, reference=1, reference_radius=3)
    cfg = TrainConfig(epochs=1, progress=False, lovasz_max_voxels=2**14)
    hist = run_training(ds.sequences, tmp_path / "run", "small", cfg, wcfg)
    assert len(hist) == 1 and hist[0]["steps"] == len(ds["00"].labelled_frames) and np.isfinite(hist[0]["loss"])
    assert hist[0]["voxels"] > 0
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text())["epoch"] == 1
    model = load_model(tmp_path / "run" / "checkpoint-last.pt")
    seq = ds["00"]
    out = list(refine_sequence(model, seq.prediction, seq.poses, seq.num_scans, [5], wcfg, progress=False))
    assert [f for f, _ in out] == [5]
    assert out[0][1].shape == (256, 256, 32) and out[0][1].dtype == np.uint8 and out[0][1].max() < 20

"""OccFiner trains on every dataset occbench loads (SSCBench-KITTI360's 19 classes included), through a command
named for the method, and its missing-checkpoint hint trains on the dataset the user is on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from occbench.dataset_cards import dataset_names
from occbench.datasets import SSCBenchKITTI360
from occbench.errors import MissingDataError
from occbench.labels import load_label_map
from occbench.testing import make_sscbench_kitti360_tree
from occbench_baselines.occfiner.command import train
from occbench_baselines.occfiner.method import OccFiner, OccFinerStage1

DRIVE = "2013_05_28_drive_0000_sync"  # a train drive of SSCBench-KITTI360


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_sscbench_kitti360_tree(tmp_path_factory.mktemp("k360"), {DRIVE: 11}, onboard={"noisy": 0.2}, seed=4)


def test_the_command_is_named_for_the_method_and_offers_every_dataset():
    assert train.name == "occfiner-train"
    choices = next(p for p in train.params if p.name == "dataset").type.choices
    assert tuple(choices) == dataset_names() and "sscbench-kitti360" in choices


def test_trains_on_sscbench_kitti360_with_its_classes(tree, tmp_path):
    ck = tmp_path / "k360-noisy.pt"
    r = CliRunner().invoke(
        train,
        [
            "--dataset",
            "sscbench-kitti360",
            "--root",
            str(tree),
            "--onboard",
            "noisy",
            "--sequence",
            DRIVE,
            "--config",
            "tiny",
            "--epochs",
            "1",
            "--max-steps-per-epoch",
            "1",
            "--local",
            "2",
            "--reference",
            "1",
            "--reference-radius",
            "3",
            "--lovasz-voxels",
            "16384",
            "--output",
            str(tmp_path / "run"),
            "--export",
            str(ck),
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output + repr(r.exception)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["dataset"]["dataset"] == "sscbench-kitti360" and run["train_config"]["label_map"] == "kitti360"
    from occbench_baselines.occfiner.train import load_model

    model = load_model(ck)
    assert model.cfg.num_classes == load_label_map("kitti360").num_classes == 19
    seq = SSCBenchKITTI360(tree, split="train", onboard="noisy", sequences=[DRIVE])[DRIVE]
    out = dict(OccFinerStage1(checkpoint=str(ck)).refine(seq, [0, 5]))
    assert sorted(out) == [0, 5]
    for grid in out.values():
        assert grid.shape == (256, 256, 32) and grid.dtype == np.uint8 and int(grid.max()) < 19


def test_missing_checkpoint_hint_names_the_dataset_in_use(tree):
    seq = SSCBenchKITTI360(tree, split="train", onboard="noisy", sequences=[DRIVE])[DRIVE]
    with pytest.raises(MissingDataError) as e:
        list(OccFiner(sensor="camera").refine(seq, [0]))
    msg = str(e.value)
    assert (
        f"occbench occfiner-train --dataset sscbench-kitti360 --root {tree} --onboard noisy --config paper --epochs 15"
    ) in msg
    assert "--dataset mini" not in msg

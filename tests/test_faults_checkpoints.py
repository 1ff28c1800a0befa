"""Checkpoints that load safely (plain containers) but hold wrong types or insane sizes: refused before a model or a
window is built, naming the file and the entry; the shipped checkpoints pass the same check."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from occbench.cli import main
from occbench.testing import make_semantickitti_tree

SHIPPED = Path("occbench_baselines/occfiner/checkpoints/voxformer-sim.pt")
BASE = torch.load(SHIPPED, weights_only=True)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(tmp_path_factory.mktemp("ck") / "kitti", {"08": 11}, onboard={"noisy": 0.2}, seed=4)


def _set(path: str, value):
    def edit(ck):
        *keys, last = path.split(".")
        cur = ck
        for k in keys:
            cur = cur[k]
        if value is KeyError:
            del cur[last]
        else:
            cur[last] = value

    return edit


VARIANTS = {
    "window-local-1e9": (_set("window_config.local", 10**9), "window_config.local"),
    "window-local-float": (_set("window_config.local", 4.0), "window_config.local"),
    "window-radius-text": (_set("window_config.reference_radius", "10"), "window_config.reference_radius"),
    "window-unknown-key": (_set("window_config.frames", 3), "window_config"),
    "window-list": (_set("window_config", [4, 2]), "window_config"),
    "hidden-1e9": (_set("model_config.hidden", 10**9), "model_config.hidden"),
    "channels-text": (_set("model_config.enc_channels", "8,16"), "model_config.enc_channels"),
    "heads-bool": (_set("model_config.heads", True), "model_config.heads"),
    "origin-nan": (_set("model_config.origin", [0.0, float("nan"), 0.0]), "model_config.origin"),
    "model-config-list": (_set("model_config", [1, 2]), "'model_config'"),
    "unknown-model-key": (_set("model_config.evil", 1), "'model_config'"),
    "model-not-tensors": (_set("model", {"w": 3}), "'model'"),
    "weights-of-another-size": (_set("model_config.hidden", 48), "weights fit its model_config"),
}


def _write(tmp_path, name):
    ck = copy.deepcopy(BASE)
    VARIANTS[name][0](ck)
    p = tmp_path / f"{name}.pt"
    torch.save(ck, p)
    return p


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_wrong_checkpoint_values_are_named(tmp_path, tree, name):
    p = _write(tmp_path, name)
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--onboard",
            "noisy",
            "--method",
            "occfiner-stage1",
            "-O",
            f"checkpoint={p}",
            "-O",
            "device=cpu",
            "-j",
            "1",
            "-q",
            "--no-city",
            "--no-consistency",
            "-o",
            str(tmp_path / "r.json"),
        ],
    )
    assert r.exit_code == 1, (r.output, r.exception)
    assert f"error: {p}: expected " in r.output and VARIANTS[name][1] in r.output, r.output
    assert not (tmp_path / "r.json").exists()


def test_a_window_option_out_of_bounds_is_refused(tmp_path, tree):
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--onboard",
            "noisy",
            "--method",
            "occfiner-stage1",
            "-O",
            f"checkpoint={SHIPPED}",
            "-O",
            "local=1000000000",
            "-O",
            "device=cpu",
            "-j",
            "1",
            "-q",
            "--no-city",
            "--no-consistency",
            "-o",
            str(tmp_path / "r.json"),
        ],
    )
    assert r.exit_code == 1 and "local=1000000000: expected an integer in [1, 64]" in r.output, r.output


def test_shipped_checkpoints_pass_the_check():
    from occbench_baselines.occfiner.checkpoint_check import check_occfiner_checkpoint

    for p in sorted(Path("occbench_baselines/occfiner/checkpoints").glob("*.pt")):
        check_occfiner_checkpoint(p, torch.load(p, weights_only=True))

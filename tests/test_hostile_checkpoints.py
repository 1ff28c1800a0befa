"""A crafted checkpoint whose unpickling would create a marker file is refused by every entry point that loads
checkpoints, and the marker never appears; legacy checkpoints of one's own convert once."""

from __future__ import annotations

import io
import pathlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from occbench.checkpoints import convert_legacy, load_checkpoint_file
from occbench.cli import main
from occbench.errors import FormatError
from occbench.testing import make_semantickitti_tree


class _Payload:
    """Unpickling this calls ``Path.touch(marker)``: stands for any code a hostile file could run."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(
        tmp_path_factory.mktemp("ck") / "kitti", {"00": 6, "08": 6, "11": 6}, onboard={"noisy": 0.2}, seed=4
    )


@pytest.fixture()
def evil(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pt"
    buf = io.BytesIO()
    torch.save({"format": "occfiner-export-1", "model_config": _Payload(marker), "model": {}}, buf)
    path.write_bytes(buf.getvalue())
    torch.load(path, weights_only=False)  # the file really is hostile: a full unpickle runs its code
    assert marker.exists()
    marker.unlink()
    return path, marker


def test_loader_refuses_the_payload_and_says_how_to_convert(evil):
    path, marker = evil
    with pytest.raises(FormatError) as e:
        load_checkpoint_file(path)
    assert not marker.exists()
    msg = str(e.value)
    assert str(path) in msg and "weights_only=True" in msg and "python -m occbench.checkpoints" in msg


EVALUATE = [
    "evaluate",
    "--dataset",
    "semantickitti",
    "--split",
    "val",
    "--onboard",
    "noisy",
    "--no-city",
    "--no-consistency",
    "-q",
]


@pytest.mark.parametrize("method,workers", [("occfiner", 1), ("occfiner-stage1", 1), ("occfiner", 2)])
def test_evaluate_refuses_a_hostile_checkpoint(tree, evil, method, workers):
    path, marker = evil
    opts = ["-O", "sensor=lidar"] if method == "occfiner" else []
    r = CliRunner().invoke(
        main,
        EVALUATE + ["--root", str(tree), "--method", method, "-O", f"checkpoint={path}", *opts, "-j", str(workers)],
    )
    assert not marker.exists()
    assert r.exit_code == 1 and str(path) in r.output and "weights_only" in r.output, r.output


def test_refine_refuses_a_hostile_checkpoint(tree, evil, tmp_path):
    path, marker = evil
    r = CliRunner().invoke(
        main,
        [
            "refine",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--onboard",
            "noisy",
            "--method",
            "occfiner",
            "-O",
            f"checkpoint={path}",
            "-O",
            "sensor=lidar",
            "-o",
            str(tmp_path / "out"),
            "-j",
            "1",
            "-q",
        ],
    )
    assert not marker.exists()
    assert r.exit_code == 1 and str(path) in r.output, r.output


def test_autolabel_source_refuses_a_hostile_checkpoint(tree, evil, tmp_path):
    path, marker = evil
    r = CliRunner().invoke(
        main,
        [
            "autolabel",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--train-sequence",
            "00",
            "--eval-sequence",
            "08",
            "--pl-sequence",
            "11",
            "--no-gt",
            "--preset",
            "ci",
            "--source",
            f"occfiner:noisy:checkpoint={path},sensor=lidar",
            "--max-eval-frames",
            "1",
            "--out",
            str(tmp_path / "runs"),
            "--markdown",
            str(tmp_path / "t.md"),
            "--quiet",
        ],
    )
    assert not marker.exists()
    assert r.exit_code == 1 and str(path) in r.output, r.output


def test_train_does_not_resume_from_a_hostile_checkpoint(tree, evil, tmp_path):
    path, marker = evil
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint-last.pt").write_bytes(path.read_bytes())
    r = CliRunner().invoke(
        main,
        [
            "occfiner-train",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--onboard",
            "noisy",
            "--split",
            "val",
            "--config",
            "tiny",
            "--epochs",
            "1",
            "--max-steps-per-epoch",
            "1",
            "--output",
            str(run),
            "--quiet",
        ],
    )
    assert not marker.exists()
    assert r.exit_code != 0 and "checkpoint-last.pt" in (r.output + str(r.exception)), r.output


def test_export_and_load_model_refuse_a_hostile_checkpoint(evil, tmp_path):
    from occbench_baselines.occfiner.export import export_checkpoint
    from occbench_baselines.occfiner.train import load_model

    path, marker = evil
    with pytest.raises(FormatError):
        export_checkpoint(path, tmp_path / "out.pt")
    with pytest.raises(FormatError):
        load_model(path)
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04" + b"\0" * 40])
def test_corrupt_checkpoints_are_format_errors(tmp_path, content):
    p = tmp_path / "c.pt"
    p.write_bytes(content)
    with pytest.raises(FormatError, match="c.pt"):
        load_checkpoint_file(p)


def test_shipped_checkpoints_load_as_plain_data():
    from occbench_baselines.occfiner.method import CHECKPOINT_DIR

    shipped = sorted(CHECKPOINT_DIR.glob("*.pt"))
    assert shipped
    for p in shipped:
        ck = load_checkpoint_file(p)
        assert ck["format"] == "occfiner-export-1" and all(isinstance(v, torch.Tensor) for v in ck["model"].values())


def test_a_legacy_checkpoint_of_ones_own_converts_with_every_tensor_equal(tmp_path):
    legacy = {
        "model": {"w": torch.randn(3, 4)},
        "rng": {"numpy": np.random.RandomState(1).get_state()},
        "history": [{"loss": np.float64(0.5)}],
    }
    src = tmp_path / "old.pt"
    torch.save(legacy, src)
    with pytest.raises(FormatError, match="python -m occbench.checkpoints"):
        load_checkpoint_file(src)
    convert_legacy(src, tmp_path / "new.pt")
    new = load_checkpoint_file(tmp_path / "new.pt")
    assert torch.equal(new["model"]["w"], legacy["model"]["w"])
    kind, keys, *rest = new["rng"]["numpy"]
    assert kind == "MT19937" and np.array_equal(np.asarray(keys), legacy["rng"]["numpy"][1])
    assert tuple(rest) == tuple(legacy["rng"]["numpy"][2:]) and new["history"][0]["loss"] == 0.5

"""Training loop: loss decreases / overfits a tiny synthetic case, checkpoints, resume, flips, lr decay."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from occbench_baselines.occfiner.model import OccFinerConfig, OccFinerNet
from occbench_baselines.occfiner.train import TrainConfig, apply_flips, draw_flips, load_model, train

torch.set_num_threads(1)
X, Y, Z, T = 64, 32, 8, 3


def blob_scene(rng: np.random.Generator) -> np.ndarray:
    """Ground-truth-like scene: ground (class 9 road) at z=0, a few boxes of classes 1..5, empty elsewhere."""
    g = np.zeros((X, Y, Z), np.uint8)
    g[:, :, 0] = 9
    for _ in range(3):
        x, y = rng.integers(0, X - 8), rng.integers(0, Y - 8)
        sx, sy, sz = rng.integers(3, 8), rng.integers(3, 8), rng.integers(2, Z)
        g[x : x + sx, y : y + sy, 1:sz] = rng.integers(1, 6)
    return g


def make_batches(n: int, seed: int = 0, noise: float = 0.2) -> list[dict]:
    """Onboard = gt with a fraction of voxels replaced by random classes; frames differ by small shifts."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        gt = blob_scene(rng)
        gts, preds, tfs = [], [], []
        for t in range(T):
            g = np.roll(gt, t, axis=0)
            p = g.copy()
            m = rng.random(p.shape) < noise
            p[m] = rng.integers(0, 20, int(m.sum()))
            tf = np.eye(4, dtype=np.float32)
            tf[0, 3] = -0.2 * t
            gts.append(g)
            preds.append(p)
            tfs.append(tf)
        gt_arr = np.stack(gts)
        gt_arr[2] = 255  # a frame without ground truth
        gt_arr[0, :, :, Z - 1] = 255  # invalid voxels
        out.append(
            {
                "pred": torch.from_numpy(np.stack(preds))[None],
                "gt": torch.from_numpy(gt_arr)[None],
                "transforms": torch.from_numpy(np.stack(tfs))[None],
                "frames": torch.arange(T)[None],
            }
        )
    return out


def small_model(seed: int = 0) -> OccFinerNet:
    torch.manual_seed(seed)
    return OccFinerNet(OccFinerConfig.small(height=Z))


def test_training_overfits_a_tiny_case(tmp_path):
    batches = make_batches(1)
    cfg = TrainConfig(epochs=40, lr=1e-2, lr_decay=1.0, flip=False, progress=False, checkpoint_every_epochs=0)
    hist = train(small_model(), batches, cfg, tmp_path)
    assert len(hist) == 40
    assert hist[-1]["loss"] < 0.15 * hist[0]["loss"]
    assert hist[0]["train_miou"] < 0.05
    assert np.mean([h["train_miou"] for h in hist[-5:]]) > 0.3


def test_checkpoints_metrics_and_exact_resume(tmp_path):
    batches = make_batches(2, seed=1)
    cfg = TrainConfig(epochs=2, progress=False)
    full = small_model()
    h_full = train(full, batches, cfg, tmp_path / "full")
    for f in ("checkpoint-last.pt", "checkpoint-epoch-1.pt", "checkpoint-epoch-2.pt", "metrics.jsonl"):
        assert (tmp_path / "full" / f).exists(), f
    lines = [json.loads(s) for s in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert lines[0]["lr"] == pytest.approx(1e-3) and lines[1]["lr"] == pytest.approx(1e-3 * 0.98)

    # interrupted run: 1 epoch, then resume for the 2nd in a fresh process state
    part = small_model()
    train(part, batches, TrainConfig(epochs=1, progress=False), tmp_path / "part")
    resumed = small_model(seed=123)  # different init: everything must come from the checkpoint
    h_res = train(resumed, batches, cfg, tmp_path / "part", resume=True)
    assert len(h_res) == 2
    assert h_res[1]["loss"] == pytest.approx(h_full[1]["loss"], rel=1e-5)
    for (n, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=n)
    again = load_model(tmp_path / "part" / "checkpoint-last.pt")
    torch.testing.assert_close(again.state_dict()["head.out.weight"], full.state_dict()["head.out.weight"])


class _Crash(Exception):
    pass


def test_mid_epoch_resume_matches_uninterrupted(tmp_path):
    batches = make_batches(3, seed=2)
    cfg = TrainConfig(epochs=1, progress=False, checkpoint_every_steps=1)
    full = small_model()
    train(full, batches, cfg, tmp_path / "full")

    def crashing():
        yield batches[0]
        yield batches[1]
        raise _Crash

    class Loader:
        def __iter__(self):
            return crashing()

    with pytest.raises(_Crash):
        train(small_model(), Loader(), cfg, tmp_path / "part")
    ck = torch.load(tmp_path / "part" / "checkpoint-last.pt", weights_only=True)
    assert (ck["epoch"], ck["step"]) == (0, 2)
    resumed = small_model(seed=5)
    h = train(resumed, batches, cfg, tmp_path / "part")
    assert h[0]["steps"] == 3
    for (n, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=n)


def test_flips_are_seeded_and_applied_per_sample():
    f1, f2 = draw_flips(8, 0, 3, 7), draw_flips(8, 0, 3, 7)
    assert torch.equal(f1, f2)
    assert not torch.equal(draw_flips(64, 0, 3, 7), draw_flips(64, 0, 3, 8))
    v = torch.arange(2 * 2 * 4 * 3 * 2).view(2, 2, 4, 3, 2)
    out = apply_flips(v, torch.tensor([[True, False], [True, True]]))
    assert torch.equal(out[0], v[0].flip(1))
    assert torch.equal(out[1], v[1].flip(1).flip(2))

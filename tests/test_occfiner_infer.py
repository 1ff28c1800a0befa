"""Whole-sequence inference: window plan coverage, averaging of overlapping outputs, yield order."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.occfiner.infer import plan_windows, refine_sequence
from baselines.occfiner.model import OccFinerConfig, OccFinerNet
from occbench.datasets.windows import WindowConfig, window_indices

torch.set_num_threads(1)
N = 11
WCFG = WindowConfig(local=4, reference=2, reference_radius=4)


@pytest.mark.parametrize("stride", [1, 2, 4, 7])
def test_plan_covers_every_target_as_local_scan(stride):
    for targets in (range(N), [0, 5, 10], [3]):
        pivots = plan_windows(N, targets, WCFG, stride)
        covered = {i for p in pivots for i in window_indices(p, N, WCFG)[: WCFG.local]}
        assert set(targets) <= covered


def _setup():
    torch.manual_seed(0)
    model = OccFinerNet(OccFinerConfig.small(height=8)).eval()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 20, (N, 32, 16, 8)).astype(np.uint8)
    poses = np.tile(np.eye(4), (N, 1, 1))
    poses[:, 0, 3] = 0.5 * np.arange(N)
    return model, frames, poses


def test_probabilities_are_averages_of_local_outputs_of_covering_windows():
    model, frames, poses = _setup()
    out = list(refine_sequence(model, frames.__getitem__, poses, N, [0, 5, 10], WCFG, stride=2, return_probs=True, progress=False))
    assert [f for f, _ in out] == [0, 5, 10]
    pivots = plan_windows(N, [0, 5, 10], WCFG, 2)
    for f, probs in out:
        assert probs.shape == (20, 32, 16, 8)
        np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
        acc, n = 0, 0
        for p in pivots:
            idx = window_indices(p, N, WCFG)
            tf = np.stack([np.linalg.inv(poses[p]) @ poses[i] for i in idx]).astype(np.float32)
            with torch.no_grad():
                lg = model(torch.from_numpy(frames[idx])[None].long(), torch.from_numpy(tf)[None])
            for j in range(WCFG.local):
                if idx[j] == f:
                    acc = acc + torch.softmax(lg[0, j], 0).numpy()
                    n += 1
        assert n >= 1
        if f == 5:
            assert n == 2  # stride 2 with T_l = 4: interior scans are local scans of two windows
        np.testing.assert_allclose(probs, acc / n, atol=1e-5)


def test_labels_are_argmax_and_all_frames_yielded_in_order():
    model, frames, poses = _setup()
    labels = dict(refine_sequence(model, frames.__getitem__, poses, N, None, WCFG, progress=False))
    probs = dict(refine_sequence(model, frames.__getitem__, poses, N, [4], WCFG, return_probs=True, progress=False))
    assert sorted(labels) == list(range(N))
    assert labels[4].dtype == np.uint8 and labels[4].shape == (32, 16, 8)
    np.testing.assert_array_equal(labels[4], probs[4].argmax(0))

"""Whole-sequence inference: window plan coverage, averaging of overlapping outputs, yield order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occbench_baselines.occfiner.infer import plan_windows, refine_sequence
from occbench_baselines.occfiner.model import OccFinerConfig, OccFinerNet
from occbench_baselines.occfiner.windows import WindowConfig, window_indices

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
    out = list(
        refine_sequence(
            model, frames.__getitem__, poses, N, [0, 5, 10], WCFG, stride=2, return_probs=True, progress=False
        )
    )
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


def _reference_refine(model, frames, poses, n, targets, wcfg, stride=None):
    """The whole-grid algorithm, written out: every window's logits at once, softmax sums in window order."""
    tg = sorted(targets)
    sums, counts = {}, {}
    pivots = plan_windows(n, tg, wcfg, stride)
    for k, p in enumerate(pivots):
        idx = window_indices(p, n, wcfg)
        js = [j for j in range(wcfg.local) if idx[j] in tg]
        if not js:
            continue
        ref = poses[min(max(p, 0), n - 1)]
        tf = np.stack([np.linalg.inv(ref) @ poses[i] for i in idx]).astype(np.float32)
        outputs = torch.zeros(1, len(idx), dtype=torch.bool)
        outputs[0, js] = True
        with torch.no_grad():
            lg = model(torch.from_numpy(frames[idx])[None].long(), torch.from_numpy(tf)[None], None, outputs)
        probs = torch.softmax(lg.permute(0, 2, 3, 4, 1).float(), dim=-1)
        for kk, j in enumerate(js):
            f = idx[j]
            sums[f] = probs[kk].clone() if f not in sums else sums[f] + probs[kk]
            counts[f] = counts.get(f, 0) + 1
    return {f: s.argmax(-1).to(torch.uint8).numpy() for f, s in sums.items()}, {
        f: s / counts[f] for f, s in sums.items()
    }


@pytest.mark.parametrize("slab_rows", [3, 32])
def test_labels_and_sums_are_bit_identical_to_the_whole_grid_algorithm(slab_rows):
    """Slabs of rows, per-scan embedding rows and the compiled kernels change no bit (not just the labels)."""
    torch.manual_seed(1)
    model = OccFinerNet(OccFinerConfig.small(height=8, input_skip=2.0)).eval()
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 20, (N, 32, 16, 8)).astype(np.uint8)
    frames[rng.random(frames.shape) < 0.85] = 0  # mostly empty, like a scene: the sparse embedding path
    frames[:, :2, :3, 0] = 255
    poses = np.tile(np.eye(4), (N, 1, 1))
    poses[:, 0, 3] = 0.4 * np.arange(N)
    poses[:, 1, 3] = 0.1 * np.arange(N) ** 1.5
    targets = [0, 1, 4, 5, 10]
    ref_labels, ref_means = _reference_refine(model, frames, poses, N, targets, WCFG)
    got = dict(refine_sequence(model, frames.__getitem__, poses, N, targets, WCFG, slab_rows=slab_rows, progress=False))
    assert sorted(got) == targets
    for f in targets:
        np.testing.assert_array_equal(got[f], ref_labels[f])
    probs = dict(
        refine_sequence(
            model, frames.__getitem__, poses, N, targets, WCFG, slab_rows=slab_rows, return_probs=True, progress=False
        )
    )
    for f in targets:
        ref = ref_means[f].permute(3, 0, 1, 2).numpy()
        assert np.array_equal(probs[f].view(np.uint32), ref.view(np.uint32))


def test_head_in_slabs_equals_forward_bit_for_bit():
    torch.manual_seed(2)
    m = OccFinerNet(OccFinerConfig.small(height=8, input_skip=3.0)).eval()
    pred = torch.randint(0, 20, (1, 4, 32, 16, 8))
    pred[0, 1, :3] = 255
    tf = torch.eye(4).repeat(1, 4, 1, 1)
    tf[0, :, 0, 3] = torch.arange(4.0)
    outputs = torch.tensor([[True, False, True, True]])
    with torch.no_grad():
        full = m(pred, tf, None, outputs).permute(0, 2, 3, 4, 1)  # (K, X, Y, Z, C)
        feats, cls = m.head_features(pred.to(torch.uint8), tf, outputs)
        for a in range(0, 32, 5):
            assert torch.equal(m.slab_logits(feats[:, :, a : a + 5], cls[:, a : a + 5]), full[:, a : a + 5])


def test_sparse_rows_give_the_batch_embedding():
    import occbench_baselines.occfiner.model as M

    torch.manual_seed(3)
    enc = OccFinerNet(OccFinerConfig.small(height=8)).feature_encoder
    pred = torch.randint(1, 20, (3, 16, 16, 8))
    pred[torch.rand(pred.shape) > 0.1] = 0
    pred[1, :2, :, 2] = 255
    assert M.sparse_path(pred.device, lambda: int((pred != 0).sum()), pred.numel())
    rows = [enc.sparse_rows(p.to(torch.uint8))[0] for p in pred]
    with torch.no_grad():
        assert torch.equal(enc.embedding_from_rows(rows, 16, 16), enc.embedding(pred))


def test_compiled_kernels_equal_torch():
    from occbench_baselines.occfiner import _kernels as K

    assert K.AVAILABLE  # numba is a declared dependency: its absence must not go unnoticed
    g = torch.Generator().manual_seed(4)
    a, b = torch.rand(500, 20, generator=g), torch.rand(500, 20, generator=g)
    a[:50] = 0.25  # ties: the first maximal class, like torch
    b[:50] = 0.5
    a[50, 3] = float("nan")  # NaN counts as the maximum
    assert torch.equal(K.add_argmax(a, b), K.add_argmax_torch(a, b))
    lg = torch.randn(4, 6, 20, generator=g)
    cls = torch.randint(0, 21, (4, 6), generator=g).to(torch.uint8)
    cls[0, 0] = 255
    gain = torch.randn(20, generator=g)
    ref = lg.clone()
    valid = cls < 20
    idx = cls.clamp(0, 19).long().unsqueeze(-1)
    ref = ref + torch.zeros_like(ref).scatter_(-1, idx, gain[idx] * valid.unsqueeze(-1).float())
    got = lg.clone()
    assert K.add_gain(got, cls, gain) and torch.equal(got, ref)

"""OccFiner stage-1 network: parameter count, shapes, exactness of the folded encoders, attention blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from occbench_baselines.occfiner.attention import FocalAttention, PillarAttention, SoftComp, SoftSplit
from occbench_baselines.occfiner.model import (
    PAPER_PARAMS,
    OccFinerConfig,
    OccFinerNet,
    _flip_maps,
    relative_coordinates_torch,
)
from occbench_baselines.occfiner.windows import relative_coordinates

torch.set_num_threads(1)


def _pose(rng: np.random.Generator) -> np.ndarray:
    a, b = rng.uniform(-0.3, 0.3, 2)
    Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    Rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    T = np.eye(4)
    T[:3, :3] = Rz @ Rx
    T[:3, 3] = rng.uniform(-8, 8, 3)
    return T


def test_paper_parameter_count_matches_paper():
    n = OccFinerNet(OccFinerConfig.paper()).num_parameters()
    assert abs(n - PAPER_PARAMS) / PAPER_PARAMS < 0.05, n


def test_small_config_is_small():
    assert OccFinerNet(OccFinerConfig.small()).num_parameters() < 0.1 * PAPER_PARAMS


def test_forward_shape_and_all_parameters_get_gradients():
    torch.manual_seed(0)
    cfg = OccFinerConfig.small(height=8)
    m = OccFinerNet(cfg)
    B, T, X, Y, Z = 1, 3, 128, 64, 8
    pred = torch.randint(0, 20, (B, T, X, Y, Z))
    pred[0, 1, :5] = 255
    tf = torch.from_numpy(np.stack([_pose(np.random.default_rng(i)) for i in range(T)])).float()[None]
    out = m(pred, tf, torch.tensor([[True, False]]))
    assert out.shape == (B, T, 20, X, Y, Z)
    out.float().pow(2).mean().backward()
    dead = [n for n, p in m.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not dead, dead


def test_feature_embedding_equals_linear_on_folded_one_hot():
    torch.manual_seed(1)
    cfg = OccFinerConfig.small(height=8, embed_dim=40)
    for e in (8, 40):
        enc = OccFinerNet(OccFinerConfig.small(height=8, embed_dim=e)).feature_encoder
        pred = torch.randint(0, 20, (2, 16, 16, 8))
        pred[0, :3, :, 2] = 255
        emb = enc.embedding(pred)
        oh = F.one_hot(pred.clamp(max=19), 20).float() * (pred != 255)[..., None]  # (N,X,Y,Z,C)
        ref = enc.embed(oh.reshape(2, 16, 16, 8 * 20))  # index z*C + c
        torch.testing.assert_close(emb, ref, rtol=1e-5, atol=1e-5)
        g = torch.randn_like(emb)
        (gw,) = torch.autograd.grad((emb * g).sum(), enc.embed.weight)
        (gw_ref,) = torch.autograd.grad((ref * g).sum(), enc.embed.weight)
        torch.testing.assert_close(gw, gw_ref, rtol=1e-4, atol=1e-4)
    del cfg


def test_relative_coordinates_torch_matches_numpy_geometry():
    T = _pose(np.random.default_rng(3))
    ref = relative_coordinates(T, (16, 8, 4))
    got = relative_coordinates_torch(torch.from_numpy(T)[None], (16, 8, 4))[0].numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-5)
    # identity transform = the voxel centres of the grid
    ident = relative_coordinates_torch(torch.eye(4, dtype=torch.float64)[None], (256, 256, 32))[0]
    np.testing.assert_allclose(ident[0, 0, 0].numpy(), [0.1, -25.5, -1.9], atol=1e-9)
    np.testing.assert_allclose(ident[255, 255, 31].numpy(), [51.1, 25.5, 4.3], atol=1e-9)


def test_positional_embedding_factorised_equals_explicit_and_flips_with_grid():
    torch.manual_seed(2)
    enc = OccFinerNet(OccFinerConfig.small(height=8)).positional_encoder
    tf = torch.from_numpy(np.stack([_pose(np.random.default_rng(i)) for i in range(3)])).float()
    fast = enc.embedding(tf, 16, 32)
    slow = enc.embedding(tf, 16, 32, explicit=True)
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-4)
    # a flipped grid: coordinates of voxel (i, j) are those of (X-1-i, j) -> flipped embedding
    coords = relative_coordinates_torch(tf, (16, 32, 8)) / 51.2
    flipped = enc.embed(coords.flip(1).reshape(3, 16, 32, 24))
    got = _flip_maps(fast, torch.tensor([[True, False]] * 3), dims=(1, 2))
    torch.testing.assert_close(got, flipped, rtol=1e-4, atol=1e-4)
    got_y = _flip_maps(fast, torch.tensor([[False, True], [False, False], [True, True]]), dims=(1, 2))
    torch.testing.assert_close(got_y[0], enc.embed(coords[0].flip(1).reshape(16, 32, 24)), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got_y[1], fast[1])
    torch.testing.assert_close(got_y[2], fast[2].flip(0).flip(1))


def test_soft_split_then_composition_with_identity_projections_is_identity():
    C, k = 2, 7
    ss, sc = SoftSplit(C, C * k * k, k, 2, 3), SoftComp(C, C * k * k, k, 2, 3)
    with torch.no_grad():
        for lin in (ss.embed, sc.embed):
            lin.weight.copy_(torch.eye(C * k * k))
            lin.bias.zero_()
    x = torch.randn(3, C, 16, 16)
    tok = ss(x)
    assert tok.shape == (3, 8, 8, C * k * k)
    torch.testing.assert_close(sc(tok, (16, 16)), x)


def _naive_focal(q, k, v, heads, window):
    """Loop reference: own-window fine tokens (all frames) + window-mean coarse tokens (zero padded)."""
    b, t, h, w, c = q.shape
    gh, gw = -(-h // window), -(-w // window)
    kp = F.pad(k, (0, 0, 0, gw * window - w, 0, gh * window - h))
    vp = F.pad(v, (0, 0, 0, gw * window - w, 0, gh * window - h))
    kc = kp.view(b, t, gh, window, gw, window, c).mean((3, 5)).reshape(b, -1, c)
    vc = vp.view(b, t, gh, window, gw, window, c).mean((3, 5)).reshape(b, -1, c)
    out = torch.zeros_like(q)
    hd = c // heads
    for bi in range(b):
        for i in range(gh):
            for j in range(gw):
                ys, xs = slice(i * window, min((i + 1) * window, h)), slice(j * window, min((j + 1) * window, w))
                qq = q[bi, :, ys, xs].reshape(-1, c)
                kk = torch.cat([k[bi, :, ys, xs].reshape(-1, c), kc[bi]])
                vv = torch.cat([v[bi, :, ys, xs].reshape(-1, c), vc[bi]])
                res = []
                for hh in range(heads):
                    sl = slice(hh * hd, (hh + 1) * hd)
                    a = torch.softmax(qq[:, sl] @ kk[:, sl].T / hd**0.5, -1)
                    res.append(a @ vv[:, sl])
                out[bi, :, ys, xs] = torch.cat(res, -1).view(t, ys.stop - ys.start, xs.stop - xs.start, c)
    return out


@pytest.mark.parametrize("hw", [(4, 4), (5, 6)])
def test_focal_attention_matches_loop_reference(hw):
    torch.manual_seed(4)
    att = FocalAttention(16, heads=2, window=2)
    q, k, v = (torch.randn(2, 3, *hw, 16) for _ in range(3))
    got = att(q, k, v)
    ref = att.proj(_naive_focal(q, k, v, 2, 2))
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


def test_pillar_attention_matches_loop_reference():
    torch.manual_seed(5)
    W_z, d, t = 4, 3, 2
    att = PillarAttention(W_z * d, W_z)
    q, k, v = (torch.randn(1, t, 2, 3, W_z * d) for _ in range(3))
    got = att(q, k, v)
    for y in range(2):
        for x in range(3):
            qq, kk, vv = (a[0, :, y, x].reshape(t * W_z, d) for a in (q, k, v))  # channel index z*d + j
            ref = torch.softmax(qq @ kk.T / d**0.5, -1) @ vv
            torch.testing.assert_close(got[0, :, y, x].reshape(t * W_z, d), ref, rtol=1e-4, atol=1e-5)


def test_head_on_a_subset_of_frames_equals_the_full_head():
    torch.manual_seed(5)
    m = OccFinerNet(OccFinerConfig.small(height=8)).eval()
    B, T = 2, 3
    pred = torch.randint(0, 20, (B, T, 32, 16, 8))
    tf = (
        torch.from_numpy(np.stack([_pose(np.random.default_rng(i)) for i in range(T)])).float()[None].repeat(B, 1, 1, 1)
    )
    outputs = torch.tensor([[True, False, True], [False, True, False]])
    with torch.no_grad():
        full = m(pred, tf)
        sub = m(pred, tf, None, outputs)
    assert sub.shape == (3, 20, 32, 16, 8)
    torch.testing.assert_close(sub, full[outputs], rtol=1e-5, atol=1e-5)
    # gradients of a loss on the selected frames are the same either way
    m.train()
    g1 = torch.autograd.grad(m(pred, tf)[outputs].square().mean(), list(m.parameters()), allow_unused=True)
    g2 = torch.autograd.grad(m(pred, tf, None, outputs).square().mean(), list(m.parameters()), allow_unused=True)
    for a, b in zip(g1, g2):
        if a is None:
            assert b is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("occupied", [0.05, 0.6])
def test_sparse_and_dense_embedding_paths_agree(occupied):
    """Mostly-empty input takes the sparse CPU path, dense input the dense one; both equal the explicit Linear."""
    import occbench_baselines.occfiner.model as M

    torch.manual_seed(3)
    enc = OccFinerNet(OccFinerConfig.small(height=8)).feature_encoder
    pred = torch.randint(1, 20, (2, 16, 16, 8))
    pred[torch.rand(pred.shape) > occupied] = 0
    pred[0, :2, :, 3] = 255
    oh = F.one_hot(pred.clamp(max=19), 20).float() * (pred != 255)[..., None]
    ref = enc.embed(oh.reshape(2, 16, 16, 8 * 20))
    g = torch.randn_like(ref)
    (gw_ref,) = torch.autograd.grad((ref * g).sum(), enc.embed.weight)
    for sparse in (True, False):
        M.SPARSE_EMBEDDING_ON_CPU = sparse
        try:
            emb = enc.embedding(pred)
            (gw,) = torch.autograd.grad((emb * g).sum(), enc.embed.weight)
        finally:
            M.SPARSE_EMBEDDING_ON_CPU = True
        torch.testing.assert_close(emb, ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gw, gw_ref, rtol=1e-4, atol=1e-4)


def test_named_configurations():
    assert OccFinerConfig.named("small") == OccFinerConfig.small()
    assert OccFinerConfig.named("paper") == OccFinerConfig.paper()
    tiny = OccFinerNet(OccFinerConfig.named("tiny")).num_parameters()
    assert tiny < OccFinerNet(OccFinerConfig.small()).num_parameters()
    with pytest.raises(ValueError):
        OccFinerConfig.named("huge")


def test_input_skip_starts_as_identity_and_is_learned():
    torch.manual_seed(6)
    m = OccFinerNet(OccFinerConfig.small(height=8, input_skip=4.0))
    assert m.num_parameters() == OccFinerNet(OccFinerConfig.small(height=8)).num_parameters() + 20
    pred = torch.randint(0, 20, (1, 2, 32, 16, 8))
    pred[0, 0, :4] = 255
    tf = torch.eye(4).repeat(1, 2, 1, 1)
    out = m(pred, tf)
    ok = pred != 255
    assert torch.equal(out.argmax(2)[ok], pred[ok])  # an untrained network reproduces its input
    sub = m(pred, tf, None, torch.tensor([[True, False]]))
    torch.testing.assert_close(sub, out[:, 0], rtol=1e-5, atol=1e-5)
    sub.square().mean().backward()
    assert m.input_gain.grad is not None and bool(torch.any(m.input_gain.grad != 0))
    assert OccFinerConfig.from_dict(OccFinerConfig.small(input_skip=4.0).to_dict()).input_skip == 4.0

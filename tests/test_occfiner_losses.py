"""Stage-1 loss: weighted CE + Lovász-softmax with ignore 255."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from occbench.labels import load_label_map
from occbench_baselines.occfiner.losses import SSCLoss, lovasz_softmax_flat
from occbench_baselines.occfiner.model import class_weights_tensor


def test_lovasz_equals_jaccard_loss_on_hard_predictions():
    rng = np.random.default_rng(0)
    labels = torch.from_numpy(rng.integers(0, 5, 300))
    pred = torch.from_numpy(rng.integers(0, 5, 300))
    pred[:100] = labels[:100]
    probs = F.one_hot(pred, 6).float()  # class 5 absent from gt and pred
    ious = []
    for c in range(6):
        if (labels == c).any():
            inter = ((pred == c) & (labels == c)).sum().item()
            union = ((pred == c) | (labels == c)).sum().item()
            ious.append(inter / union)
    expected = float(np.mean([1 - i for i in ious]))
    assert abs(lovasz_softmax_flat(probs, labels).item() - expected) < 1e-6


def test_lovasz_is_zero_for_perfect_and_positive_otherwise():
    labels = torch.tensor([0, 1, 2, 2, 1])
    assert lovasz_softmax_flat(F.one_hot(labels, 3).float(), labels).item() == 0.0
    assert lovasz_softmax_flat(torch.full((5, 3), 1 / 3), labels).item() > 0.3


def test_class_weights_are_lmscnet_formula():
    lm = load_label_map("semantickitti")
    w = class_weights_tensor().numpy()
    f = np.asarray(lm.voxel_frequencies)
    np.testing.assert_allclose(w, 1 / np.log(f + 0.001), rtol=1e-6)
    assert w[0] < w[1:].min()  # empty is the most frequent class


def test_ssc_loss_ignores_255_and_matches_manual_ce():
    torch.manual_seed(0)
    w = class_weights_tensor()
    logits = torch.randn(1, 2, 20, 4, 4, 2)
    gt = torch.randint(0, 20, (1, 2, 4, 4, 2), dtype=torch.uint8)
    gt[0, 1] = 255  # a frame without ground truth
    gt[0, 0, 0] = 255
    loss, parts = SSCLoss(w)(logits, gt)
    lg = logits.movedim(2, -1).reshape(-1, 20)
    tg = gt.reshape(-1).long()
    m = tg != 255
    ce = F.cross_entropy(lg[m], tg[m], weight=w)
    lov = lovasz_softmax_flat(F.softmax(lg[m], 1), tg[m])
    assert abs(loss.item() - (ce + lov).item()) < 1e-5
    assert parts["voxels"] == int(m.sum())
    # changing logits where gt is ignored changes nothing
    logits2 = logits.clone()
    logits2[0, 1] += 10 * torch.randn_like(logits2[0, 1])
    logits2[0, 0, :, 0] -= 5
    assert abs(SSCLoss(w)(logits2, gt)[0].item() - loss.item()) < 1e-6
    # all-ignore batch: zero loss that still backpropagates
    lg3 = logits.clone().requires_grad_()
    z, p = SSCLoss(w)(lg3, torch.full_like(gt, 255))
    z.backward()
    assert z.item() == 0.0 and p["voxels"] == 0


def test_lovasz_subsampling_uses_a_subset():
    torch.manual_seed(1)
    logits = torch.randn(1, 1, 20, 8, 8, 4)
    gt = torch.randint(0, 20, (1, 1, 8, 8, 4), dtype=torch.uint8)
    exact, p = SSCLoss()(logits, gt)
    sub, _ = SSCLoss(lovasz_max_voxels=64)(logits, gt)
    full, _ = SSCLoss(lovasz_max_voxels=10**6)(logits, gt)
    assert full.item() == exact.item()
    assert sub.item() != exact.item() and abs(sub.item() - exact.item()) < 0.5


def test_ssc_loss_gradient_equals_loss_on_the_valid_rows():
    """CE with ignore_index on the full (P, C) view has the same value and gradient as CE on the gathered valid rows."""
    torch.manual_seed(2)
    w = class_weights_tensor()
    logits = torch.randn(3, 20, 6, 4, 2, requires_grad=True)
    gt = torch.randint(0, 20, (3, 6, 4, 2), dtype=torch.uint8)
    gt[1] = 255
    gt[0, :2] = 255
    loss, _ = SSCLoss(w)(logits, gt)
    (g,) = torch.autograd.grad(loss, logits)
    lg = logits.movedim(1, -1).reshape(-1, 20)
    tg = gt.reshape(-1).long()
    m = tg != 255
    ref = F.cross_entropy(lg[m], tg[m], weight=w) + lovasz_softmax_flat(F.softmax(lg[m], 1), tg[m])
    (g_ref,) = torch.autograd.grad(ref, logits)
    assert abs(loss.item() - ref.item()) < 1e-5
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-7)

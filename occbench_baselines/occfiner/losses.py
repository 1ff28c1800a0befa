"""Stage-1 loss (paper §3.4, eq. 13): weighted cross-entropy + Lovász-softmax, ignore index 255.

Class weights are LMSCNet's ``1 / ln(f + 0.001)`` from voxel frequencies
(:meth:`occbench.labels.LabelMap.class_weights`). Both terms only see voxels whose ground truth is a
class id (255 = ignore/invalid, also every voxel of frames without ground truth). Lovász-softmax follows
Berman et al. 2018 (``classes='present'``: mean over classes present in the ground truth of the batch).
The exact Lovász term sorts every valid voxel once per present class, which dominates a CPU training
step at 256x256x32; ``lovasz_max_voxels`` (off by default) evaluates it on a random voxel subset instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IGNORE = 255


def flatten_valid(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE
) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (B, T, C, X, Y, Z) (or (N, C, ...)), target (B, T, X, Y, Z) -> (P, C) float32, (P,) long of valid
    voxels."""
    C = logits.shape[-4]
    lg = logits.movedim(-4, -1).reshape(-1, C)  # a view when the model made classes innermost
    tg = target.reshape(-1).long()
    valid = tg != ignore_index
    return lg[valid].float(), tg[valid]


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors; one row per class (C, P)."""
    gts = gt_sorted.sum(-1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(-1)
    union = gts + (1.0 - gt_sorted).cumsum(-1)
    jaccard = 1.0 - intersection / union
    if gt_sorted.shape[-1] > 1:
        jaccard[..., 1:] = jaccard[..., 1:] - jaccard[..., :-1]
    return jaccard


def lovasz_softmax_flat(probs: torch.Tensor, labels: torch.Tensor, classes: str = "present") -> torch.Tensor:
    """Lovász-softmax of probabilities (P, C) against labels (P,); mean over present (or all) classes.

    Classes are processed as rows of a (C', P) tensor so that the sort and the cumulative sums run along
    contiguous memory (sorting along dim 0 of (P, C) is ~6x slower on CPU).
    """
    if probs.numel() == 0:
        return probs.sum() * 0.0
    C = probs.shape[1]
    if classes == "present":
        cls = torch.unique(labels)
    else:
        cls = torch.arange(C, device=labels.device)
    fg = (labels[None, :] == cls[:, None]).to(probs.dtype)  # (C', P)
    errors = (fg - probs.t()[cls]).abs()
    if errors.device.type == "cpu":  # numpy's introsort is ~2.5x faster than torch.sort on CPU
        perm = torch.from_numpy(np.argsort(-errors.detach().numpy(), axis=1, kind="quicksort"))
        errors_sorted = errors.gather(1, perm)
    else:
        errors_sorted, perm = torch.sort(errors, dim=1, descending=True)
    fg_sorted = fg.gather(1, perm)
    return (errors_sorted * lovasz_grad(fg_sorted)).sum(1).mean()


@dataclass
class SSCLoss:
    """``ce_weight * CE(weights) + lovasz_weight * Lovász-softmax`` on valid voxels; returns (total, parts)."""

    class_weights: torch.Tensor | None = None
    ce_weight: float = 1.0
    lovasz_weight: float = 1.0
    ignore_index: int = IGNORE
    lovasz_max_voxels: int | None = None  # None: exact; else Lovász on a random subset of the valid voxels

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        # CE runs on the (P, C) view of all voxels with ``ignore_index`` (no copy of the valid rows: with
        # weights, mean reduction divides by the summed weight of the non-ignored voxels, the same value
        # as CE over the valid voxels only); Lovász gathers only the rows it uses.
        C = logits.shape[-4]
        lg = logits.movedim(-4, -1).reshape(-1, C)  # a view when the model made classes innermost
        tg = target.reshape(-1).long()
        valid = torch.nonzero(tg != self.ignore_index).squeeze(1)
        if valid.numel() == 0:
            zero = logits.float().sum() * 0.0
            return zero, {"ce": 0.0, "lovasz": 0.0, "loss": 0.0, "voxels": 0}
        lgf = lg.float()
        w = None if self.class_weights is None else self.class_weights.to(lgf.device, lgf.dtype)
        ce = F.cross_entropy(lgf, torch.where(tg == self.ignore_index, -100, tg), weight=w, ignore_index=-100)
        idx = valid
        if self.lovasz_max_voxels is not None and valid.numel() > self.lovasz_max_voxels:
            keep = torch.randperm(valid.numel(), device=tg.device)[: self.lovasz_max_voxels]
            idx = valid[keep]
        lov = lovasz_softmax_flat(F.softmax(lgf.index_select(0, idx), dim=1), tg.index_select(0, idx))
        total = self.ce_weight * ce + self.lovasz_weight * lov
        return total, {
            "ce": float(ce.detach()),
            "lovasz": float(lov.detach()),
            "loss": float(total.detach()),
            "voxels": int(valid.numel()),
        }

"""The protocol's reference onboard model: a small LMSCNet-like BEV U-Net over the single-scan ``.bin`` occupancy.

Like LMSCNet (Roldão et al., 3DV 2020) the 32 heights are the channels of a 2D network over the 256 x 256 BEV
plane; unlike LMSCNet there is one full-resolution head only (no 1:2/1:4/1:8 auxiliary heads, no 3D
segmentation head), which keeps a CPU training run on occbench-mini to minutes.

Shapes: input occupancy ``(B, X, Y, Z)`` uint8/bool (the dataset's [x, y, z] grids), logits
``(B, C, X, Y, Z)``. The network is fully convolutional with three stride-2 stages, so it trains on
random ``crop x crop`` windows (crop a multiple of 8) and predicts whole grids.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class StudentConfig:
    num_classes: int = 20
    height: int = 32
    width: int = 32  # base channel count; stages use width, 2*width, 3*width

    def __post_init__(self) -> None:
        if self.width < 4 or self.num_classes < 2 or self.height < 1:
            raise ValueError(f"bad student config {self}")


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class StudentNet(nn.Module):
    """BEV U-Net: ``(B, X, Y, Z)`` occupancy -> ``(B, C, X, Y, Z)`` logits."""

    def __init__(self, cfg: StudentConfig = StudentConfig()):
        super().__init__()
        self.cfg = cfg
        w, Z, C = cfg.width, cfg.height, cfg.num_classes
        self.full = nn.Sequential(nn.Conv2d(Z, w // 2, 3, padding=1), nn.ReLU(inplace=True))  # 1:1
        self.down1 = _block(Z, w, stride=2)  # 1:2
        self.down2 = _block(w, 2 * w, stride=2)  # 1:4
        self.down3 = _block(2 * w, 3 * w, stride=2)  # 1:8
        self.up2 = _block(3 * w + 2 * w, 2 * w)  # 1:4
        self.up1 = _block(2 * w + w, w)  # 1:2
        self.up0 = nn.Sequential(nn.Conv2d(w + w // 2 + Z, w, 3, padding=1), nn.ReLU(inplace=True))  # 1:1
        self.head = nn.Conv2d(w, C * Z, 1)

    def forward(self, occ: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C, X, Y, Z)`` (a non-contiguous view of :meth:`forward_czxy`)."""
        return self.forward_czxy(occ).permute(0, 1, 3, 4, 2)

    @torch.no_grad()
    def predict(self, occ: torch.Tensor) -> torch.Tensor:
        """Argmax labels ``(B, X, Y, Z)`` uint8."""
        return self.forward_czxy(occ).argmax(1).to(torch.uint8).permute(0, 2, 3, 1)

    def forward_czxy(self, occ: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C, Z, X, Y)``, contiguous (the layout the loss uses; targets are permuted instead)."""
        B, X, Y, Z = occ.shape
        if Z != self.cfg.height or X % 8 or Y % 8:
            raise ValueError(
                f"input (B, X, Y, Z) with Z={self.cfg.height} and X, Y multiples of 8; got {tuple(occ.shape)}"
            )
        x = occ.permute(0, 3, 1, 2).float()  # (B, Z, X, Y): heights as channels
        f0 = self.full(x)
        f1 = self.down1(x)
        f2 = self.down2(f1)
        f3 = self.down3(f2)
        u2 = self.up2(torch.cat([F.interpolate(f3, scale_factor=2.0, mode="nearest"), f2], 1))
        u1 = self.up1(torch.cat([F.interpolate(u2, scale_factor=2.0, mode="nearest"), f1], 1))
        u0 = self.up0(torch.cat([F.interpolate(u1, scale_factor=2.0, mode="nearest"), f0, x], 1))
        return self.head(u0).view(B, self.cfg.num_classes, Z, X, Y)


def soft_top2_loss(
    logits: torch.Tensor,
    top1: torch.Tensor,
    top2: torch.Tensor | None,
    q1: torch.Tensor | None,
    class_weights: torch.Tensor,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Class-weighted cross-entropy against hard (top-1) or two-class soft (top-2) targets.

    ``logits`` (B, C, ...); ``top1`` (B, ...) long, ``ignore_index`` where not supervised. With ``top2``
    and ``q1`` (the top-1 share ``c1 / (c1 + c2)`` in 0..1) a voxel's loss is
    ``w[top1] * (q1 * -log p[top1] + (1 - q1) * -log p[top2])``; without, ``w[top1] * -log p[top1]``.
    The sum is divided by the sum of ``w[top1]`` over supervised voxels, so for hard targets this is exactly
    ``F.cross_entropy(logits, top1, weight=w, ignore_index=ignore_index)``.
    """
    valid = top1 != ignore_index
    t1 = torch.where(valid, top1, torch.zeros_like(top1))
    logp = F.log_softmax(logits.float(), dim=1)
    nll1 = -logp.gather(1, t1.unsqueeze(1)).squeeze(1)
    if top2 is not None and q1 is not None:
        nll2 = -logp.gather(1, top2.clamp(0, logits.shape[1] - 1).unsqueeze(1)).squeeze(1)
        nll = q1 * nll1 + (1.0 - q1) * nll2
    else:
        nll = nll1
    w = class_weights[t1] * valid.to(logp.dtype)
    den = w.sum()
    if float(den) == 0.0:
        return logits.sum() * 0.0
    return (w * nll).sum() / den

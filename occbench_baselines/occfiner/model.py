"""OccFiner stage 1: the multi-to-multi local propagation network (paper §3.2, Fig. 2, Appendix D.1).

``OccFinerNet(cfg).forward(pred (B,T,X,Y,Z) long, transforms (B,T,4,4)) -> logits (B,T,C,X,Y,Z)``.

Pipeline (one window of T = T_l + T_r frames, every frame refined):

1. BEV feature encoder: the one-hot prediction (C classes x Z heights folded into C*Z channels; 255 = all
   zero) -> per-cell Linear + LayerNorm -> 4 blocks [MaxPool 2, 3x3 conv, ReLU, 3x3 conv, ReLU] -> 80 ch
   at X/16 x Y/16. The Linear on a one-hot vector is computed as a sum of embedding rows
   (``F.embedding_bag``), which is exactly the same map without building the C*Z x X x Y one-hot tensor.
2. BEV positional encoder, same blueprint, on the relative-coordinate volume of eq. 1 (voxel centres of
   frame i in the pivot frame, divided by ``coord_scale``), heights folded into 3*Z channels. The
   coordinates are affine in the height index, so the Linear over the 3*Z stack equals an affine map of
   the (x, y) column coordinates and the frame's z axis; it is computed that way (exact, no 3*Z x X x Y
   tensor). Summed with 1. (eq. 3).
3. Soft split (7x7, stride 2, padding 3) -> N DualFlow4D blocks -> soft composition, added back to the
   encoder features (FuseFormer/FlowLens residual).
4. Segmentation head mirroring the encoder: 4 blocks [3x3 conv, ReLU, 3x3 conv, ReLU, bilinear x2] back to
   X x Y, with parameter-free additive skips from the feature encoder (U-Net style; our choice, see docs),
   then a per-cell Linear to Z*C logits, unfolded to (C, X, Y, Z).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from occbench.geometry import ORIGIN, VOXEL_SIZE
from occbench_baselines.occfiner._kernels import add_gain
from occbench_baselines.occfiner.attention import DualFlow4DBlock, SoftComp, SoftSplit

IGNORE = 255
PAPER_PARAMS = 4.51e6


@dataclass(frozen=True)
class OccFinerConfig:
    num_classes: int = 20
    height: int = 32  # Z of the grid (folded into channels)
    embed_dim: int = 64  # per-cell Linear embedding width (e0)
    enc_channels: tuple[int, ...] = (64, 64, 80, 80)  # output channels of the 4 conv blocks (last = 80, D.1)
    hidden: int = 256  # c_e
    heads: int = 4  # heads of the focal attention
    depth: int = 2  # N DualFlow4D blocks
    patch: int = 7  # soft-split kernel W_h = W_w
    patch_stride: int = 2  # soft-split stride k
    patch_padding: int = 3
    window: int = 4  # focal attention window (tokens) and pooling size of the coarse level
    pillar: int = 32  # W_z height tokens per BEV token
    pillar_heads: int = 1
    ffn_hidden: int = 512  # 2 x c_e: brings the paper configuration to 4.50 M parameters
    skip: bool = True  # additive encoder->head skips
    input_skip: float = (
        0.0  # >0: logits += g_c * one_hot(input class), g (C,) learned, initialised to this (0 = paper, off)
    )
    coord_scale: float = 51.2  # relative coordinates are divided by this (metres)
    origin: tuple[float, float, float] = (float(ORIGIN[0]), float(ORIGIN[1]), float(ORIGIN[2]))
    voxel_size: float = VOXEL_SIZE

    @staticmethod
    def paper(**kw) -> "OccFinerConfig":
        """Paper size (Appendix D.1): 80-channel encoders, c_e = 256, N = 2, 7x7 patches, W_z = 32 (~4.5 M params)."""
        return replace(OccFinerConfig(), **kw)

    @staticmethod
    def small(**kw) -> "OccFinerConfig":
        """CPU/CI size: same topology, narrow widths (0.32 M params)."""
        base = OccFinerConfig(
            embed_dim=8, enc_channels=(8, 16, 16, 32), hidden=64, heads=2, depth=1, pillar=8, ffn_hidden=128
        )
        return replace(base, **kw)

    @staticmethod
    def tiny(**kw) -> "OccFinerConfig":
        """Smallest CPU size: same topology, narrower deep layers (0.10 M params); for quick CPU training."""
        base = OccFinerConfig(
            embed_dim=8, enc_channels=(8, 8, 16, 16), hidden=32, heads=2, depth=1, pillar=4, ffn_hidden=64
        )
        return replace(base, **kw)

    @staticmethod
    def named(name: str, **kw) -> "OccFinerConfig":
        """``"paper"``, ``"small"`` or ``"tiny"``."""
        if name not in ("paper", "small", "tiny"):
            raise ValueError(f"unknown OccFiner configuration {name!r}; choose paper, small or tiny")
        return getattr(OccFinerConfig, name)(**kw)

    @property
    def downsample(self) -> int:
        return 2 ** len(self.enc_channels)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["enc_channels"] = list(self.enc_channels)
        d["origin"] = list(self.origin)
        return d

    @staticmethod
    def from_dict(d: dict) -> "OccFinerConfig":
        d = dict(d)
        d["enc_channels"] = tuple(d["enc_channels"])
        d["origin"] = tuple(d["origin"])
        return OccFinerConfig(**d)


def relative_coordinates_torch(
    transforms: torch.Tensor, shape: tuple[int, int, int], origin=tuple(ORIGIN), voxel_size: float = VOXEL_SIZE
) -> torch.Tensor:
    """Eq. 1 on the device: voxel centres of every frame mapped by its 4x4 into the pivot frame.

    ``transforms`` (..., 4, 4) -> (..., X, Y, Z, 3) metres (same values as
    :func:`occbench_baselines.occfiner.windows.relative_coordinates`). Used in tests and for ``explicit`` encoding.
    """
    dev, dt = transforms.device, transforms.dtype
    axes = [origin[d] + voxel_size * (torch.arange(shape[d], device=dev, dtype=dt) + 0.5) for d in range(3)]
    c = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (X,Y,Z,3)
    R, t = transforms[..., :3, :3], transforms[..., :3, 3]
    lead = transforms.shape[:-2]
    out = torch.einsum("...ij,xyzj->...xyzi", R, c)
    return out + t.reshape(*lead, 1, 1, 1, 3)


class _ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.ReLU(inplace=True),
        )


class _BEVEncoderTrunk(nn.Module):
    """LayerNorm after the embedding, then 4 x [MaxPool 2, conv3x3, ReLU, conv3x3, ReLU]."""

    def __init__(self, embed_dim: int, channels: tuple[int, ...]):
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim)
        cins = (embed_dim,) + tuple(channels[:-1])
        self.blocks = nn.ModuleList(_ConvBlock(ci, co) for ci, co in zip(cins, channels))

    def forward(self, emb: torch.Tensor) -> list[torch.Tensor]:
        """emb (N, X, Y, e) channels-last -> [level0 (N,e,X,Y), level1 (N,c1,X/2,Y/2), ...]."""
        x = self.norm(emb).permute(0, 3, 1, 2).contiguous()
        feats = [x]
        for blk in self.blocks:
            x = blk(F.max_pool2d(x, 2))
            feats.append(x)
        return feats


class BEVFeatureEncoder(nn.Module):
    """One-hot (C x Z folded) -> Linear embedding (as a sum of table rows) + LayerNorm -> conv blocks."""

    def __init__(self, cfg: OccFinerConfig):
        super().__init__()
        self.C, self.Z = cfg.num_classes, cfg.height
        self.embed = nn.Linear(cfg.num_classes * cfg.height, cfg.embed_dim)  # weight column index: z*C + c
        self.trunk = _BEVEncoderTrunk(cfg.embed_dim, cfg.enc_channels)

    def embedding(self, pred: torch.Tensor) -> torch.Tensor:
        """(N, X, Y, Z) long train ids (255 ignore) -> (N, X, Y, e) = Linear(one_hot folded)."""
        n, X, Y, Z = pred.shape
        if Z != self.Z:
            raise ValueError(f"grid height {Z} != config height {self.Z}")
        cls = pred.permute(3, 0, 1, 2).reshape(Z, -1)  # (Z, M) heights major: every per-height row contiguous
        out = _FoldedOneHotLinear.apply(cls, self.embed.weight, self.C)
        return (out + self.embed.bias).view(n, X, Y, -1)

    def forward(self, pred: torch.Tensor) -> list[torch.Tensor]:
        return self.trunk(self.embedding(pred))

    def sparse_rows(self, pred: torch.Tensor) -> tuple[torch.Tensor, int]:
        """One frame's share of the sparse CPU path: (its rows (X*Y, e) of ``_FoldedOneHotLinear``'s output,
        without the bias; its number of non-empty entries). Inference caches these per scan: stacked, they are
        bit for bit the sparse output of any batch of frames that takes the sparse path
        (:func:`sparse_path`), because a cell's sum only ever adds its own entries, heights in order."""
        X, Y, Z = pred.shape
        cls = pred.permute(2, 0, 1).reshape(Z, -1).long()
        nonempty = cls != 0
        return _sparse_forward(cls, nonempty, self.embed.weight, self.C)[0], int(nonempty.sum())

    def embedding_from_rows(self, rows: list[torch.Tensor], X: int, Y: int) -> torch.Tensor:
        """:meth:`embedding` of a batch from the :meth:`sparse_rows` of its frames (valid when
        :func:`sparse_path` holds for the batch)."""
        return (torch.cat(rows) + self.embed.bias).view(len(rows), X, Y, -1)


SPARSE_EMBEDDING_ON_CPU = True  # False: always the dense path on CPU (tests)
SPARSE_MAX_FRACTION = 0.25  # sparse path only when at most this share of (cell, height) entries is not empty


def sparse_path(device: torch.device, nonempty: Callable[[], int], numel: int) -> bool:
    """Whether :class:`_FoldedOneHotLinear` takes its sparse path for a batch with ``nonempty()`` non-empty
    entries out of ``numel`` (CPU only, at most ``SPARSE_MAX_FRACTION`` non-empty)."""
    return device.type == "cpu" and SPARSE_EMBEDDING_ON_CPU and nonempty() <= SPARSE_MAX_FRACTION * numel


def _sparse_forward(
    cls: torch.Tensor, nonempty: torch.Tensor, weight: torch.Tensor, C: int
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The sparse path's output (M, e) and what its backward needs: ``out = sum_z w[z*C] + sum_{cls != 0}
    (w[z*C + cls] - w[z*C])``, the entries added per cell in height order."""
    e, cz = weight.shape
    Z, M = cls.shape
    table = torch.cat([weight.t(), weight.new_zeros(1, e)])  # row cz = no class
    z_idx, m_idx = torch.nonzero(nonempty, as_tuple=True)
    cval = cls[z_idx, m_idx]
    code = torch.where((cval >= 0) & (cval < C), z_idx * C + cval.clamp(0, C - 1), cz)
    empty_rows = table[torch.arange(Z, device=cls.device) * C]  # (Z, e) the class-0 row of every height
    out = empty_rows.sum(0).expand(M, e).contiguous()
    out.index_add_(0, m_idx, table.index_select(0, code) - empty_rows.index_select(0, z_idx))
    return out, (z_idx, m_idx, code)


class _FoldedOneHotLinear(torch.autograd.Function):
    """``sum_z onehot(z*C + cls[z]) @ weight.T`` per cell (no bias); ``cls`` (Z, M) train ids, ids outside
    [0, C) (255) = no class (all-zero one-hot).

    CPU, when at most ``SPARSE_MAX_FRACTION`` of the entries are not empty: only the *non-empty* entries
    (class != 0) are gathered: ``out = sum_z w[z*C] + sum_{cls != 0} (w[z*C + cls] - w[z*C])`` (the same sum regrouped;
    class 0 fills most of a scene), and the backward mirrors it (rows of class 0 get ``sum(grad) - sum(grad of the cells
    not empty at that height)``), with ``index_add_`` instead of ``embedding_bag``'s sort-based backward. Denser CPU
    input: Z row gathers (forward) and Z ``index_add_`` (backward). CUDA: ``embedding_bag`` (sum), Z ``index_add_``
    backward.
    """

    @staticmethod
    def forward(ctx, cls: torch.Tensor, weight: torch.Tensor, C: int) -> torch.Tensor:
        e, cz = weight.shape
        Z, M = cls.shape
        ctx.C, ctx.cz, ctx.Z = C, cz, Z
        nonempty = cls != 0  # class 1..C-1 or no class
        if not sparse_path(cls.device, lambda: int(nonempty.sum()), nonempty.numel()):
            table = torch.cat([weight.t(), weight.new_zeros(1, e)])  # row cz = no class
            valid = (cls >= 0) & (cls < C)
            zc = torch.arange(Z, device=cls.device)[:, None] * C
            idx = torch.where(valid, zc + cls.clamp(0, C - 1), cz)
            ctx.save_for_backward(idx)
            ctx.sparse = False
            if cls.device.type != "cpu":
                return F.embedding_bag(idx.t().contiguous(), table, mode="sum", padding_idx=cz)
            out = table.index_select(0, idx[0])
            for z in range(1, Z):
                out += table.index_select(0, idx[z])
            return out
        ctx.sparse = True
        out, saved = _sparse_forward(cls, nonempty, weight, C)
        ctx.save_for_backward(*saved)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        g = grad.contiguous()
        e = g.shape[1]
        gt = g.new_zeros(ctx.cz + 1, e)
        if not ctx.sparse:
            (idx,) = ctx.saved_tensors
            for z in range(idx.shape[0]):
                gt.index_add_(0, idx[z], g)
            return None, gt[:-1].t().contiguous(), None
        z_idx, m_idx, code = ctx.saved_tensors
        gm = g.index_select(0, m_idx)
        gt.index_add_(0, code, gm)
        per_z = g.new_zeros(ctx.Z, e).index_add_(0, z_idx, gm)  # grad of the non-empty cells of each height
        empty = torch.arange(ctx.Z, device=g.device) * ctx.C
        gt[empty] += g.sum(0) - per_z
        return None, gt[:-1].t().contiguous(), None


class BEVPositionalEncoder(nn.Module):
    """Relative coordinates (3 x Z folded) -> Linear + LayerNorm -> conv blocks (same blueprint)."""

    def __init__(self, cfg: OccFinerConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(3 * cfg.height, cfg.embed_dim)  # weight column index: z*3 + k
        self.trunk = _BEVEncoderTrunk(cfg.embed_dim, cfg.enc_channels)

    def embedding(self, transforms: torch.Tensor, X: int, Y: int, explicit: bool = False) -> torch.Tensor:
        """(N, 4, 4) -> (N, X, Y, e) = Linear(folded relative coordinates / coord_scale)."""
        cfg, Z = self.cfg, self.cfg.height
        tf = transforms.float()
        if explicit:
            c = relative_coordinates_torch(tf, (X, Y, Z), cfg.origin, cfg.voxel_size) / cfg.coord_scale
            return self.embed(c.reshape(c.shape[0], X, Y, Z * 3))
        o, s = cfg.origin, cfg.voxel_size
        dev = tf.device
        px = o[0] + s * (torch.arange(X, device=dev, dtype=torch.float32) + 0.5)
        py = o[1] + s * (torch.arange(Y, device=dev, dtype=torch.float32) + 0.5)
        pz = o[2] + s * (torch.arange(Z, device=dev, dtype=torch.float32) + 0.5)
        R, t = tf[:, :3, :3], tf[:, :3, 3]
        # column coordinates without the height term: c0 = R[:,0] px + R[:,1] py + t    (N, X, Y, 3)
        c0 = (
            R[:, None, None, :, 0] * px[None, :, None, None]
            + R[:, None, None, :, 1] * py[None, None, :, None]
            + t[:, None, None, :]
        )
        W = self.embed.weight.float().view(-1, Z, 3)  # (e, Z, 3)
        A = W.sum(1)  # (e, 3)
        Bz = torch.einsum("ezk,z->ek", W, pz)  # (e, 3)
        col = torch.einsum("nxyk,ek->nxye", c0, A)
        per_frame = torch.einsum("nk,ek->ne", R[:, :, 2], Bz)  # (N, e)
        return (col + per_frame[:, None, None, :]) / cfg.coord_scale + self.embed.bias.float()

    def forward(self, transforms: torch.Tensor, X: int, Y: int, flip: torch.Tensor | None = None) -> list[torch.Tensor]:
        emb = self.embedding(transforms, X, Y)
        if flip is not None:
            emb = _flip_maps(emb, flip, dims=(1, 2))
        return self.trunk(emb)


def _flip_maps(x: torch.Tensor, flip: torch.Tensor, dims: tuple[int, int]) -> torch.Tensor:
    """Flip each sample of x (N, ...) along dims[0] where flip[n,0] and dims[1] where flip[n,1]."""
    out = x
    for a in range(2):
        f = flip[:, a]
        if bool(f.any()):
            shape = [-1] + [1] * (x.dim() - 1)
            out = torch.where(f.view(shape), out.flip(dims[a]), out)
    return out


class SegmentationHead(nn.Module):
    """Mirror of the encoder: 4 x [conv3x3, ReLU, conv3x3, ReLU, bilinear x2 (+ skip)], then 1x1 conv to Z*C."""

    def __init__(self, cfg: OccFinerConfig):
        super().__init__()
        chans = (cfg.embed_dim,) + tuple(cfg.enc_channels)  # level 0..L
        L = len(cfg.enc_channels)
        self.blocks = nn.ModuleList(_ConvBlock(chans[lvl], chans[lvl - 1]) for lvl in range(L, 0, -1))
        self.C, self.Z = cfg.num_classes, cfg.height
        self.out = nn.Linear(cfg.embed_dim, cfg.height * cfg.num_classes)  # per-cell; output index z*C + c
        self.skip = cfg.skip

    def trunk(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """x (N, c_L, X/2^L, Y/2^L); skips = encoder levels 0..L-1 -> per-cell features (N, e, X, Y)."""
        for i, blk in enumerate(self.blocks):
            x = F.interpolate(blk(x), scale_factor=2, mode="bilinear", align_corners=False)
            if self.skip:
                x = x + skips[len(skips) - 1 - i]
        return x

    def cell_logits(self, feats: torch.Tensor) -> torch.Tensor:
        """Per-cell Linear of :meth:`trunk`'s features (N, e, X', Y') -> logits (N, X', Y', Z, C), contiguous
        (classes innermost: cheap softmax / loss). Any slab of rows X' gives the rows of the whole grid."""
        n, _, X, Y = feats.shape
        return self.out(feats.permute(0, 2, 3, 1)).view(n, X, Y, self.Z, self.C)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """x (N, c_L, X/2^L, Y/2^L); skips = encoder levels 0..L-1 -> logits (N, C, X, Y, Z) (a view)."""
        return self.cell_logits(self.trunk(x, skips)).permute(0, 4, 1, 2, 3)


class OccFinerNet(nn.Module):
    """OccFiner stage-1 network. ``forward(pred, transforms, flip=None) -> logits (B,T,C,X,Y,Z)``.

    ``flip`` (B, 2) bool: the x / y flips already applied to ``pred`` (training augmentation); the
    positional encoding is flipped the same way so coordinates stay attached to their voxels.
    """

    def __init__(self, cfg: OccFinerConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or OccFinerConfig.paper()
        c = cfg.enc_channels[-1]
        self.feature_encoder = BEVFeatureEncoder(cfg)
        self.positional_encoder = BEVPositionalEncoder(cfg)
        self.split = SoftSplit(c, cfg.hidden, cfg.patch, cfg.patch_stride, cfg.patch_padding)
        self.blocks = nn.ModuleList(
            DualFlow4DBlock(cfg.hidden, cfg.heads, cfg.window, cfg.pillar, cfg.pillar_heads, cfg.ffn_hidden)
            for _ in range(cfg.depth)
        )
        self.comp = SoftComp(c, cfg.hidden, cfg.patch, cfg.patch_stride, cfg.patch_padding)
        self.head = SegmentationHead(cfg)
        if cfg.input_skip:
            self.input_gain = nn.Parameter(torch.full((cfg.num_classes,), float(cfg.input_skip)))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        pred: torch.Tensor,
        transforms: torch.Tensor,
        flip: torch.Tensor | None = None,
        outputs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``outputs`` (B, T) bool: run the segmentation head only for these frames (training: the frames
        with ground truth) and return their logits stacked in (b, t) order as (K, C, X, Y, Z); every frame
        still goes through the encoders and the transformer, so the result equals ``forward(...)[outputs]``."""
        B, T = pred.shape[:2]
        x, sem, pred = self._encode(pred, transforms, flip)
        if outputs is not None:
            sel = outputs.to(x.device).bool().reshape(B * T)
            return self._input_skip(self.head(x[sel], [f[sel] for f in sem[:-1]]), pred[sel])
        logits = self._input_skip(self.head(x, sem[:-1]), pred)
        return logits.view(B, T, *logits.shape[1:])

    def _encode(
        self,
        pred: torch.Tensor,
        transforms: torch.Tensor,
        flip: torch.Tensor | None = None,
        emb: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Everything before the head: (features (B*T, c_L, X/2^L, Y/2^L) after the transformer, the feature
        encoder's levels, pred as (B*T, X, Y, Z)). ``emb``: the feature encoder's embedding of the B*T frames,
        when the caller has it (then ``pred`` keeps its dtype)."""
        B, T, X, Y, Z = pred.shape
        d = self.cfg.downsample
        if X % d or Y % d:
            raise ValueError(f"grid {X}x{Y} must be divisible by {d}")
        pred = pred.reshape(B * T, X, Y, Z)
        if emb is None:
            pred = pred.long()
            emb = self.feature_encoder.embedding(pred)
        flip_bt = None if flip is None else flip.to(pred.device).bool().repeat_interleave(T, dim=0)
        sem = self.feature_encoder.trunk(emb)
        pos = self.positional_encoder(transforms.reshape(B * T, 4, 4), X, Y, flip_bt)
        x = sem[-1] + pos[-1]  # eq. 3: features + positional embedding
        h, w = x.shape[-2:]
        tok = self.split(x)  # (B*T, th, tw, c_e)
        tok = tok.view(B, T, *tok.shape[1:])
        for blk in self.blocks:
            tok = blk(tok)
        x = x + self.comp(tok.reshape(B * T, *tok.shape[2:]), (h, w))
        return x, sem, pred

    def head_features(
        self, pred: torch.Tensor, transforms: torch.Tensor, outputs: torch.Tensor, emb: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference in slabs: the head's per-cell features (K, e, X, Y) of the frames ``outputs`` (B, T) and
        their input classes (K, X, Y, Z). ``slab_logits(feats[:, :, a:b], pred[:, a:b])`` then gives rows
        a..b-1 of ``forward(pred, transforms, None, outputs)`` (channels last), without the (K, C, X, Y, Z)
        logits of a whole window in memory. ``emb``: the feature encoder's embedding of the B*T frames, if
        known (e.g. from :meth:`BEVFeatureEncoder.embedding_from_rows`)."""
        B, T = pred.shape[:2]
        x, sem, pred = self._encode(pred, transforms, None, emb)
        sel = outputs.to(x.device).bool().reshape(B * T)
        return self.head.trunk(x[sel], [f[sel] for f in sem[:-1]]), pred[sel]

    def slab_logits(self, feats: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Logits (K, X', Y, Z, C) of a slab of rows: ``feats`` (K, e, X', Y) and ``pred`` (K, X', Y, Z) slices
        of :meth:`head_features`. The same operations as :meth:`forward` on those rows."""
        lg = self.head.cell_logits(feats)
        if self.cfg.input_skip and not add_gain(lg, pred, self.input_gain.to(lg.dtype)):
            idx, bonus = self._input_bonus(pred, lg.dtype)
            lg.scatter_(-1, idx, lg.gather(-1, idx) + bonus)  # the input class's logit + its gain, in place
        return lg

    def _input_bonus(self, pred: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(class index (..., 1), gain added to that class's logit (..., 1); 0 where the input is no class)."""
        C = self.cfg.num_classes
        valid = (pred >= 0) & (pred < C)
        idx = pred.clamp(0, C - 1).long().unsqueeze(-1)
        return idx, self.input_gain.to(dtype)[idx] * valid.unsqueeze(-1).to(dtype)

    def _input_skip(self, logits: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Identity prior (``cfg.input_skip``, our addition): add the learned gain of the input class to its logit,
        so an untrained network already reproduces its input and training learns the corrections."""
        if not self.cfg.input_skip:
            return logits
        lg = logits.permute(0, 2, 3, 4, 1)  # (N, X, Y, Z, C), the head's memory layout
        idx, gain = self._input_bonus(pred, lg.dtype)
        bonus = torch.zeros_like(lg).scatter_(-1, idx, gain)
        return (lg + bonus).permute(0, 4, 1, 2, 3)


def count_parameters(cfg: OccFinerConfig) -> int:
    return OccFinerNet(cfg).num_parameters()


def class_weights_tensor(name: str = "semantickitti") -> torch.Tensor:
    from occbench.labels import load_label_map

    return torch.from_numpy(np.asarray(load_label_map(name).class_weights(), np.float32))

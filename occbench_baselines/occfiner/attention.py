"""DualFlow4D transformer of OccFiner stage 1 (paper §3.2, eqs. 3-6; Appendix D.1).

Tokens live on a (T, h, w) grid: T frames of an h x w grid of soft-split BEV patches, each a vector of
``c_e`` channels. One :class:`DualFlow4DBlock` computes

    Q, K, V = P_qkv(LN(P))                                   (eq. 4)
    Z_bev   = MHFA(Q, K, V) + P                              (eq. 4, focal attention over BEV x time)
    Z_z     = Attn(Q_z, K_z, V_z)                            (eq. 5, Q_z = Q reshaped to W_z x T tokens)
    Z_4d    = P_z(Z_z) + P_bev(Z_bev)                        (eq. 6)
    out     = Z_4d + FFN(LN(Z_4d))                           (standard pre-norm feed-forward)

Interpretation choices (the paper is silent; see docs/baselines/occfiner.md):

* Multi-head *focal* attention (Focal Transformer, as used by the first author's FlowLens): the token
  grid of every frame is cut into ``window`` x ``window`` windows; the queries of one window (in all T
  frames) attend to (a) the fine tokens of that window in all T frames and (b) coarse tokens, i.e. the
  keys/values of the whole grid pooled window by window with a learned linear pooling ("fc" pooling of
  FlowLens), in all T frames: local fine detail plus non-local coarse context.
* Pillar attention (eq. 5): ``Q_z, K_z, V_z`` are the same Q, K, V as eq. 4, reshaped: the ``c_e``
  channels of a token are split into ``W_z`` height tokens of ``c_e / W_z`` channels (height was folded
  into channels by the encoders); at every BEV token position, the W_z x T height/time tokens attend to
  each other (plain softmax attention).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SoftSplit(nn.Module):
    """Soft split (eq. 3, T2T-ViT / FuseFormer): overlapping k x k patches at a stride, flattened, Linear to c_e."""

    def __init__(self, channels: int, hidden: int, kernel: int, stride: int, padding: int):
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.embed = nn.Linear(channels * kernel * kernel, hidden)

    def token_grid(self, h: int, w: int) -> tuple[int, int]:
        f = lambda n: (n + 2 * self.padding - self.kernel) // self.stride + 1  # noqa: E731
        return f(h), f(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, th, tw, c_e)."""
        n, _, h, w = x.shape
        th, tw = self.token_grid(h, w)
        cols = F.unfold(x, self.kernel, padding=self.padding, stride=self.stride)  # (N, C*k*k, L)
        return self.embed(cols.transpose(1, 2)).view(n, th, tw, -1)


class SoftComp(nn.Module):
    """Soft composition: Linear back to C*k*k, fold the overlapping patches, divide by the overlap count."""

    def __init__(self, channels: int, hidden: int, kernel: int, stride: int, padding: int):
        super().__init__()
        self.channels, self.kernel, self.stride, self.padding = channels, kernel, stride, padding
        self.embed = nn.Linear(hidden, channels * kernel * kernel)

    def forward(self, tokens: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(N, th, tw, c_e) -> (N, C, H, W)."""
        n = tokens.shape[0]
        cols = self.embed(tokens.reshape(n, -1, tokens.shape[-1])).transpose(1, 2)
        out = F.fold(cols, size, self.kernel, padding=self.padding, stride=self.stride)
        ones = torch.ones(1, 1, *size, device=tokens.device, dtype=out.dtype)
        count = F.fold(
            F.unfold(ones, self.kernel, padding=self.padding, stride=self.stride),
            size,
            self.kernel,
            padding=self.padding,
            stride=self.stride,
        )
        return out / count.clamp_min(1.0)


def _pad_to(x: torch.Tensor, wh: int, ww: int) -> tuple[torch.Tensor, int, int]:
    """Pad a (B, T, h, w, c) grid with zeros to multiples of the window; returns padded grid and pads."""
    h, w = x.shape[2], x.shape[3]
    ph, pw = (-h) % wh, (-w) % ww
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    return x, ph, pw


class FocalAttention(nn.Module):
    """Multi-head focal attention over BEV x time for q, k, v of shape (B, T, h, w, c).

    Level 0 (fine): the tokens of the query's own window in all T frames. Level 1 (coarse): every
    window of every frame pooled to one token by a learned linear pooling over its window positions
    (initialised to the mean). The token grid is zero-padded to a multiple of the window; padded fine
    keys are masked out, padded queries are dropped.
    """

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden {dim} not divisible by heads {heads}")
        self.heads, self.window = heads, window
        self.pool = nn.Linear(window * window, 1)
        nn.init.constant_(self.pool.weight, 1.0 / (window * window))
        nn.init.zeros_(self.pool.bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, t, h, w, c = q.shape
        wh = ww = self.window
        nh, hd = self.heads, c // self.heads
        valid = torch.ones(1, 1, h, w, 1, device=q.device, dtype=torch.bool)
        q, _, _ = _pad_to(q, wh, ww)
        k, _, _ = _pad_to(k, wh, ww)
        v, _, _ = _pad_to(v, wh, ww)
        valid, _, _ = _pad_to(valid, wh, ww)
        H, W = q.shape[2], q.shape[3]
        gh, gw = H // wh, W // ww
        nwin = gh * gw

        def windows(x: torch.Tensor) -> torch.Tensor:  # (n,T,H,W,c') -> (n, nwin, T*wh*ww, c')
            n = x.shape[0]
            x = x.reshape(n, t, gh, wh, gw, ww, x.shape[-1]).permute(0, 2, 4, 1, 3, 5, 6)
            return x.reshape(n, nwin, t * wh * ww, x.shape[-1])

        qw, kw, vw = windows(q), windows(k), windows(v)  # (B, nwin, L, c), L = T*wh*ww
        mask_fine = windows(valid.expand(1, t, H, W, 1))[..., 0]  # (1, nwin, L)

        # coarse tokens: pool every window (learned linear pooling over its wh*ww positions)
        def pooled(x: torch.Tensor) -> torch.Tensor:  # (B,T,H,W,c) -> (B, T*nwin, c)
            x = x.view(b, t, gh, wh, gw, ww, c).permute(0, 1, 2, 4, 6, 3, 5).reshape(b, t, gh, gw, c, wh * ww)
            x = self.pool(x)[..., 0]
            return x.reshape(b, t * nwin, c)

        # padded positions are zero in k/v: they add nothing to the pooled sum (only the bias)
        kc, vc = pooled(k), pooled(v)
        L, M = qw.shape[2], kc.shape[1]
        kk = torch.cat([kw, kc[:, None].expand(b, nwin, M, c)], dim=2)  # (B, nwin, L+M, c)
        vv = torch.cat([vw, vc[:, None].expand(b, nwin, M, c)], dim=2)

        def heads(x: torch.Tensor) -> torch.Tensor:  # (B, nwin, S, c) -> (B*nwin, nh, S, hd)
            return x.reshape(b * nwin, x.shape[2], nh, hd).transpose(1, 2)

        attn_mask = None
        if not bool(valid.all()):
            m = torch.cat([mask_fine, torch.ones(1, nwin, M, device=q.device, dtype=torch.bool)], dim=2)
            attn_mask = m.expand(b, nwin, L + M).reshape(b * nwin, 1, 1, L + M)
        out = F.scaled_dot_product_attention(heads(qw), heads(kk), heads(vv), attn_mask=attn_mask)
        out = out.transpose(1, 2).reshape(b, gh, gw, t, wh, ww, c).permute(0, 3, 1, 4, 2, 5, 6).reshape(b, t, H, W, c)
        return self.proj(out[:, :, :h, :w])


class PillarAttention(nn.Module):
    """Eq. 5: at every BEV token, attention among its W_z (height) x T (time) tokens of c_e / W_z channels."""

    def __init__(self, dim: int, pillar: int, heads: int = 1):
        super().__init__()
        if dim % pillar:
            raise ValueError(f"hidden {dim} not divisible by pillar height W_z={pillar}")
        if (dim // pillar) % heads:
            raise ValueError(f"pillar token dim {dim // pillar} not divisible by pillar heads {heads}")
        self.pillar, self.heads = pillar, heads

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, t, h, w, c = q.shape
        d = c // self.pillar
        hd = d // self.heads

        def reshape(x: torch.Tensor) -> torch.Tensor:  # (B,T,h,w,c) -> (B*h*w, heads, T*W_z, hd)
            x = x.view(b, t, h * w, self.pillar, self.heads, hd).permute(0, 2, 4, 1, 3, 5)
            return x.reshape(b * h * w, self.heads, t * self.pillar, hd)

        out = F.scaled_dot_product_attention(reshape(q), reshape(k), reshape(v))
        out = out.view(b, h * w, self.heads, t, self.pillar, hd).permute(0, 3, 1, 4, 2, 5)
        return out.reshape(b, t, h, w, c)


class DualFlow4DBlock(nn.Module):
    """One DualFlow4D transformer block (Fig. 3, eqs. 4-6) on tokens (B, T, h, w, c_e)."""

    def __init__(self, dim: int, heads: int, window: int, pillar: int, pillar_heads: int, ffn_hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.focal = FocalAttention(dim, heads, window)
        self.pillar = PillarAttention(dim, pillar, pillar_heads)
        self.proj_bev = nn.Linear(dim, dim)
        self.proj_z = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_hidden), nn.GELU(), nn.Linear(ffn_hidden, dim))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.norm1(p)).chunk(3, dim=-1)
        z_bev = self.focal(q, k, v) + p
        z_z = self.pillar(q, k, v)
        z = self.proj_z(z_z) + self.proj_bev(z_bev)
        return z + self.ffn(self.norm2(z))

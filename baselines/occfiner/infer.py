"""Whole-sequence inference of OccFiner stage 1.

Windows are those of :mod:`occbench.datasets.windows` (pivot ``t``: local scans ``t + local_offsets()``,
then the deterministic, evenly spaced reference scans). Pivots are laid every ``stride`` scans (default
``T_l // 2``, so every scan is a local scan of 2 windows), restricted to the windows whose local scans
contain a requested target. The softmax probabilities of every output of a scan that is a *local* scan of
a window are summed and averaged; reference-scan outputs are ignored by default (they are conditions, as
in E2FGVI/FlowLens; ``use_reference_outputs=True`` averages them too). A scan is yielded as soon as no
later window can contain it, so memory stays bounded by the windows in flight.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from baselines.occfiner.model import OccFinerNet
from baselines.occfiner.train import amp_settings
from occbench.datasets.windows import WindowConfig, window_indices


def plan_windows(n_frames: int, targets: Iterable[int], cfg: WindowConfig, stride: int | None = None) -> list[int]:
    """Pivots whose windows are run: pivots on a grid of ``stride`` (shifted so scan 0 is a local scan of
    the first pivot), plus, for any target that no grid pivot covers (only possible when stride > T_l),
    the target itself."""
    stride = stride or max(cfg.local // 2, 1)
    offs = cfg.local_offsets()
    tg = sorted({int(t) for t in targets})
    if any(t < 0 or t >= n_frames for t in tg):
        raise ValueError(f"targets must lie in [0, {n_frames})")
    first = -min(offs)  # pivot whose first local scan is scan 0
    grid = list(range(first, n_frames - 1 + stride, stride)) or [first]
    pivots: set[int] = set()
    for t in tg:
        cover = [p for p in grid if any(min(max(p + o, 0), n_frames - 1) == t for o in offs)]
        pivots.update(cover if cover else [t])
    return sorted(p for p in pivots)


@torch.inference_mode()
def refine_sequence(
    model: OccFinerNet,
    frames_fn: Callable[[int], np.ndarray],
    poses: np.ndarray,
    n_frames: int,
    targets: Iterable[int] | None = None,
    window_cfg: WindowConfig = WindowConfig(),
    *,
    stride: int | None = None,
    return_probs: bool = False,
    use_reference_outputs: bool = False,
    device: str | torch.device | None = None,
    amp: bool = True,
    cache_size: int = 32,
    slab_rows: int = 8,
    progress: bool = True,
) -> Iterator[tuple[int, np.ndarray]]:
    """Refine the scans ``targets`` (default all) of one sequence; yields ``(frame, out)`` in frame order.

    ``frames_fn(i)`` -> onboard prediction (X, Y, Z) uint8 train ids; ``poses`` (N, 4, 4) LiDAR poses.
    ``out`` is (X, Y, Z) uint8 labels, or with ``return_probs`` (C, X, Y, Z) float32 averaged softmax.
    """
    from occbench.progress import progress_bar

    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev).eval()
    use_amp, amp_dtype, _ = amp_settings(dev, amp)
    tg = sorted(set(range(n_frames) if targets is None else (int(t) for t in targets)))
    if not tg:
        return
    tgset = set(tg)
    pivots = plan_windows(n_frames, tg, window_cfg, stride)
    poses = np.asarray(poses, np.float64)
    cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def frame(i: int) -> np.ndarray:
        if i in cache:
            cache.move_to_end(i)
            return cache[i]
        a = np.asarray(frames_fn(i), np.uint8)
        cache[i] = a
        if len(cache) > cache_size:
            cache.popitem(last=False)
        return a

    sums: dict[int, torch.Tensor] = {}
    counts: dict[int, int] = {}
    # last pivot index (in ``pivots``) whose window outputs each target
    last_use: dict[int, int] = {}
    windows = []
    for k, p in enumerate(pivots):
        idx = window_indices(p, n_frames, window_cfg)
        use = idx if use_reference_outputs else idx[: window_cfg.local]
        windows.append(idx)
        for f in set(use) & tgset:
            last_use[f] = k
    pending = sorted(tgset)

    def finish(f: int) -> tuple[int, np.ndarray]:
        total, n = sums.pop(f), counts.pop(f)  # (X, Y, Z, C) sum of n softmax outputs
        if return_probs:
            return f, (total / n).permute(3, 0, 1, 2).float().cpu().numpy()
        return f, total.argmax(-1).to(torch.uint8).cpu().numpy()  # argmax of the mean = argmax of the sum

    use = range(window_cfg.local + window_cfg.reference) if use_reference_outputs else range(window_cfg.local)
    for k in progress_bar(range(len(pivots)), desc="occfiner refine", disable=not progress):
        p, idx = pivots[k], windows[k]
        js = [j for j in use if j < len(idx) and idx[j] in tgset]  # outputs that are used: only these run the head
        if js:
            pred = torch.from_numpy(np.stack([frame(i) for i in idx])).to(dev)[None]
            ref = poses[min(max(p, 0), n_frames - 1)]  # pivots past the ends: their clamped scan is the reference frame
            tf = np.stack([np.linalg.inv(ref) @ poses[i] for i in idx]).astype(np.float32)
            outputs = torch.zeros(1, len(idx), dtype=torch.bool)
            outputs[0, js] = True
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=use_amp):
                feats, cls = model.head_features(pred, torch.from_numpy(tf).to(dev)[None], outputs)
            X = feats.shape[2]
            # the first output of a scan starts its sum (a copy), later ones add to it, in window order
            starts = []
            for j in js:
                f = idx[j]
                starts.append(f not in sums)
                if f not in sums:
                    sums[f] = torch.empty(X, *cls.shape[2:], model.cfg.num_classes, device=dev)
                    counts[f] = 0
                counts[f] += 1
            # the head's last layer, softmax and sums one slab of rows at a time: the (K, X, Y, Z, C)
            # logits of a whole window are never held (per-cell operations: the same numbers)
            for a in range(0, X, slab_rows):
                b = min(X, a + slab_rows)
                with torch.autocast(dev.type, dtype=amp_dtype, enabled=use_amp):
                    lg = model.slab_logits(feats[:, :, a:b], cls[:, a:b])
                probs = torch.softmax(lg.float(), dim=-1)  # (K, rows, Y, Z, C)
                for kk, j in enumerate(js):
                    if starts[kk]:
                        sums[idx[j]][a:b] = probs[kk]
                    else:
                        sums[idx[j]][a:b] += probs[kk]
            del feats, cls, pred
        while pending and last_use.get(pending[0], -1) <= k:
            f = pending.pop(0)
            if f in sums:
                yield finish(f)
    while pending:  # pragma: no cover - every target is covered by plan_windows
        f = pending.pop(0)
        if f in sums:
            yield finish(f)


def refine_dataset_sequence(model: OccFinerNet, sequence, targets: Sequence[int] | None = None, **kw) -> Iterator[tuple[int, np.ndarray]]:
    """Convenience wrapper for :class:`occbench.datasets.frame.Sequence` (``prediction(i)``, ``poses``)."""
    return refine_sequence(model, sequence.prediction, sequence.poses, sequence.num_scans, targets, **kw)

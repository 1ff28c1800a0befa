"""Whole-sequence inference of OccFiner stage 1.

Windows are those of :mod:`occbench_baselines.occfiner.windows` (pivot ``t``: local scans ``t + local_offsets()``,
then the deterministic, evenly spaced reference scans). Pivots are laid every ``stride`` scans (default
``T_l // 2``, so every scan is a local scan of 2 windows), restricted to the windows whose local scans
contain a requested target. The softmax probabilities of every output of a scan that is a *local* scan of
a window are summed and averaged; reference-scan outputs are ignored by default (they are conditions, as
in E2FGVI/FlowLens; ``use_reference_outputs=True`` averages them too). A scan is yielded as soon as no
later window can contain it, so memory stays bounded by the windows in flight.

``return_top2=True`` yields, instead of the labels, ``(top1, top2, p1, p2)``: ``top1`` the labels themselves
(the same float32 sum and argmax, bit for bit), ``top2`` the most probable other class (lowest id on ties),
``p1``, ``p2`` their averaged softmax probabilities (so ``p1 >= p2``), computed slab by slab like the labels.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from occbench_baselines.occfiner import model as model_module
from occbench_baselines.occfiner._kernels import add_argmax
from occbench_baselines.occfiner.model import OccFinerNet, sparse_path
from occbench_baselines.occfiner.train import amp_settings
from occbench_baselines.occfiner.windows import WindowConfig, window_indices


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
    return_top2: bool = False,
    use_reference_outputs: bool = False,
    device: str | torch.device | None = None,
    amp: bool = True,
    cache_size: int = 32,
    slab_rows: int = 8,
    progress: bool = True,
    pose_valid: np.ndarray | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Refine the scans ``targets`` (default all) of one sequence; yields ``(frame, out)`` in frame order.

    ``frames_fn(i)`` -> onboard prediction (X, Y, Z) uint8 train ids; ``poses`` (N, 4, 4) LiDAR poses.
    ``out`` is (X, Y, Z) uint8 labels, or with ``return_probs`` (C, X, Y, Z) float32 averaged softmax, or with
    ``return_top2`` a tuple ``(top1 uint8, top2 uint8, p1 float32, p2 float32)`` of (X, Y, Z) grids.
    ``pose_valid`` (N,) bool (None: all): scans without a pose are left out of the sequence before any window is laid
    (window offsets then count the scans with a pose; their predictions are never read); a target without one is
    an error; ``targets`` None: every scan with a pose.
    """
    from occbench.runtime.progress import progress_bar

    valid = None if pose_valid is None else np.asarray(pose_valid, bool)
    if valid is not None and not valid.all():
        posed = np.flatnonzero(valid)
        where = {int(s): i for i, s in enumerate(posed)}
        tg0 = [int(s) for s in posed] if targets is None else [int(t) for t in targets]
        lost = [t for t in tg0 if t not in where]
        if lost:
            raise ValueError(f"target scan {lost[0]} has no pose: OccFiner cannot register it with the scans around it")
        inner = refine_sequence(
            model,
            lambda i: frames_fn(int(posed[i])),
            np.asarray(poses, np.float64)[posed],
            len(posed),
            [where[t] for t in tg0],
            window_cfg,
            stride=stride,
            return_probs=return_probs,
            return_top2=return_top2,
            use_reference_outputs=use_reference_outputs,
            device=device,
            amp=amp,
            cache_size=cache_size,
            slab_rows=slab_rows,
            progress=progress,
        )
        for i, out in inner:
            yield int(posed[i]), out
        return
    if return_probs and return_top2:
        raise ValueError("return_probs and return_top2 are exclusive")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev).eval()
    use_amp, amp_dtype, _ = amp_settings(dev, amp)
    tg = sorted(set(range(n_frames) if targets is None else (int(t) for t in targets)))
    if not tg:
        return
    tgset = set(tg)
    pivots = plan_windows(n_frames, tg, window_cfg, stride)
    poses = np.asarray(poses, np.float64)
    enc = model.feature_encoder
    cache_rows = dev.type == "cpu" and model_module.SPARSE_EMBEDDING_ON_CPU
    # per scan, shared by every window that holds it: the prediction on the device and (CPU) its rows of the
    # sparse embedding with their count of non-empty entries
    cache: OrderedDict[int, tuple[torch.Tensor, tuple[torch.Tensor, int] | None]] = OrderedDict()

    def frame(i: int) -> tuple[torch.Tensor, tuple[torch.Tensor, int] | None]:
        if i in cache:
            cache.move_to_end(i)
            return cache[i]
        a = torch.from_numpy(np.asarray(frames_fn(i), np.uint8)).to(dev)
        cache[i] = (a, enc.sparse_rows(a) if cache_rows else None)
        if len(cache) > cache_size:
            cache.popitem(last=False)
        return cache[i]

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
    # the head's input (per-cell features and classes, (K, e, X, Y) and (K, X, Y, Z)) of every window with an
    # output whose scan is not complete yet, and each scan's outputs as (window, output) in window order
    held: dict[int, tuple[torch.Tensor, torch.Tensor, list[int]]] = {}
    outs: dict[int, list[tuple[int, int]]] = {}
    done: dict[int, np.ndarray] = {}

    slots = range(window_cfg.local + window_cfg.reference) if use_reference_outputs else range(window_cfg.local)
    for k in progress_bar(range(len(pivots)), desc="occfiner refine", disable=not progress):
        p, idx = pivots[k], windows[k]
        js = [j for j in slots if j < len(idx) and idx[j] in tgset]  # outputs that are used: only these run the head
        if js:
            items = [frame(i) for i in idx]
            pred = torch.stack([a for a, _ in items])[None]  # (1, T, X, Y, Z) uint8
            emb = None
            rows = [r for _, r in items if r is not None]  # every scan's, with cache_rows
            if cache_rows and sparse_path(dev, lambda: sum(r[1] for r in rows), pred.numel()):
                emb = enc.embedding_from_rows([r[0] for r in rows], pred.shape[2], pred.shape[3])
            ref = poses[min(max(p, 0), n_frames - 1)]  # pivots past the ends: their clamped scan is the reference frame
            tf = np.stack([np.linalg.inv(ref) @ poses[i] for i in idx]).astype(np.float32)
            outputs = torch.zeros(1, len(idx), dtype=torch.bool)
            outputs[0, js] = True
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=use_amp):
                feats, cls = model.head_features(pred, torch.from_numpy(tf).to(dev)[None], outputs, emb)
            del pred, emb, items
            frames_out = [idx[j] for j in js]
            held[k] = (feats, cls, frames_out)
            for kk, f in enumerate(frames_out):
                outs.setdefault(f, []).append((k, kk))
            complete = [f for f in dict.fromkeys(frames_out) if last_use[f] == k]
            if complete:
                done.update(
                    _finish(model, held, outs, complete, slab_rows, return_probs, dev, amp_dtype, use_amp, return_top2)
                )
            for w in [w for w, (_, _, fo) in held.items() if all(last_use[f] <= k for f in fo)]:
                del held[w]
        while pending and last_use.get(pending[0], -1) <= k:
            f = pending.pop(0)
            if f in done:
                yield f, done.pop(f)


def _finish(
    model: OccFinerNet,
    held: dict,
    outs: dict[int, list[tuple[int, int]]],
    scans: list[int],
    slab_rows: int,
    return_probs: bool,
    dev: torch.device,
    amp_dtype: torch.dtype,
    use_amp: bool,
    return_top2: bool = False,
) -> dict[int, Any]:
    """Labels (or averaged probabilities) of ``scans``, whose last window has run: slab of rows by slab of
    rows, the head's last layer and softmax of each of a scan's outputs, summed in window order, then the
    argmax. Per-cell operations in the order of the whole-grid computation: the same numbers, without any
    (X, Y, Z, C) array of a scan (or a window) in memory. ``return_top2``: ``(top1, top2, p1, p2)`` per scan, top-1
    from the same sum as the labels (``(a + b).argmax`` equals :func:`add_argmax` bit for bit)."""
    feats0, cls0, _ = held[outs[scans[0]][0][0]]
    X, shape = feats0.shape[2], cls0.shape[2:]
    if return_top2:
        return _finish_top2(model, held, outs, scans, slab_rows, dev, amp_dtype, use_amp)
    res = {f: np.empty((X, *shape), np.uint8) for f in scans} if not return_probs else {}
    sums: dict[int, list[torch.Tensor]] = {f: [] for f in scans}
    for a in range(0, X, slab_rows):
        b = min(X, a + slab_rows)
        for f in scans:
            parts = outs.pop(f) if b == X else outs[f]
            acc = None
            for n, (w, kk) in enumerate(parts):
                feats, cls, _ = held[w]
                with torch.autocast(dev.type, dtype=amp_dtype, enabled=use_amp):
                    lg = model.slab_logits(feats[kk : kk + 1, :, a:b], cls[kk : kk + 1, a:b])[0]
                p = torch.softmax(lg.float(), -1)
                if acc is None:
                    acc = p
                    if len(parts) == 1 and not return_probs:
                        res[f][a:b] = acc.argmax(-1).to(torch.uint8).cpu().numpy()
                elif n == len(parts) - 1 and not return_probs:
                    res[f][a:b] = add_argmax(acc, p).cpu().numpy()
                else:
                    acc += p
            if return_probs and acc is not None:  # acc is None only for a scan without outputs: never
                sums[f].append(acc / len(parts))
    if return_probs:
        return {f: torch.cat(v).permute(3, 0, 1, 2).float().cpu().numpy() for f, v in sums.items()}
    return res


def _finish_top2(
    model: OccFinerNet,
    held: dict,
    outs: dict[int, list[tuple[int, int]]],
    scans: list[int],
    slab_rows: int,
    dev: torch.device,
    amp_dtype: torch.dtype,
    use_amp: bool,
) -> dict[int, tuple]:
    """``(top1, top2, p1, p2)`` of ``scans`` (see :func:`_finish`)."""
    feats0, cls0, _ = held[outs[scans[0]][0][0]]
    X, shape = feats0.shape[2], tuple(cls0.shape[2:])
    res = {
        f: (
            np.empty((X, *shape), np.uint8),
            np.empty((X, *shape), np.uint8),
            np.empty((X, *shape), np.float32),
            np.empty((X, *shape), np.float32),
        )
        for f in scans
    }
    for a in range(0, X, slab_rows):
        b = min(X, a + slab_rows)
        for f in scans:
            parts = outs.pop(f) if b == X else outs[f]
            acc = None
            for w, kk in parts:
                feats, cls, _ = held[w]
                with torch.autocast(dev.type, dtype=amp_dtype, enabled=use_amp):
                    lg = model.slab_logits(feats[kk : kk + 1, :, a:b], cls[kk : kk + 1, a:b])[0]
                p = torch.softmax(lg.float(), -1)
                acc = p if acc is None else acc + p  # one float32 addition per part, in window order
            assert acc is not None
            l1 = acc.argmax(-1)
            l2 = acc.scatter(-1, l1.unsqueeze(-1), float("-inf")).argmax(-1)
            n = float(len(parts))
            t1, t2, q1, q2 = res[f]
            t1[a:b] = l1.to(torch.uint8).cpu().numpy()
            t2[a:b] = l2.to(torch.uint8).cpu().numpy()
            q1[a:b] = (acc.gather(-1, l1.unsqueeze(-1))[..., 0] / n).cpu().numpy()
            q2[a:b] = (acc.gather(-1, l2.unsqueeze(-1))[..., 0] / n).cpu().numpy()
    return res


def refine_dataset_sequence(
    model: OccFinerNet, sequence, targets: Sequence[int] | None = None, **kw
) -> Iterator[tuple[int, np.ndarray]]:
    """Convenience wrapper for :class:`occbench.datasets.frame.Sequence` (``prediction(i)``, ``poses``)."""
    return refine_sequence(
        model,
        sequence.prediction,
        sequence.poses,
        sequence.num_scans,
        targets,
        pose_valid=getattr(sequence, "pose_valid", None),
        **kw,
    )

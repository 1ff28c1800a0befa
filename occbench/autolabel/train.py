"""Training and evaluation of the protocol's reference onboard model (rules in :mod:`occbench.autolabel.protocol`)."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occbench.autolabel.model import StudentConfig, StudentNet, soft_top2_loss
from occbench.autolabel.protocol import ProtocolConfig
from occbench.autolabel.storage import PseudoLabelStore
from occbench.checkpoints import load_checkpoint_file
from occbench.io.atomic import atomic_write_bytes
from occbench.labels import IGNORE
from occbench.runtime.progress import progress_bar

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class TrainItem:
    kind: str  # "gt" (human label of the train split), "pl" (pseudo-label of the unlabeled split) or "oracle"
    sequence: str
    frame: int


@dataclass
class Sample:
    occ: np.ndarray  # (X, Y, Z) uint8
    top1: np.ndarray  # (X, Y, Z) uint8, 255 = not supervised
    top2: np.ndarray | None = None  # (X, Y, Z) uint8
    q1: np.ndarray | None = None  # (X, Y, Z) float32


class SampleReader:
    """Reads the input and target of a training item (train split dataset + pseudo-label store)."""

    def __init__(self, train_ds: Any, pl_ds: Any | None, pl_store: PseudoLabelStore | None):
        self.train_ds, self.pl_ds, self.pl_store = train_ds, pl_ds, pl_store

    def __call__(self, item: TrainItem) -> Sample:
        if item.kind == "gt":
            fr = self.train_ds[item.sequence].frame(item.frame)
            return Sample(fr.input_occupancy(), fr.ground_truth())
        if item.kind == "oracle":  # an unlabeled-split frame with its human label (the oracle of a source)
            assert self.pl_ds is not None
            fr = self.pl_ds[item.sequence].frame(item.frame)
            return Sample(fr.input_occupancy(), fr.ground_truth())
        assert self.pl_ds is not None and self.pl_store is not None
        fr = self.pl_ds[item.sequence].frame(item.frame)
        pl = self.pl_store.read(item.sequence, item.frame)
        return Sample(fr.input_occupancy(), pl.top1, pl.top2, pl.q1())


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _augment(a: np.ndarray, fx: bool, fy: bool, ox: int, oy: int, crop: int) -> np.ndarray:
    a = a[ox : ox + crop, oy : oy + crop]
    if fx:
        a = a[::-1]
    if fy:
        a = a[:, ::-1]
    return np.ascontiguousarray(a)


def epoch_plan(n: int, seed: int, epoch: int, cfg: ProtocolConfig) -> list[tuple[int, bool, bool, int, int]]:
    """(item index, flip x, flip y, crop x, crop y) for every step of an epoch; a pure function of its arguments."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    flips = rng.integers(0, 2, size=(n, 2)) if cfg.flips else np.zeros((n, 2), np.int64)
    offs = rng.integers(0, 256 - cfg.crop + 1, size=(n, 2))
    return [(int(order[i]), bool(flips[i, 0]), bool(flips[i, 1]), int(offs[i, 0]), int(offs[i, 1])) for i in range(n)]


def _batch(samples: list[tuple[Sample, tuple[bool, bool, int, int]]], crop: int, dev: torch.device):
    occ, t1, t2, q1 = [], [], [], []
    soft = any(s.top2 is not None for s, _ in samples)
    for s, (fx, fy, ox, oy) in samples:
        occ.append(_augment(s.occ, fx, fy, ox, oy, crop))
        a1 = _augment(s.top1, fx, fy, ox, oy, crop)
        t1.append(a1)
        if soft:
            t2.append(_augment(s.top2, fx, fy, ox, oy, crop) if s.top2 is not None else a1)
            q1.append(_augment(s.q1, fx, fy, ox, oy, crop) if s.q1 is not None else np.ones(a1.shape, np.float32))

    def zxy(arrs: list[np.ndarray], dtype: torch.dtype) -> torch.Tensor:  # targets in the logits' (B, Z, X, Y) layout
        return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous().to(dev, dtype)

    x = torch.from_numpy(np.stack(occ)).to(dev)
    return (x, zxy(t1, torch.long), zxy(t2, torch.long) if soft else None, zxy(q1, torch.float32) if soft else None)


def _save_checkpoint(
    path: Path, model: StudentNet, opt: torch.optim.Optimizer, epoch: int, digest: str, seed: int
) -> None:
    buf = io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "epochs_done": epoch,
            "digest": digest,
            "seed": seed,
        },
        buf,
    )
    atomic_write_bytes(path, buf.getvalue())


def train_student(
    cfg: ProtocolConfig,
    seed: int,
    items: list[TrainItem],
    reader: SampleReader,
    num_classes: int,
    class_weights: np.ndarray,
    run_dir: Path,
    progress: bool = True,
    desc: str = "train",
) -> tuple[StudentNet, dict[str, Any]]:
    """Train from scratch (or resume from ``run_dir/checkpoint.pt``, saved after every epoch)."""
    torch.set_num_threads(cfg.threads)
    dev = device()
    torch.manual_seed(seed)
    model = StudentNet(StudentConfig(num_classes=num_classes, width=cfg.width)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt = run_dir / CHECKPOINT
    start = 0
    if ckpt.is_file():
        st = load_checkpoint_file(ckpt, map_location=dev)
        if st.get("digest") == cfg.digest() and st.get("seed") == seed:
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            start = int(st["epochs_done"])
    cw = torch.as_tensor(class_weights, dtype=torch.float32, device=dev)
    losses: list[float] = []
    t0 = time.time()
    per_epoch = -(-len(items) // cfg.batch)  # optimiser steps of a full epoch
    epochs = -(-cfg.steps // per_epoch) if cfg.steps else cfg.epochs
    # fixed steps: as many epochs as needed, each its own shuffle, the last one cut at cfg.steps
    last_steps = cfg.steps - (epochs - 1) * per_epoch if cfg.steps else per_epoch
    total = sum(
        min(len(items), (per_epoch if e < epochs - 1 else last_steps) * cfg.batch) for e in range(start, epochs)
    )
    bar = progress_bar(iter(()), desc=desc, total=total)
    upd = getattr(bar, "update", None)
    model.train()
    for epoch in range(start, epochs):
        plan = epoch_plan(len(items), seed, epoch, cfg)
        if epoch == epochs - 1:
            plan = plan[: last_steps * cfg.batch]
        ep_loss, steps = 0.0, 0
        for b in range(0, len(plan), cfg.batch):
            chunk = plan[b : b + cfg.batch]
            samples = [(reader(items[i]), (fx, fy, ox, oy)) for i, fx, fy, ox, oy in chunk]
            x, t1, t2, q1 = _batch(samples, cfg.crop, dev)
            opt.zero_grad(set_to_none=True)
            loss = soft_top2_loss(model.forward_czxy(x), t1, t2, q1, cw, IGNORE)
            loss.backward()
            opt.step()
            ep_loss += float(loss.detach())
            steps += 1
            if upd:
                upd(len(chunk))
        losses.append(ep_loss / max(steps, 1))
        _save_checkpoint(ckpt, model, opt, epoch + 1, cfg.digest(), seed)
    if hasattr(bar, "close"):
        bar.close()
    return model, {
        "epochs": epochs,
        "steps": (epochs - 1) * per_epoch + last_steps,
        "epochs_run_now": epochs - start,
        "resumed_from_epoch": start,
        "epoch_losses_this_run": losses,
        "train_seconds_this_run": round(time.time() - t0, 2),
    }


def evaluate_student(model: StudentNet, eval_ds: Any, frames: list[tuple[str, int]], progress: bool = True):
    """Predict every (sequence, scan) of ``frames`` from its ``.bin`` and score it; returns the SSCMetric."""
    from occbench.metrics import PROTOCOLS, FrameArrays, SSCMetric

    dev = next(model.parameters()).device
    metric = SSCMetric(PROTOCOLS[eval_ds.protocol])
    model.eval()
    for s, f in progress_bar(frames, desc="evaluate student"):
        fr = eval_ds[s].frame(f)
        x = torch.from_numpy(np.ascontiguousarray(fr.input_occupancy())[None]).to(dev)
        pred = model.predict(x)[0].cpu().numpy()
        metric.update_frame(pred, FrameArrays(fr.ground_truth(), name=f"{s}/{f:06d}"))
    return metric

"""Training loop of OccFiner stage 1 (paper §4.1: Adam lr 1e-3, lr x 0.98 per epoch, random x/y flips).

``train(model, loader, cfg, out_dir, resume=True) -> history`` takes any re-iterable of batches
``{"pred": (B,T,X,Y,Z) uint8, "transforms": (B,T,4,4), "gt": (B,T,X,Y,Z) uint8, ...}`` (e.g. a
``DataLoader`` over :class:`occbench_baselines.occfiner.windows.WindowDataset` with ``flip=False``: the flips are
drawn here, seeded by (seed, epoch, step), and also applied to the positional encoding).

Files in ``out_dir`` (all written atomically): ``checkpoint-last.pt`` (after every epoch and every
``checkpoint_every_steps`` steps), ``checkpoint-epoch-N.pt`` (every ``checkpoint_every_epochs``), and
``metrics.jsonl`` (one JSON line per finished epoch; rewritten from the checkpointed history, so it never
disagrees with the checkpoint after a resume).
"""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Iterable, Iterator, Sized
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from occbench.checkpoints import load_checkpoint_file, to_plain
from occbench.io.atomic import atomic_write_bytes, atomic_write_text
from occbench.runtime.progress import progress_bar
from occbench_baselines.occfiner.losses import SSCLoss
from occbench_baselines.occfiner.model import OccFinerConfig, OccFinerNet, class_weights_tensor


@dataclass
class TrainConfig:
    epochs: int = 10  # paper: 10 (SemanticKITTI), 15 (KITTI-360)
    lr: float = 1e-3
    lr_decay: float = 0.98  # multiplied in after every epoch
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    seed: int = 0
    flip: bool = True  # random x / y flips (z never), each with probability 1/2 per sample
    device: str = "auto"  # "auto": cuda if available, else cpu
    amp: bool = True  # mixed precision on CUDA (bf16 where supported, else fp16 + GradScaler); ignored on CPU
    label_map: str = "semantickitti"  # class weights 1/ln(f + 0.001) from its voxel frequencies
    ce_weight: float = 1.0
    lovasz_weight: float = 1.0
    lovasz_max_voxels: int | None = None  # None = exact Lovász over all valid voxels (paper)
    grad_clip: float | None = None
    head_on_labelled: bool = True  # run the segmentation head only on frames with ground truth (same loss, less work)
    checkpoint_every_epochs: int = 1
    checkpoint_every_steps: int | None = None
    max_steps_per_epoch: int | None = None
    progress: bool = True


def select_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def amp_settings(device: torch.device, enabled: bool) -> tuple[bool, torch.dtype, bool]:
    """(autocast on, dtype, use GradScaler)."""
    if device.type != "cuda" or not enabled:
        return False, torch.float32, False
    if torch.cuda.is_bf16_supported():
        return True, torch.bfloat16, False
    return True, torch.float16, True


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def draw_flips(batch_size: int, seed: int, epoch: int, step: int) -> torch.Tensor:
    """(B, 2) bool x/y flips, a pure function of (seed, epoch, step) so that resumed runs draw the same."""
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch, step]).generate_state(1)[0]))
    return torch.rand(batch_size, 2, generator=g) < 0.5


def apply_flips(vol: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Flip samples of vol (B, T, X, Y, Z) along X where flip[:,0] and Y where flip[:,1]."""
    out = vol.clone()
    for b in range(vol.shape[0]):
        dims = [d for d, on in ((2, bool(flip[b, 0])), (3, bool(flip[b, 1]))) if on]
        if dims:
            out[b] = vol[b].flip([d - 1 for d in dims])
    return out


def confusion(logits: torch.Tensor, gt: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C) int64 confusion matrix [gt, pred] over voxels with gt != 255; logits (..., C, X, Y, Z)."""
    pred = logits.argmax(-4).reshape(-1)
    g = gt.reshape(-1).long()
    m = g != 255
    return torch.bincount(g[m] * num_classes + pred[m], minlength=num_classes**2).view(num_classes, num_classes).cpu()


def miou_from_confusion(cm: torch.Tensor) -> tuple[float, float]:
    """(SSC mIoU over classes 1.. present in gt or pred, completion IoU occupied vs empty)."""
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    cls = [(tp[c] / union[c]).item() for c in range(1, cm.shape[0]) if union[c] > 0]
    occ_tp = cm[1:, 1:].sum()
    occ_union = cm.sum() - cm[0, 0]
    iou = (occ_tp / occ_union).item() if occ_union > 0 else float("nan")
    return (float(np.mean(cls)) if cls else float("nan")), iou


def _save(path: Path, obj: dict) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getbuffer())


def _set_epoch(loader: Iterable, epoch: int) -> None:
    for obj in (
        loader,
        getattr(loader, "dataset", None),
        getattr(loader, "sampler", None),
        getattr(loader, "batch_sampler", None),
    ):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


def train(
    model: OccFinerNet,
    loader: Iterable[dict],
    cfg: TrainConfig | None = None,
    out_dir: str | Path = "runs/occfiner",
    resume: bool = True,
    extra: dict | None = None,
) -> list[dict]:
    """Train ``model`` on ``loader`` for ``cfg.epochs`` epochs; returns the per-epoch history.

    ``extra``: more JSON-able entries stored in every checkpoint (e.g. ``window_config``)."""
    cfg = cfg or TrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = select_device(cfg.device)
    use_amp, amp_dtype, use_scaler = amp_settings(device, cfg.amp)
    seed_everything(cfg.seed)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    weights = class_weights_tensor(cfg.label_map)[: model.cfg.num_classes].to(device)
    loss_fn = SSCLoss(weights, cfg.ce_weight, cfg.lovasz_weight, lovasz_max_voxels=cfg.lovasz_max_voxels)
    C = model.cfg.num_classes

    history: list[dict] = []
    start_epoch, start_step = 0, 0
    acc: dict = _new_acc(C)
    last = out / "checkpoint-last.pt"
    if resume and last.exists():
        ck = load_checkpoint_file(last, map_location=device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        if use_scaler and ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        history = list(ck["history"])
        start_epoch, start_step = int(ck["epoch"]), int(ck["step"])
        if start_step:
            acc = ck["acc"]
        torch.set_rng_state(ck["rng"]["torch"])
        kind, keys, *rest = ck["rng"]["numpy"]
        np.random.set_state((kind, np.asarray(keys, np.uint32), *rest))
        random.setstate(ck["rng"]["python"])

    def snapshot(epoch: int, step: int) -> dict:
        return {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict() if use_scaler else None,
            "epoch": epoch,  # epoch to run next (or being run, when step > 0)
            "step": step,  # steps of that epoch already done
            "acc": acc if step else None,
            "history": history,
            "model_config": model.cfg.to_dict(),
            "train_config": asdict(cfg),
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": to_plain(np.random.get_state()),
                "python": random.getstate(),
            },
            **(extra or {}),
        }

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        _set_epoch(loader, epoch)
        t0 = time.time()
        skip = start_step if epoch == start_epoch else 0
        if not skip:
            acc = _new_acc(C)
        it: Iterator = iter(loader)
        total = None
        try:
            total = len(loader) if isinstance(loader, Sized) else None
        except TypeError:
            pass
        if cfg.max_steps_per_epoch is not None:
            total = cfg.max_steps_per_epoch if total is None else min(total, cfg.max_steps_per_epoch)
        bar = progress_bar(
            enumerate(it), desc=f"occfiner epoch {epoch + 1}/{cfg.epochs}", total=total, disable=not cfg.progress
        )
        for step, batch in bar:
            if cfg.max_steps_per_epoch is not None and step >= cfg.max_steps_per_epoch:
                break
            if step < skip:  # resumed mid-epoch: these batches were already trained on
                continue
            pred = batch["pred"].to(device, non_blocking=True)
            gt = batch["gt"].to(device, non_blocking=True)
            tf = batch["transforms"].to(device, non_blocking=True).float()
            flip = None
            if cfg.flip:
                flip = draw_flips(pred.shape[0], cfg.seed, epoch, step).to(device)
                pred, gt = apply_flips(pred, flip), apply_flips(gt, flip)
            outputs = (gt != 255).flatten(2).any(-1) if cfg.head_on_labelled else None  # (B, T) frames with GT
            if outputs is not None:
                gt = gt[outputs]  # (K, X, Y, Z), the order of the head's outputs
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                logits = model(pred.long(), tf, flip, outputs)
            loss, parts = loss_fn(logits, gt)
            opt.zero_grad(set_to_none=True)
            if loss.requires_grad:
                scaler.scale(loss).backward()
                if cfg.grad_clip is not None:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(opt)
                scaler.update()
            with torch.no_grad():
                acc["cm"] += confusion(logits.detach(), gt, C)
            for k in ("loss", "ce", "lovasz"):
                acc[k] += parts[k]
            acc["steps"] += 1
            acc["voxels"] += parts["voxels"]
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{parts['loss']:.4f}")
            if cfg.checkpoint_every_steps and (step + 1) % cfg.checkpoint_every_steps == 0:
                _save(last, snapshot(epoch, step + 1))
        n = max(acc["steps"], 1)
        miou, iou = miou_from_confusion(acc["cm"])
        rec = {
            "epoch": epoch + 1,
            "steps": acc["steps"],
            "loss": acc["loss"] / n,
            "ce": acc["ce"] / n,
            "lovasz": acc["lovasz"] / n,
            "train_miou": miou,
            "train_iou": iou,
            "lr": opt.param_groups[0]["lr"],
            "voxels": acc["voxels"],
            "seconds": time.time() - t0,
            "device": str(device),
            "amp": str(amp_dtype).replace("torch.", "") if use_amp else "off",
        }
        history.append(rec)
        sched.step()
        ck = snapshot(epoch + 1, 0)
        _save(last, ck)
        if cfg.checkpoint_every_epochs and (epoch + 1) % cfg.checkpoint_every_epochs == 0:
            _save(out / f"checkpoint-epoch-{epoch + 1}.pt", ck)
        atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    return history


def _new_acc(C: int) -> dict:
    return {"loss": 0.0, "ce": 0.0, "lovasz": 0.0, "steps": 0, "voxels": 0, "cm": torch.zeros(C, C, dtype=torch.int64)}


def load_model(checkpoint: str | Path, map_location: str | torch.device = "cpu") -> OccFinerNet:
    """Rebuild an :class:`OccFinerNet` from a checkpoint written by :func:`train` or an exported one."""
    ck = load_checkpoint_file(checkpoint, map_location=map_location)
    model = OccFinerNet(OccFinerConfig.from_dict(ck["model_config"]))
    model.load_state_dict(ck["model"])
    return model


def run_training(
    sequences,
    out_dir: str | Path,
    model_config: str | OccFinerConfig = "paper",
    cfg: TrainConfig | None = None,
    window_cfg=None,
    batch_size: int = 1,
    num_workers: int = 0,
    resume: bool = True,
) -> list[dict]:
    """Entry point for ``occbench occfiner-train --onboard NAME``.

    ``sequences``: :class:`occbench.datasets.frame.ScanSequence` objects of the training split whose
    ``prediction(i)`` reads the chosen onboard model. Pivots = labelled scans, random reference scans
    (seeded per epoch), no dataset-side flips (the loop flips, keeping coordinates consistent).
    """
    from dataclasses import asdict as _asdict

    from torch.utils.data import DataLoader

    from occbench_baselines.occfiner.windows import WindowConfig, WindowDataset

    cfg = cfg or TrainConfig()
    window_cfg = window_cfg or WindowConfig()
    ds = WindowDataset(list(sequences), window_cfg, pivots="labelled", random_reference=True, flip=False, seed=cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    keys = ("pred", "transforms", "gt", "frames")
    collate = lambda items: {k: torch.stack([it[k] for it in items]) for k in keys}  # noqa: E731
    loader = DataLoader(
        ds, batch_size=batch_size, shuffle=True, num_workers=num_workers, generator=g, collate_fn=collate
    )
    mcfg = OccFinerConfig.named(model_config) if isinstance(model_config, str) else model_config
    seed_everything(cfg.seed)
    return train(OccFinerNet(mcfg), loader, cfg, out_dir, resume=resume, extra={"window_config": _asdict(window_cfg)})

"""Runs the auto-labeling protocol: pseudo-labels -> student training per (source, seed) -> val scores -> JSON.

Output folder layout (everything written atomically; a rerun resumes)::

    <out>/pseudo-labels/<source-slug>/<top1|top2>/sequences/XX/NNNNNN.pl, manifest.json
    <out>/runs/<protocol digest>/<source-slug>/seed<k>/checkpoint.pt   # after every epoch
    <out>/runs/<protocol digest>/<source-slug>/seed<k>/result.json     # a finished run is never recomputed
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from occbench.autolabel.protocol import ProtocolConfig, SourceSpec
from occbench.autolabel.sources import generate_pseudo_labels, pl_targets, select_evenly
from occbench.autolabel.storage import PseudoLabelStore
from occbench.autolabel.train import SampleReader, TrainItem, evaluate_student, train_student
from occbench.datasets import SSCDataset
from occbench.errors import OccbenchError
from occbench.evaluation.run import DatasetSpec
from occbench.version import __version__

RESULT = "result.json"


@dataclass(frozen=True)
class AutolabelData:
    """Which data the protocol uses: a dataset (``mini``, ``semantickitti``, ...), its root and loader options.

    ``sequences`` optionally overrides the sequences of a split (``{"train": ["00"], "test": ["11"]}``), e.g. for
    small trees; splits are named by :class:`ProtocolConfig` (``train_split``, ``pl_split``, ``eval_split``).
    ``roots`` optionally reads a split from another root of the same dataset (``{"test": "/data/pl-pool"}``: a
    pool of unlabeled sequences generated apart from the benchmark's tree).
    """

    dataset: str = "mini"
    root: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    sequences: dict[str, list[str]] = field(default_factory=dict)
    roots: dict[str, str] = field(default_factory=dict)

    def spec(self, split: str, onboard: str | None = None) -> DatasetSpec:
        kw = dict(self.kwargs)
        if split in self.sequences:
            kw["sequences"] = list(self.sequences[split])
        return DatasetSpec(self.dataset, self.roots.get(split, self.root), split, onboard, kw)

    def open(self, split: str, onboard: str | None = None) -> SSCDataset:
        return self.spec(split, onboard).open()


def _labelled(ds: SSCDataset, max_n: int) -> list[tuple[str, int]]:
    return select_evenly([(s.name, int(f)) for s in ds.sequences for f in s.labelled_frames], max_n)


def eval_targets(eval_ds: SSCDataset, cfg: ProtocolConfig, gt_frames: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The scored (sequence, scan) pairs: ``max_eval_frames`` evenly spaced labelled scans of the eval split; when
    the eval split is the train split (a held-out set for choosing hyper-parameters without val), the GT training
    frames are removed first."""
    items = [(s.name, int(f)) for s in eval_ds.sequences for f in s.labelled_frames]
    if cfg.eval_split == cfg.train_split:
        used = set(gt_frames)
        items = [i for i in items if i not in used]
        if not items:
            raise OccbenchError(
                f"eval split {cfg.eval_split!r} is the train split and every labelled frame of it is a GT training "
                "frame: no held-out frame to score (lower max_train_frames)"
            )
    return select_evenly(items, cfg.max_eval_frames)


def pseudo_label_dir(out: Path, source: SourceSpec, fmt: str) -> Path:
    return out / "pseudo-labels" / source.slug / fmt


def run_dir(out: Path, cfg: ProtocolConfig, source: SourceSpec, seed: int) -> Path:
    return out / "runs" / cfg.digest() / source.slug / f"seed{seed}"


def run_one(
    data: AutolabelData,
    source: SourceSpec,
    seed: int,
    cfg: ProtocolConfig,
    out: str | Path,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """One (source, seed) run; returns its results document (read back if already finished)."""
    from occbench.metrics import PROTOCOLS
    from occbench.results import Results

    out = Path(out)
    rdir = run_dir(out, cfg, source, seed)
    done = rdir / RESULT
    if done.is_file():
        res = Results.read(done, kind="autolabel").to_dict()
        if source.has_pseudo_labels:
            from occbench.autolabel.sources import as_json
            from occbench.methods import load_method

            stored = (res["header"].get("pseudo_labels") or {}).get("method")
            now = as_json(load_method(source.method, **dict(source.options)).config(onboard=source.onboard))
            if stored != now:
                raise OccbenchError(
                    f"{done} was trained on pseudo-labels of {source.name} made with another method configuration "
                    f"(a changed option or checkpoint): stored {json.dumps(stored, sort_keys=True)}, now "
                    f"{json.dumps(now, sort_keys=True)}; delete {rdir.parent} and "
                    f"{pseudo_label_dir(out, source, '*').parent} "
                    f"or use another --out"
                )
        return res
    t0 = time.time()
    train_ds = data.open(cfg.train_split)
    eval_ds = data.open(cfg.eval_split)
    items = [TrainItem("gt", s, f) for s, f in _labelled(train_ds, cfg.max_train_frames)]
    pl_ds, store, manifest = None, None, None
    if source.is_oracle:  # the frames that a source would pseudo-label, with their human labels
        pl_ds = data.open(cfg.pl_split)
        frames = pl_targets(pl_ds, cfg)
        missing = [f"{s}/{f:06d}" for s, f in frames if not pl_ds[s].frame(f).has_ground_truth]
        if missing:
            raise OccbenchError(
                f"the oracle row needs ground truth of the {cfg.pl_split} split's frames "
                f"({pl_ds.describe().get('root')}); none for {len(missing)} of {len(frames)}, e.g. {missing[:3]}"
            )
        items += [TrainItem("oracle", s, f) for s, f in frames]
    elif not source.is_gt:
        pl_ds = data.open(cfg.pl_split, onboard=source.onboard)
        from occbench.autolabel.sources import has_scores

        fmt = "top2" if cfg.pl_format == "top2" and has_scores(source) else "top1"
        pdir = pseudo_label_dir(out, source, fmt)
        manifest = generate_pseudo_labels(pl_ds, source, cfg, pdir, progress=progress)
        store = PseudoLabelStore(pdir)
        items += [TrainItem("pl", s, f) for s, f in pl_targets(pl_ds, cfg)]
    lm = train_ds.label_map
    model, train_info = train_student(
        cfg,
        seed,
        items,
        SampleReader(train_ds, pl_ds, store),
        lm.num_classes,
        lm.class_weights(),
        rdir,
        progress=progress,
        desc=f"train {source.name} seed {seed}",
    )
    eval_frames = eval_targets(eval_ds, cfg, [(i.sequence, i.frame) for i in items if i.kind == "gt"])
    metric = evaluate_student(model, eval_ds, eval_frames, progress=progress)
    import torch

    header = {
        "autolabel": cfg.header(),
        "source": {
            "name": source.name,
            "label": source.label(),
            "method": source.method,
            "onboard": source.onboard,
            "options": dict(source.options),
        },
        "seed": seed,
        "dataset": {
            "train": train_ds.describe(),
            "eval": eval_ds.describe(),
            "unlabeled": pl_ds.describe() if pl_ds is not None else None,
        },
        "training_frames": {
            "gt": sum(1 for i in items if i.kind == "gt"),
            "pl": sum(1 for i in items if i.kind == "pl"),
            **({"oracle": sum(1 for i in items if i.kind == "oracle")} if source.is_oracle else {}),
        },
        "eval_frames": len(eval_frames),
        "pseudo_labels": None
        if manifest is None
        else {
            k: manifest[k]
            for k in ("format", "requested_format", "format_note", "file_format", "disk", "quality", "method")
        },
        "training": train_info,
        "occbench_version": __version__,
        "command": command,
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "device": str(next(model.parameters()).device),
            "threads": cfg.threads,
        },
        "wall_time_s_this_run": round(time.time() - t0, 2),
    }
    results = Results.build(PROTOCOLS[eval_ds.protocol], metrics={"ssc": metric}, header=header)
    results.write(done, overwrite=True)  # atomic; a finished run is read back above, never recomputed
    return results.to_dict()


def run_protocol(
    data: AutolabelData,
    sources: list[SourceSpec],
    cfg: ProtocolConfig,
    out: str | Path,
    progress: bool = True,
    command: str | None = None,
) -> list[dict[str, Any]]:
    """Every (source, seed) of the protocol, in order; finished runs are read back, not recomputed.

    Sources are checked first (method registered, options valid), so a typo fails before any training.
    """
    from occbench.methods import load_method

    for src in sources:
        if src.has_pseudo_labels:
            load_method(src.method, **dict(src.options))
    results = []
    for src in sources:
        for seed in cfg.seeds:
            results.append(run_one(data, src, seed, cfg, out, progress=progress, command=command))
    return results


def curve_configs(
    cfg: ProtocolConfig, amounts: list[int], formats: tuple[str, ...]
) -> list[tuple[str, ProtocolConfig]]:
    """The protocol configurations of a pseudo-label curve, in run order: ``("gt", cfg)`` once (no pseudo-labels:
    ``max_pl_frames`` 0, top-1), ``("oracle", ...)`` per amount, then per amount one ``("pl", ...)`` per format
    (top-2 first: its files give the top-1 ones)."""
    if not amounts or any(a < 1 for a in amounts) or len(set(amounts)) != len(amounts):
        raise ValueError(f"curve amounts must be distinct numbers of frames >= 1, got {amounts}")
    out = [("gt", dataclasses.replace(cfg, max_pl_frames=0, pl_format="top1"))]
    out += [("oracle", dataclasses.replace(cfg, max_pl_frames=a, pl_format="top1")) for a in amounts]
    for a in amounts:
        for fmt in sorted(formats, reverse=True):
            out.append(("pl", dataclasses.replace(cfg, max_pl_frames=a, pl_format=fmt)))
    return out


def run_curve(
    data: AutolabelData,
    source: SourceSpec,
    cfg: ProtocolConfig,
    amounts: list[int],
    out: str | Path,
    formats: tuple[str, ...] = ("top1", "top2"),
    progress: bool = True,
    command: str | None = None,
) -> list[dict[str, Any]]:
    """The pseudo-label curve (docs/autolabel.md): GT-only, then for every amount of pseudo-labelled frames the
    oracle row and ``source`` in each format, every seed; every row trains ``cfg.steps`` optimiser steps
    (required: more data must not mean more training). Finished runs are read back."""
    if cfg.steps < 1:
        raise ValueError("a curve needs a fixed number of optimiser steps (steps >= 1), the same for every row")
    if not source.has_pseudo_labels:
        raise ValueError(f"the curve's source must make pseudo-labels, got {source.name!r}")
    from occbench.methods import load_method

    load_method(source.method, **dict(source.options))
    from occbench.autolabel.sources import has_scores

    if not has_scores(source):  # top-2 of a source without scores would store top-1 again: one format only
        formats = tuple(f for f in formats if f == "top1") or ("top1",)
    gt, oracle = SourceSpec.parse("gt"), SourceSpec.parse("oracle")
    results = []
    for kind, c in curve_configs(cfg, amounts, formats):
        src = {"gt": gt, "oracle": oracle, "pl": source}[kind]
        for seed in cfg.seeds:
            results.append(run_one(data, src, seed, c, out, progress=progress, command=command))
    return results

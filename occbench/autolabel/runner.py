"""Runs the auto-labeling protocol: pseudo-labels -> student training per (source, seed) -> val scores -> JSON.

Output folder layout (everything written atomically; a rerun resumes)::

    <out>/pseudo-labels/<source-slug>/<top1|top2>/sequences/XX/NNNNNN.pl, manifest.json
    <out>/runs/<protocol digest>/<source-slug>/seed<k>/checkpoint.pt   # after every epoch
    <out>/runs/<protocol digest>/<source-slug>/seed<k>/result.json     # a finished run is never recomputed
"""

from __future__ import annotations

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
    """

    dataset: str = "mini"
    root: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    sequences: dict[str, list[str]] = field(default_factory=dict)

    def spec(self, split: str, onboard: str | None = None) -> DatasetSpec:
        kw = dict(self.kwargs)
        if split in self.sequences:
            kw["sequences"] = list(self.sequences[split])
        return DatasetSpec(self.dataset, self.root, split, onboard, kw)

    def open(self, split: str, onboard: str | None = None) -> SSCDataset:
        return self.spec(split, onboard).open()


def _labelled(ds: SSCDataset, max_n: int) -> list[tuple[str, int]]:
    return select_evenly([(s.name, int(f)) for s in ds.sequences for f in s.labelled_frames], max_n)


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
        if not source.is_gt:
            from occbench.autolabel.sources import as_json
            from occbench.methods import load_method

            stored = (res["header"].get("pseudo_labels") or {}).get("method")
            now = as_json(load_method(source.method, **dict(source.options)).config(onboard=source.onboard))
            if stored != now:
                raise OccbenchError(
                    f"{done} was trained on pseudo-labels of {source.name} made with another method configuration "
                    f"(a changed option or checkpoint): stored {json.dumps(stored, sort_keys=True)}, now "
                    f"{json.dumps(now, sort_keys=True)}; "
                    f"delete {rdir.parent} and {pseudo_label_dir(out, source, '*').parent} "
                    f"or use another --out"
                )
        return res
    t0 = time.time()
    train_ds = data.open(cfg.train_split)
    eval_ds = data.open(cfg.eval_split)
    items = [TrainItem("gt", s, f) for s, f in _labelled(train_ds, cfg.max_train_frames)]
    pl_ds, store, manifest = None, None, None
    if not source.is_gt:
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
    eval_frames = _labelled(eval_ds, cfg.max_eval_frames)
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
        if not src.is_gt:
            load_method(src.method, **dict(src.options))
    results = []
    for src in sources:
        for seed in cfg.seeds:
            results.append(run_one(data, src, seed, cfg, out, progress=progress, command=command))
    return results

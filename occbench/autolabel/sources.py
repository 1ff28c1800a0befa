"""Pseudo-label sources: run a registered offboard method over the unlabeled split and store its labels.

Scores capability (needed for top-2 pseudo-labels): a method exposes scores by implementing

    refine_top2(sequence, targets) -> Iterator[(scan, top1 uint8, top2 uint8, p1 float, p2 float)]

(grids (256, 256, 32); ``top1`` must equal what ``refine`` returns; ``p1``, ``p2`` the probabilities of the two
labels). occbench provides it for the voting baselines (``average-fusion``, ``occfiner-voting``: the vote
shares of the window, read from the same voting engine as their ``refine``) and for OccFiner
(``occfiner-stage1``: its averaged softmax; ``occfiner``: stage 2's vote shares over the stage-1 grids); the
stored pair is made consistent by :func:`~occbench.autolabel.storage.top2_pseudo_label`; ``onboard`` has no scores
(the stored onboard predictions are labels only), and any other method without ``refine_top2`` is top-1 only.
A top-2 request for a source without scores stores top-1 labels and says so in the manifest.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from occbench.autolabel.protocol import ProtocolConfig, SourceSpec
from occbench.autolabel.storage import PseudoLabel, PseudoLabelStore, top2_pseudo_label
from occbench.errors import OccbenchError
from occbench.methods import OffboardMethod, load_method
from occbench.runtime.progress import progress_bar


def as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, keys strings), so that a configuration held in
    memory compares equal to the same configuration stored in a manifest or results file."""
    return json.loads(json.dumps(value, sort_keys=True))


def select_evenly(items: list[Any], max_n: int) -> list[Any]:
    """``max_n`` evenly spaced items (first and last included); all when ``max_n`` is 0 or >= len."""
    if max_n <= 0 or max_n >= len(items):
        return list(items)
    idx = np.unique(np.round(np.linspace(0, len(items) - 1, max_n)).astype(int))
    return [items[i] for i in idx]


def scores_function(method: OffboardMethod):
    """The method's top-2 generator (its ``refine_top2`` hook), or None when it gives no scores."""
    return getattr(method, "refine_top2", None)


def has_scores(source: SourceSpec) -> bool:
    return source.has_pseudo_labels and scores_function(load_method(source.method, **dict(source.options))) is not None


def pl_targets(dataset: Any, cfg: ProtocolConfig) -> list[tuple[str, int]]:
    """The (sequence, scan) pairs of the unlabeled split that get pseudo-labels (its labelled scans, subsampled)."""
    items = [(s.name, int(f)) for s in dataset.sequences for f in s.labelled_frames]
    return select_evenly(items, cfg.max_pl_frames)


def generate_pseudo_labels(
    dataset: Any, source: SourceSpec, cfg: ProtocolConfig, store_root: Any, progress: bool = True
) -> dict[str, Any]:
    """Produce (or resume) the pseudo-labels of ``source`` for the unlabeled split and return the manifest.

    ``dataset`` is the unlabeled split opened with ``onboard=source.onboard``. The manifest holds the method
    config, the stored format, the frames, the disk usage and, where the split has ground truth (occbench-mini
    keeps test ground truth apart), the pseudo-labels' own SSC scores against it.
    """
    if not source.has_pseudo_labels:
        raise ValueError(f"the {source.name!r} source has no pseudo-labels")
    method = load_method(source.method, **dict(source.options))
    top2_fn = scores_function(method) if cfg.pl_format == "top2" else None
    fmt = "top2" if top2_fn is not None else "top1"
    store = PseudoLabelStore(store_root)
    targets = pl_targets(dataset, cfg)
    nc = dataset.label_map.num_classes
    old = store.read_manifest()
    mcfg = as_json(method.config(onboard=source.onboard))
    if old is not None and (old.get("source") != source.name or old.get("format") != fmt):
        raise OccbenchError(
            f"{store.root} holds pseudo-labels of {old.get('source')} ({old.get('format')}); "
            f"expected {source.name} ({fmt}); use another output folder"
        )
    if old is not None and old.get("method") != mcfg:
        raise OccbenchError(
            f"{store.root} holds pseudo-labels of {source.name} made with another method configuration "
            f"(a changed option or checkpoint): stored {json.dumps(old.get('method'), sort_keys=True)}, "
            f"now {json.dumps(mcfg, sort_keys=True)}; delete that folder or use another --out"
        )
    todo = [(s, f) for s, f in targets if not store.exists(s, f)]
    if fmt == "top1" and todo:
        todo = _top1_from_top2(store, source, mcfg, todo, nc)
    if old is None:  # claim the folder before the first frame, so an interrupted run is checked on resume too
        store.write_manifest(
            {
                "schema": "occbench-pseudo-labels",
                "source": source.name,
                "method": mcfg,
                "format": fmt,
                "complete": False,
            }
        )
    t0 = time.time()
    bar = progress_bar(iter(()), desc=f"pseudo-labels {source.name}", total=len(targets))
    upd = getattr(bar, "update", None)
    if upd:
        upd(len(targets) - len(todo))
    by_seq: dict[str, list[int]] = {}
    for s, f in todo:
        by_seq.setdefault(s, []).append(f)
    for sname, frames in by_seq.items():
        seq = dataset[sname]
        want = set(frames)
        got: set[int] = set()
        outputs: Iterator[Any] = top2_fn(seq, frames) if top2_fn is not None else method.refine(seq, frames)
        for out in outputs:
            t = int(out[0])
            if t not in want or t in got:
                raise OccbenchError(f"source {source.name} returned scan {t} of {sname}, not asked for or twice")
            got.add(t)
            if top2_fn is not None:
                _, l1, l2, p1, p2 = out
                pl = top2_pseudo_label(l1, l2, p1, p2)
            else:
                pl = PseudoLabel(np.asarray(out[1], np.uint8))
            store.write(sname, t, pl, nc)
            if upd:
                upd(1)
        if got != want:
            raise OccbenchError(f"source {source.name} gave no pseudo-label for {sorted(want - got)[:5]} of {sname}")
    if hasattr(bar, "close"):
        bar.close()
    manifest = {
        "schema": "occbench-pseudo-labels",
        "source": source.name,
        "method": mcfg,
        "complete": True,
        "onboard": source.onboard,
        "split": dataset.split,
        "sequences": dataset.sequence_names,
        "format": fmt,
        "requested_format": cfg.pl_format,
        "format_note": None if fmt == cfg.pl_format else f"{source.method} gives no scores: top-1 stored",
        "file_format": "occbench-pl v1 (docs/autolabel.md)",
        "frames": [[s, f] for s, f in targets],
        "disk": store.disk_usage(),
        "quality": pseudo_label_quality(dataset, store, targets),
        "generation_seconds_this_run": round(time.time() - t0, 2),
    }
    store.write_manifest(manifest)
    return manifest


def _top1_from_top2(
    store: PseudoLabelStore, source: SourceSpec, mcfg: Any, todo: list[tuple[str, int]], nc: int
) -> list[tuple[str, int]]:
    """Write the top-1 files of ``todo`` that the sibling top-2 store of the same source and method configuration
    already holds (its top-1 plane is the source's ``refine`` output, so the file is the one ``refine`` would give);
    returns the frames still to compute."""
    sib = PseudoLabelStore(store.root.parent / "top2")
    man = sib.read_manifest()
    if man is None or man.get("source") != source.name or man.get("format") != "top2" or man.get("method") != mcfg:
        return todo
    rest = []
    for s, f in todo:
        if sib.exists(s, f):
            store.write(s, f, PseudoLabel(sib.read(s, f).top1), nc)
        else:
            rest.append((s, f))
    return rest


def pseudo_label_quality(
    dataset: Any, store: PseudoLabelStore, targets: list[tuple[str, int]]
) -> dict[str, Any] | None:
    """SSC scores of the stored top-1 pseudo-labels against the split's ground truth, if it has any."""
    from occbench.metrics import PROTOCOLS, FrameArrays, SSCMetric

    frames = [dataset[s].frame(f) for s, f in targets]
    if not frames or not all(fr.has_ground_truth for fr in frames):
        return None
    m = SSCMetric(PROTOCOLS[dataset.protocol])
    for (s, f), fr in zip(targets, frames):
        m.update_frame(store.read(s, f).top1, FrameArrays(fr.ground_truth(), name=str(fr)))
    r = m.compute()
    return {k: {"iou": v["iou"], "miou": v["miou"]} for k, v in r.items()}

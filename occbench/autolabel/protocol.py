"""The auto-labeling retraining protocol ``autolabel-v1`` (OccFiner Appendix A, Table 6).

A reference onboard model (:mod:`occbench.autolabel.model`) is trained from scratch, with the fixed
hyper-parameters of a *preset* and a fixed seed, on

* ``gt``: the human labels of the train split only ("GT-Train"), or
* a pseudo-label *source*: the train labels plus pseudo-labels of the unlabeled split (the test split, as in
  the paper) produced by ``method`` from the predictions of onboard model ``onboard`` ("GT-Train + PL-Test"),

and evaluated on the val split at 12.8 / 25.6 / 51.2 m with :class:`occbench.metrics.SSCMetric`.
Everything that defines a number is in :meth:`ProtocolConfig.header`, which the results JSON carries.
Changing any rule below (not a hyper-parameter value, which is in the header) bumps ``PROTOCOL_VERSION``.

Rules of v1:
* input: the single-scan ``.bin`` occupancy of the labelled (every 5th) scans, for all splits;
* train-split targets: ``Frame.ground_truth()`` (255 where ignored or invalid, not supervised);
* pseudo-label targets: every voxel is supervised: no invalid mask exists for pseudo-labels (as in the
  OccFiner authors' OccFormer fork, whose ``--test_split`` preprocessing writes them without one);
* loss: class-weighted cross-entropy (LMSCNet weights ``1 / ln(f + 0.001)``), against the top-1 label, or a
  two-class soft target ``(q1, 1 - q1)`` on the top-2 labels when pseudo-labels are stored as top-2;
* augmentation: random x / y flips (LMSCNet; z never flipped) and a random ``crop x crop`` BEV window;
* order: an epoch visits every training frame once, GT and pseudo-labelled frames shuffled together, in an
  order drawn from ``numpy.random.default_rng([seed, epoch])`` (so a resumed run is identical);
* optimiser: Adam, constant learning rate, batch size ``batch``; the last epoch's weights are evaluated.
* scoring: ``max_eval_frames`` evenly spaced labelled frames of ``eval_split``; when ``eval_split`` is the train
  split (a held-out set for choosing hyper-parameters without val), the GT training frames are removed first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_ID = "autolabel"
PROTOCOL_VERSION = 1
PROTOCOL_TAG = f"{PROTOCOL_ID}-v{PROTOCOL_VERSION}"
GT_SOURCE = "gt"
ORACLE_SOURCE = "oracle"  # the pseudo-labelled frames with their human labels (the upper bound of a source)
PL_FORMATS = ("top1", "top2")


@dataclass(frozen=True)
class ProtocolConfig:
    """Hyper-parameters of one protocol run (all of them are in the results header).

    ``max_train_frames`` / ``max_pl_frames`` / ``max_eval_frames`` (0 = all) take evenly spaced frames of the
    split's labelled scans: they exist for CI-sized runs and are part of the header.
    """

    preset: str = "full"
    width: int = 16  # student base channels
    epochs: int = 6
    batch: int = 1
    crop: int = 128  # training BEV window (multiple of 8, <= 256)
    lr: float = 1e-3
    weight_decay: float = 0.0
    flips: bool = True
    pl_format: str = "top1"  # "top1" or "top2" (top-2 where the source gives scores, else top-1)
    max_train_frames: int = 0
    max_pl_frames: int = 0
    max_eval_frames: int = 0
    threads: int = 1  # torch CPU threads (fixed: part of the determinism contract)
    steps: int = 0  # > 0: exactly this many optimiser steps whatever the number of frames (epochs then ignored)
    seeds: tuple[int, ...] = (0,)
    train_split: str = "train"
    pl_split: str = "test"
    eval_split: str = "val"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.crop % 8 or not 8 <= self.crop <= 256:
            raise ValueError(f"crop must be a multiple of 8 in 8..256, got {self.crop}")
        if self.pl_format not in PL_FORMATS:
            raise ValueError(f"pl_format must be one of {PL_FORMATS}, got {self.pl_format!r}")
        if self.epochs < 1 or self.batch < 1 or self.width < 4 or self.threads < 1 or self.steps < 0:
            raise ValueError("epochs, batch, threads >= 1, width >= 4 and steps >= 0")
        if not self.seeds:
            raise ValueError("at least one seed")

    def hyper_parameters(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["seeds"] = list(self.seeds)
        return d

    def training_key(self) -> dict[str, Any]:
        """What determines one trained model apart from source and seed (seeds list excluded)."""
        d = self.hyper_parameters()
        d.pop("seeds")
        if not d["steps"]:  # epoch-based runs keep the digest they had before fixed-step training existed
            d.pop("steps")
        return d

    def digest(self) -> str:
        blob = json.dumps({"protocol": PROTOCOL_TAG, **self.training_key()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def header(self) -> dict[str, Any]:
        return {
            "id": PROTOCOL_TAG,
            "name": PROTOCOL_ID,
            "version": PROTOCOL_VERSION,
            "hyper_parameters": self.hyper_parameters(),
            "digest": self.digest(),
            "student": "occbench.autolabel.model.StudentNet (BEV U-Net, heights as channels)",
            "pseudo_label_mask": "none (every voxel supervised)",
            "loss": "class-weighted CE (1/ln(f+0.001)); top-2: soft two-class target",
            "ranges_m": [12.8, 25.6, 51.2],
        }


# CI: a few seconds on a make_semantickitti_tree tree or tiny mini; full: the documented form on mini.
PRESETS: dict[str, ProtocolConfig] = {
    "ci": ProtocolConfig(
        preset="ci", width=8, epochs=1, batch=1, crop=64, max_train_frames=2, max_pl_frames=2, max_eval_frames=2
    ),
    "full": ProtocolConfig(preset="full"),
    # the pseudo-label curve (docs/autolabel.md "The curve"): a small GT set, a fixed number of steps for every
    # row; crop and steps chosen among candidates of a 2-core CPU budget by mIoU on held-out train frames
    # (--eval-split train), never on val (docs/autolabel.md "Choosing the curve's student")
    "curve": ProtocolConfig(preset="curve", crop=96, steps=480, max_train_frames=15, max_eval_frames=20),
    # the curve in seconds, for CI and tests
    "curve-ci": ProtocolConfig(
        preset="curve-ci", width=8, crop=64, steps=4, max_train_frames=2, max_pl_frames=2, max_eval_frames=2
    ),
}


def preset(name: str, **overrides: Any) -> ProtocolConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    base = PRESETS[name]
    if "seeds" in overrides and overrides["seeds"] is not None:
        overrides["seeds"] = tuple(int(s) for s in overrides["seeds"])
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


_SLUG = re.compile(r"[^A-Za-z0-9_.=-]+")


@dataclass(frozen=True)
class SourceSpec:
    """A pseudo-label source: ``method:onboard[:key=value,key=value]``, or ``gt`` (no pseudo-labels).

    ``method`` is any method registered with occbench (``onboard``, ``average-fusion``, ``occfiner-voting``,
    ``occfiner``, third-party entry points); ``onboard`` names the onboard model whose predictions it refines.
    """

    method: str
    onboard: str | None = None
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, text: str) -> "SourceSpec":
        text = text.strip()
        if text in (GT_SOURCE, ORACLE_SOURCE):
            return cls(text)
        parts = text.split(":", 2)
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise ValueError(
                f"source {text!r} must be 'gt', 'oracle' or 'METHOD:ONBOARD[:key=value,...]' "
                "(e.g. onboard:voxformer-sim, occfiner:voxformer-sim)"
            )
        opts: dict[str, Any] = {}
        if len(parts) == 3 and parts[2]:
            from occbench.methods import parse_options

            opts = parse_options([p for p in parts[2].split(",") if p])
        return cls(parts[0], parts[1], tuple(sorted(opts.items())))

    @property
    def is_gt(self) -> bool:
        return self.method == GT_SOURCE

    @property
    def is_oracle(self) -> bool:
        return self.method == ORACLE_SOURCE

    @property
    def has_pseudo_labels(self) -> bool:
        return not (self.is_gt or self.is_oracle)

    @property
    def name(self) -> str:
        if not self.has_pseudo_labels:
            return self.method
        s = f"{self.method}:{self.onboard}"
        if self.options:
            s += ":" + ",".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in self.options)
        return s

    @property
    def slug(self) -> str:
        return _SLUG.sub("_", self.name.replace(":", "__"))

    def label(self) -> str:
        """Table row label, Table 6 style."""
        if self.is_gt:
            return "GT-Train (human labels)"
        if self.is_oracle:
            return "GT-Train + GT of the PL frames (oracle)"
        return f"GT-Train + PL-Test ({self.name})"

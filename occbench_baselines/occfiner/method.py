"""The ``occfiner`` and ``occfiner-stage1`` offboard methods.

* ``occfiner-stage1``: stage 1 alone — the multi-to-multi local propagation network
  (:func:`occbench_baselines.occfiner.infer.refine_sequence`) on the onboard predictions.
* ``occfiner``: stage 1, then stage 2 — sensor-aware voting (the engine and weights of ``occfiner-voting``,
  exact by default) over the **stage-1 refined** grids of the scans ``t-n .. t+n`` of each
  target ``t``. Every scan within ``n`` of a target is refined by stage 1 exactly once per job; the refined
  grids stream from stage 1 into the vote and are dropped once the engine has read them (the exact engine, which
  keeps each scan's occupied voxels while it is in the window: 3 bytes a voxel) or once the window has moved past
  them (the other engines: about ``2n+1`` grids of 2 MB), plus stage 1's windows in flight.

``checkpoint="auto"`` (default) is the shipped checkpoint of the sequence's onboard model,
``occbench_baselines/occfiner/checkpoints/<onboard>.pt``; any path to a checkpoint written by
:func:`occbench_baselines.occfiner.train.train` or :func:`occbench_baselines.occfiner.export.export_checkpoint`
works too.
Window options left at ``None`` come from the checkpoint (the window it was trained with), else the
paper's T_l = 4, T_r = 2, reference radius 10.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from occbench.errors import FormatError, MissingDataError, OccbenchError
from occbench.methods import OffboardMethod, OnboardSequence
from occbench_baselines.occfiner.windows import WindowConfig
from occbench_baselines.occfiner_voting import OccFinerVotingOptions, voting_config
from occbench_baselines.voting.method import RegistrationNote
from occbench_baselines.voting.options import voting_engine
from occbench_baselines.voting.top2 import Top2, engine_top2

if TYPE_CHECKING:
    from occbench_baselines.occfiner.model import OccFinerNet

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"


def shipped_checkpoint(onboard: str) -> Path:
    """Where the shipped checkpoint of an onboard model lives (it may not exist)."""
    return CHECKPOINT_DIR / f"{onboard}.pt"


def train_command(onboard: str, dataset: str | None = None, root: str | Path | None = None) -> str:
    """The command that trains and exports a checkpoint for ``onboard`` on ``dataset`` (a ``--dataset`` name or a
    results name; None: occbench-mini): on mini the recipe of the shipped checkpoints (docs/baselines/occfiner.md),
    on real data the paper's network and epochs (10 on SemanticKITTI, 15 on SSCBench-KITTI360) on the train split
    of the dataset at ``root``."""
    from occbench.dataset_cards import dataset_cards

    cards = dataset_cards()
    name = next((n for n, c in cards.items() if dataset in (n, c.results_name)), dataset) if dataset else "mini"
    if name in cards and cards[name].synthetic:
        return (
            f"occbench occfiner-train --dataset {name} --onboard {onboard} --config small --input-skip 4 "
            f"--epochs 12 --lr 2e-3 --threads 1 --output runs/occfiner-{onboard} --export auto"
        )
    epochs = 15 if "kitti360" in name else 10
    where = shlex.quote(str(root)) if root is not None else "ROOT"
    return (
        f"occbench occfiner-train --dataset {name} --root {where} --onboard {onboard} --config paper "
        f"--epochs {epochs} --output runs/occfiner-{name}-{onboard} --export auto"
    )


_DIGESTS: dict[tuple, str] = {}


def file_digest(path: Path) -> str:
    """First 16 hex digits of the SHA-256 of a file (cached per path, mtime and size)."""
    import hashlib

    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _DIGESTS:
        _DIGESTS[key] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return _DIGESTS[key]


def checkpoint_digests(option: str, onboard: str | None = None) -> dict[str, str]:
    """What ``checkpoint=option`` stands for, as content digests (recorded in results headers).

    ``"auto"``: with ``onboard``, the shipped checkpoint of that onboard model, ``{onboard: digest}`` (or
    ``"missing"``); without, every shipped checkpoint (which one is used depends on the sequence's onboard
    model). A path: ``{path: digest}``, or ``{path: "missing"}``.
    """
    if option == "auto" and onboard:
        p = shipped_checkpoint(onboard)
        return {onboard: file_digest(p) if p.is_file() else "missing"}
    if option == "auto":
        return {p.stem: file_digest(p) for p in sorted(CHECKPOINT_DIR.glob("*.pt"))} if CHECKPOINT_DIR.is_dir() else {}
    p = Path(option).expanduser()
    return {option: file_digest(p) if p.is_file() else "missing"}


def resolve_checkpoint(
    option: str, onboard: str | None, dataset: str | None = None, root: str | Path | None = None
) -> Path:
    """``"auto"`` -> the shipped checkpoint of ``onboard``; else the given path. Raises if it does not exist, with
    the command that trains one on ``dataset`` (at ``root``), the dataset the sequence comes from."""
    if option == "auto":
        if not onboard:
            raise MissingDataError(
                CHECKPOINT_DIR / "<onboard>.pt",
                "OccFiner checkpoint (the sequence names no onboard model)",
                "pass --option checkpoint=PATH",
            )
        path = shipped_checkpoint(onboard)
        if not path.is_file():
            have = sorted(p.stem for p in CHECKPOINT_DIR.glob("*.pt")) if CHECKPOINT_DIR.is_dir() else []
            raise MissingDataError(
                path,
                f"OccFiner checkpoint for onboard model {onboard!r}",
                f"shipped checkpoints: {', '.join(have) or 'none'}. Train and export one with\n  "
                f"{train_command(onboard, dataset, root)}\n"
                f"or pass --option checkpoint=PATH (a checkpoint-last.pt of a training run works too).",
            )
        return path
    path = Path(option).expanduser()
    if not path.is_file():
        raise MissingDataError(
            path,
            "OccFiner checkpoint (--option checkpoint=...)",
            f"train one with `{train_command(onboard or 'NAME', dataset, root)}`",
        )
    return path


_MODELS: dict[tuple, tuple[OccFinerNet, dict]] = {}
_LOCK = threading.Lock()


def load_checkpoint(path: Path, device: torch.device) -> tuple[OccFinerNet, dict]:
    """(model in eval mode on ``device``, the checkpoint's extra entries), cached per process."""
    from occbench.checkpoints import load_checkpoint_file
    from occbench_baselines.occfiner.checkpoint_check import check_occfiner_checkpoint
    from occbench_baselines.occfiner.model import OccFinerConfig, OccFinerNet

    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, str(device))
    with _LOCK:
        if key not in _MODELS:
            ck = load_checkpoint_file(path, map_location="cpu")
            check_occfiner_checkpoint(path, ck)  # types and bounds, before anything is built from it
            try:
                model = OccFinerNet(OccFinerConfig.from_dict(ck["model_config"]))
                model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["model"].items()})
            except (RuntimeError, TypeError, ValueError, KeyError) as e:
                raise FormatError(
                    path,
                    "an OccFiner checkpoint whose weights fit its model_config",
                    f"{type(e).__name__}: {str(e).splitlines()[0][:200]}",
                ) from None
            model.to(device).eval()
            _MODELS.clear()  # one model per process is enough (jobs of one evaluation share it)
            _MODELS[key] = (model, {"window_config": ck.get("window_config")})
        return _MODELS[key]


@dataclass(frozen=True)
class OccFinerStage1Options:
    checkpoint: str = "auto"  # "auto": occbench_baselines/occfiner/checkpoints/<onboard>.pt, or a path
    local: int | None = None  # T_l; None: from the checkpoint, else 4
    reference: int | None = None  # T_r; None: from the checkpoint, else 2
    reference_radius: int | None = None  # None: from the checkpoint, else 10
    reference_stride: int | None = None  # None: from the checkpoint, else 1
    stride: int | None = None  # pivot spacing of the inference windows (None: T_l // 2)
    device: str | None = None  # None: cuda if available, else cpu
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    threads: int | None = None  # torch CPU threads in this process (None: leave as is)


@dataclass(frozen=True)
class OccFinerOptions(OccFinerStage1Options, OccFinerVotingOptions):
    """Stage-2 options of ``occfiner-voting`` (preset, n, empty_policy, engine, device, sensor, weights) plus stage
    1's (checkpoint, window, stride, amp, threads; ``device`` is shared). The bases are listed stage 1 first so
    that the fields come voting options first, the order results headers record."""


class _Stage1Base(OffboardMethod):
    # stage 1 keeps two torch threads busy, and every extra job refines the scans at its edges again
    worker_threads = 2
    options: OccFinerStage1Options

    def config(self, onboard: str | None = None) -> dict:
        """Options plus the content digest of the checkpoint(s), so results of two checkpoints never look alike
        (with ``onboard``: only the checkpoint that onboard model's sequences use)."""
        c = super().config()
        c["checkpoint_sha256"] = checkpoint_digests(self.options.checkpoint, onboard)
        return c

    def _device(self) -> torch.device:
        d = self.options.device
        return torch.device(d) if d else torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _model(self, sequence: OnboardSequence) -> tuple[OccFinerNet, WindowConfig]:
        if self.options.threads:
            torch.set_num_threads(int(self.options.threads))
        path = resolve_checkpoint(
            self.options.checkpoint,
            getattr(sequence, "onboard_name", None),
            getattr(sequence, "dataset", None),
            getattr(sequence, "dataset_root", None),
        )
        model, extra = load_checkpoint(path, self._device())
        base = dict(extra.get("window_config") or {})
        w = WindowConfig(**base) if base else WindowConfig()
        o = self.options
        w = WindowConfig(
            local=o.local if o.local is not None else w.local,
            reference=o.reference if o.reference is not None else w.reference,
            reference_radius=o.reference_radius if o.reference_radius is not None else w.reference_radius,
            reference_stride=o.reference_stride if o.reference_stride is not None else w.reference_stride,
        )
        from occbench_baselines.occfiner.checkpoint_check import WINDOW_BOUNDS

        for k, (lo, hi) in WINDOW_BOUNDS.items():  # an option given with -O, or the checkpoint's (checked on load)
            v = getattr(w, k)
            if not (type(v) is int and lo <= v <= hi):
                raise OccbenchError(f"option {k}={v!r}: expected an integer in [{lo}, {hi}]")
        return model, w

    def stage1(
        self, sequence: OnboardSequence, targets: Sequence[int], top2: bool = False
    ) -> Iterator[tuple[int, Any]]:
        """Stage-1 refined grids of ``targets`` (sorted), in frame order (``top2``: ``(top1, top2, p1, p2)`` of
        the averaged softmax instead of the labels, :func:`occbench_baselines.occfiner.infer.refine_sequence`)."""
        from occbench_baselines.occfiner.infer import refine_sequence

        model, wcfg = self._model(sequence)
        return refine_sequence(
            model,
            sequence.prediction,
            sequence.poses,
            sequence.num_scans,
            targets,
            wcfg,
            stride=self.options.stride,
            device=self._device(),
            amp=self.options.amp,
            progress=False,
            pose_valid=getattr(sequence, "pose_valid", None),
            return_top2=top2,
        )


class OccFinerStage1(_Stage1Base):
    name = "occfiner-stage1"
    worker_memory_gb = 2.5  # measured peak 1.85 GB, evaluate -j1 on tiny mini val (whole process)
    description = (
        "OccFiner stage 1 alone: multi-to-multi local propagation network (DualFlow4D) on the onboard predictions."
    )
    Options = OccFinerStage1Options

    def refine(self, sequence: OnboardSequence, targets: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        yield from self.stage1(sequence, sorted(int(t) for t in targets))

    def refine_top2(self, sequence: OnboardSequence, targets: Sequence[int]) -> Iterator[Top2]:
        """``(scan, top1, top2, p1, p2)``: stage 1's averaged softmax, its two most probable classes (``top1`` is
        ``refine``'s output, bit for bit) and their probabilities."""
        for t, (l1, l2, p1, p2) in self.stage1(sequence, sorted({int(t) for t in targets}), top2=True):
            yield t, l1, l2, p1, p2


class _StreamCache:
    """Stage-1 grids pulled in frame order from an iterator, kept until the vote window has passed them, or
    (``once``: the engine reads each scan at most once) until they are read."""

    def __init__(self, source: Iterator[tuple[int, np.ndarray]], once: bool = False):
        self.source = source
        self.once = once
        self.grids: dict[int, np.ndarray] = {}
        self.done = -1

    def __call__(self, i: int) -> np.ndarray:
        while i not in self.grids:
            if i <= self.done:
                raise RuntimeError(f"stage-1 grid of scan {i} was requested after it was dropped")
            f, g = next(self.source)
            self.grids[int(f)] = g
            self.done = int(f)
        return self.grids.pop(i) if self.once else self.grids[i]

    def drop_below(self, lo: int) -> None:
        for k in [k for k in self.grids if k < lo]:
            del self.grids[k]


def needed_scans(targets: Sequence[int], n: int, num_scans: int, pose_valid: np.ndarray | None = None) -> list[int]:
    """Every scan within ``n`` of a target (clipped to the sequence) that has a pose (``pose_valid``; None: all): the
    stage-1 outputs stage 2 votes with."""
    out: set[int] = set()
    for t in targets:
        out.update(range(max(0, t - n), min(num_scans - 1, t + n) + 1))
    return sorted(s for s in out if pose_valid is None or pose_valid[s])


PAPER_PRESET_SCOPE = (
    "preset=paper is paper-literal for stage 2 (the voting) only: stage 1 is the checkpoint's network "
    "(the shipped ones: the small 0.32 M config with input_skip, not the paper's 4.51 M network)"
)


class OccFiner(RegistrationNote, _Stage1Base):
    name = "occfiner"
    worker_memory_gb = (
        2.5  # measured peak 1.73 GB, evaluate -j1 on mini 1.3 val 08, 300 scans (whole process, /usr/bin/time -v)
    )
    description = (
        "OccFiner (stage 1 + stage 2): the local propagation network, then sensor-aware voting over the "
        "stage-1 refined scans t-n..t+n."
    )
    Options = OccFinerOptions
    options: OccFinerOptions

    def config(self, onboard: str | None = None) -> dict:
        """With ``preset=paper`` the results header also says that only stage 2 follows the paper."""
        c = super().config(onboard=onboard)
        if self.options.preset == "paper":
            c["preset_scope"] = PAPER_PRESET_SCOPE
        return c

    def _stage2(self, sequence: OnboardSequence, tg: list[int]) -> tuple[Any, _StreamCache, int]:
        """(voting engine over the streamed stage-1 grids, the stream, the window radius n)."""
        cfg = voting_config(self.options, sequence)
        cache = _StreamCache(
            self.stage1(sequence, needed_scans(tg, cfg.n, sequence.num_scans, getattr(sequence, "pose_valid", None)))
        )
        frames: Callable[[int], np.ndarray] = cache
        engine = voting_engine(self.options, sequence, cfg, frames)
        cache.once = engine.reads_frames_once  # ascending targets: the grids the exact engine has read are dropped
        return engine, cache, cfg.n

    def refine(self, sequence: OnboardSequence, targets: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        tg = sorted({int(t) for t in targets})
        if not tg:
            return
        engine, cache, n = self._stage2(sequence, tg)
        for t in tg:
            cache.drop_below(max(0, t - n))
            yield t, engine.vote(t)

    def refine_top2(self, sequence: OnboardSequence, targets: Sequence[int]) -> Iterator[Top2]:
        """``(scan, top1, top2, p1, p2)``: stage 2's decision (``refine``'s output), the best other class and
        their shares of stage 2's weighted votes over the stage-1 grids
        (:func:`occbench_baselines.voting.top2.votes_top2`: the runner-up capped at the label; no votes: ``p1 = 1``).
        Stage 1's probabilities do not reach stage 2, which votes with stage-1 labels (docs/autolabel.md)."""
        tg = sorted({int(t) for t in targets})
        if not tg:
            return
        engine, cache, n = self._stage2(sequence, tg)
        yield from engine_top2(engine, tg, before=lambda t: cache.drop_below(max(0, t - n)))

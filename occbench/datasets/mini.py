"""occbench-mini: the embedded default dataset, a procedural KITTI-like world in the SemanticKITTI layout.

It lives in one cache folder, ``$OCCBENCH_DATA/mini-v<generator version>`` (``$OCCBENCH_DATA`` defaults to
``~/.cache/occbench``), where it is generated (deterministically, from a seed) on first use, and it is read by the
same loader as real SemanticKITTI. ``mini.json`` in its root names the splits, the onboard models and their sensors.
An explicit ``root`` is only read: it must hold a generated mini (``occbench synth --output ROOT`` makes one), unless
``generate=True`` asks for generation there, which is refused in a folder that holds anything else.
Mini numbers are synthetic: never present them as real-data numbers.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from occbench.datasets.semantickitti import SPLIT_ALIASES, SemanticKITTI
from occbench.errors import FormatError, MissingDataError, OccbenchError
from occbench.io.files import read_json_document

MANIFEST = "mini.json"
PARTIAL = ".synth"  # what a started generation leaves (occbench.synth.generate.MARKERS)
DEFAULT_ONBOARD = "voxformer-sim"
DATA_ENV = "OCCBENCH_DATA"
# measured: disk per scan (the default mini, 1,000 scans: 1.28 GB), seconds per scan on 2 cores idle (the default
# val sequence, docs/mini.md "Generation cost") and busy (the default mini in 1,758 s at load average 9-12)
MB_PER_SCAN, S_PER_SCAN_IDLE, S_PER_SCAN_BUSY = 1.28, 0.30, 1.76


def default_data_dir() -> Path:
    """The data cache: ``$OCCBENCH_DATA``, default ``~/.cache/occbench``."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "occbench").expanduser()


def default_mini_root() -> Path:
    """Where the default mini lives: ``<data cache>/mini-v<generator version>``."""
    from occbench.synth.config import GENERATOR_VERSION

    return default_data_dir() / f"mini-v{GENERATOR_VERSION}"


def read_manifest(root: Path) -> dict:
    p = root / MANIFEST
    try:
        m = read_json_document(p, "a JSON manifest")
    except MissingDataError:
        raise MissingDataError(p, "occbench-mini manifest", "generate it with `occbench synth --output ROOT`") from None
    if not isinstance(m, dict):
        raise FormatError(p, "a JSON object (the occbench-mini manifest)", f"a JSON {type(m).__name__}")
    for key in ("splits", "onboard"):
        if key not in m:
            raise FormatError(p, f"a '{key}' entry", f"keys {sorted(m)}")
    splits, onboard = m["splits"], m["onboard"]
    if not (isinstance(splits, dict) and all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in splits.values())):
        raise FormatError(p, "'splits': an object of lists of sequence names", f"{str(splits)[:80]}")
    if not (isinstance(onboard, list) and all(isinstance(s, str) for s in onboard)):
        raise FormatError(p, "'onboard': a list of model names", f"{str(onboard)[:80]}")
    for key in ("sensors", "test_ground_truth", "predictions"):
        if key in m and not isinstance(m[key], dict if key == "sensors" else str):
            raise FormatError(p, f"'{key}': {'an object' if key == 'sensors' else 'a folder name'}", f"{str(m[key])[:80]}")
    return m


def check_generation_target(root: Path) -> None:
    """Generation may write into ``root`` only if it is new, empty, or holds an occbench-mini (complete or started)."""
    if (root / MANIFEST).is_file() or (root / PARTIAL).is_dir():
        return
    if root.exists() and not root.is_dir():
        raise OccbenchError(f"{root}: expected a folder to generate occbench-mini into, found a file")
    from occbench.io.folder_lock import LOCK_NAME

    other = sorted(p.name for p in root.iterdir() if p.name != LOCK_NAME) if root.is_dir() else []
    if other:
        raise OccbenchError(f"{root}: expected a new or empty folder to generate occbench-mini into, found other files "
                            f"(e.g. {other[0]}); choose another folder")


def generation_estimate(cfg, splits: list[str] | None = None) -> str:
    """Disk size and time of generating ``cfg`` (a ``MiniConfig``; only ``splits`` if given), in words, from the
    measured per-scan costs of the whole default mini."""
    seqs = [q for k, v in cfg.splits.items() if splits is None or k in splits for q in v]
    n = sum(cfg.scans[q] for q in seqs)
    gb = n * MB_PER_SCAN / 1000
    size = f"{gb:.1f} GB" if gb >= 0.95 else f"{gb * 1000:.0f} MB"
    lo, hi = (max(1, round(n * s / 60)) for s in (S_PER_SCAN_IDLE, S_PER_SCAN_BUSY))
    what = f"split(s) {', '.join(splits)}: " if splits is not None else ""
    return f"{what}{n:,} scans, about {size}, {lo}-{hi} minutes on 2 CPU cores (idle to busy)"


def announce_generation(root: Path, cfg, why: str = "", splits: list[str] | None = None) -> None:
    """One line on stderr before a generation starts: where, how big, how long."""
    print(f"{why}generating occbench-mini ({generation_estimate(cfg, splits)}) into {root}; "
          f"set ${DATA_ENV} to keep the data cache elsewhere", file=sys.stderr, flush=True)


def generated(manifest: dict) -> dict[str, list[str]]:
    """What a manifest says is generated: split -> the onboard models whose predictions it has. Written as
    ``generated`` only while something is missing; without it (every complete manifest) every split with
    every onboard model."""
    if "generated" in manifest:
        return {k: list(v) for k, v in manifest["generated"].items()}
    return {s: list(manifest["onboard"]) for s in manifest["splits"]}


def present_splits(manifest: dict) -> list[str]:
    """The splits whose ground truth a manifest says is generated."""
    return list(generated(manifest))


def ensure_mini(root: str | Path | None = None, progress: bool = True, generate: bool | None = None,
                splits: list[str] | None = None, onboard: list[str] | None = None) -> Path:
    """The root of occbench-mini, holding at least ``splits`` (default: all) with the predictions of the ``onboard``
    models (default: all).

    ``root`` None: the default mini in the data cache, generated there on first use, split by split and model by
    model as commands need them. An explicit ``root`` must hold a generated mini (``mini.json``; what it lacks is
    added with the configuration it was made with); with ``generate=True`` the default configuration is generated
    there if it is a new or empty folder. ``generate=False`` never generates.
    """
    explicit = root is not None
    root = Path(root).expanduser() if explicit else default_mini_root()
    cfg = None
    if (root / MANIFEST).is_file():
        m = read_manifest(root)
        have = generated(m)
        if generate is False or all(s in have and set(onboard if onboard is not None else m["onboard"]) <= set(have[s])
                                    for s in (splits if splits is not None else m["splits"])):
            return root
        from occbench.synth.config import config_from_identity

        cfg = config_from_identity(m["config"])
    elif generate is False or (explicit and not generate):
        raise MissingDataError(
            root / MANIFEST, "occbench-mini (its manifest)",
            f"{root} holds no generated occbench-mini. Generate one there with `occbench synth --output {root}`, or "
            f"leave out --root to use the data cache ({default_mini_root()}; ${DATA_ENV} moves it).")
    check_generation_target(root)
    from occbench.synth import default_mini_config, generate_mini

    cfg = cfg or default_mini_config()
    if onboard is not None:  # a model the configuration does not have is reported by the loader
        onboard = [o for o in onboard if o in cfg.onboard]
    if splits is not None:  # a split the configuration does not have is reported by the loader
        splits = [s for s in splits if s in cfg.splits]
    announce_generation(root, cfg, "" if explicit or (root / MANIFEST).is_file() else
                        "occbench-mini is not in the data cache yet: ", splits)
    generate_mini(root, cfg, progress=progress, splits=splits, onboard=onboard)
    return root


class OccbenchMini(SemanticKITTI):
    """occbench-mini through the SemanticKITTI loader (splits and sensors from ``mini.json``)."""

    name = "occbench-mini"
    synthetic = True

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "val",
        onboard: str | None = DEFAULT_ONBOARD,
        predictions_root: str | Path | None = None,
        sequences: list[str] | None = None,
        sensor: str | None = None,
        generate: bool | None = None,
        progress: bool = True,
        predictions_format=None,
    ):
        split = SPLIT_ALIASES.get(split, split)
        models = [onboard] if onboard is not None and predictions_root is None else []
        root = ensure_mini(root, progress, generate, [split], models)
        self.manifest = m = read_manifest(root)
        have = generated(m).get(split)
        if split in m["splits"] and (have is None or not set(models) & set(m["onboard"]) <= set(have)):
            what = f"split {split!r}" + (f" with the predictions of {onboard}" if models else "")
            raise MissingDataError(root / "sequences", f"occbench-mini {what}",
                                   "not generated in this root yet; generate it with "
                                   f"`occbench synth --output {root} --split {split}` (size {m.get('size')}, seed {m.get('seed')})")
        self.splits = {k: list(v) for k, v in self.manifest["splits"].items()}
        sensors = self.manifest.get("sensors", {})
        gt_sub = self.manifest.get("test_ground_truth", "test-ground-truth")
        self._test_gt_root = root / gt_sub
        if predictions_root is None:
            predictions_root = root / self.manifest.get("predictions", "predictions")
        if onboard is not None and onboard not in self.manifest["onboard"]:
            raise MissingDataError(Path(predictions_root) / onboard, f"onboard model {onboard!r} in occbench-mini",
                                   f"this mini has: {', '.join(self.manifest['onboard'])}")
        super().__init__(root, split, onboard, predictions_root, sequences,
                         sensor or sensors.get(onboard or "", None), ground_truth_root=None,
                         predictions_format=predictions_format)

    def _gt_dir(self, root: Path, gt_root: Path, seq: str, split: str) -> Path | None:
        if seq in self.splits.get("test", []):
            return self._test_gt_root / "sequences" / seq / "voxels"
        return gt_root / "sequences" / seq / "voxels"

    def describe(self) -> dict:
        d = super().describe()
        d["generator"] = {k: self.manifest.get(k) for k in ("name", "format_version", "generator_version", "seed", "size")}
        return d

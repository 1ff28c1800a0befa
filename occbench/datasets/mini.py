"""occbench-mini: the embedded default dataset, a procedural KITTI-like world in the SemanticKITTI layout.

It is generated on first use (deterministically, from a seed) into the cache folder
``$OCCBENCH_MINI``, else ``$OCCBENCH_DATA/mini-v<generator version>`` (``$OCCBENCH_DATA`` defaults to
``~/.cache/occbench``), and read by the same loader as real
SemanticKITTI. ``mini.json`` in its root names the splits, the onboard models and their sensors.
Mini numbers are synthetic: never present them as real-data numbers.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from occbench.datasets.semantickitti import SPLIT_ALIASES, SemanticKITTI
from occbench.errors import FormatError, MissingDataError

MANIFEST = "mini.json"
DEFAULT_ONBOARD = "voxformer-sim"


def default_data_dir() -> Path:
    return Path(os.environ.get("OCCBENCH_DATA", Path.home() / ".cache" / "occbench")).expanduser()


def default_mini_root() -> Path:
    env = os.environ.get("OCCBENCH_MINI")
    if env:
        return Path(env).expanduser()
    from occbench.synth.config import GENERATOR_VERSION

    return default_data_dir() / f"mini-v{GENERATOR_VERSION}"


def read_manifest(root: Path) -> dict:
    p = root / MANIFEST
    try:
        m = json.loads(p.read_text())
    except FileNotFoundError:
        raise MissingDataError(p, "occbench-mini manifest", "generate it with `occbench synth --output ROOT`") from None
    except json.JSONDecodeError as e:
        raise FormatError(p, "a JSON manifest", f"invalid JSON ({e})") from None
    for key in ("splits", "onboard"):
        if key not in m:
            raise FormatError(p, f"a '{key}' entry", f"keys {sorted(m)}")
    return m


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


def ensure_mini(root: str | Path | None = None, progress: bool = True, splits: list[str] | None = None,
                onboard: list[str] | None = None) -> Path:
    """Return the root of occbench-mini, generating the default mini split there on first use: only ``splits``
    (default: all) with the predictions of only the ``onboard`` models (default: all), and later what a root
    still lacks (with the configuration it was made with)."""
    root = Path(root).expanduser() if root is not None else default_mini_root()
    cfg = None
    if (root / MANIFEST).is_file():
        m = read_manifest(root)
        have = generated(m)
        if all(s in have and set(onboard if onboard is not None else m["onboard"]) <= set(have[s])
               for s in (splits if splits is not None else m["splits"])):
            return root
        from occbench.synth.config import config_from_identity

        cfg = config_from_identity(m["config"])
    from occbench.synth import default_mini_config, generate_mini

    cfg = cfg or default_mini_config()
    if onboard is not None:  # a model the configuration does not have is reported by the loader
        onboard = [o for o in onboard if o in cfg.onboard]
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
        generate: bool = True,
        progress: bool = True,
    ):
        split = SPLIT_ALIASES.get(split, split)
        models = [onboard] if onboard is not None and predictions_root is None else []
        root = (ensure_mini(root, progress, [split], models) if generate
                else Path(root or default_mini_root()).expanduser())
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
                         sensor or sensors.get(onboard or "", None), ground_truth_root=None)

    def _gt_dir(self, root: Path, gt_root: Path, seq: str, split: str) -> Path | None:
        if seq in self.splits.get("test", []):
            return self._test_gt_root / "sequences" / seq / "voxels"
        return gt_root / "sequences" / seq / "voxels"

    def describe(self) -> dict:
        d = super().describe()
        d["generator"] = {k: self.manifest.get(k) for k in ("name", "format_version", "generator_version", "seed", "size")}
        return d

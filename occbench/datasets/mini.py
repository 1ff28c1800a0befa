"""occbench-mini: the embedded default dataset, a procedural KITTI-like world in the SemanticKITTI layout.

It is generated on first use (deterministically, from a seed) into the cache folder
``$OCCBENCH_MINI``, else ``$OCCBENCH_DATA/mini-v<generator version>`` (``$OCCBENCH_DATA`` defaults to
``~/.cache/occbench``), and read by the same loader as real
SemanticKITTI. ``mini.json`` in its root names the splits, the onboard models and their sensors.
Mini numbers are synthetic: never present them as real-data numbers.
"""
from __future__ import annotations

import os
from pathlib import Path

from occbench.datasets.semantickitti import SemanticKITTI
from occbench.errors import FormatError, MissingDataError
from occbench.io.files import read_json_document

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


def ensure_mini(root: str | Path | None = None, progress: bool = True) -> Path:
    """Return the root of occbench-mini, generating the default mini split there on first use."""
    root = Path(root).expanduser() if root is not None else default_mini_root()
    if not (root / MANIFEST).is_file():
        from occbench.synth import default_mini_config, generate_mini

        generate_mini(root, default_mini_config(), progress=progress)
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
        predictions_format=None,
    ):
        root = ensure_mini(root, progress) if generate else Path(root or default_mini_root()).expanduser()
        self.manifest = read_manifest(root)
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

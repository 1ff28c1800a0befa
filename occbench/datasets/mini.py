"""occbench-mini: the embedded default dataset, a procedural KITTI-like world in the SemanticKITTI layout.

It lives in one cache folder, ``$OCCBENCH_DATA/mini-v<generator version>`` (``$OCCBENCH_DATA`` defaults to
``~/.cache/occbench``), where it is generated (deterministically, from a seed) on first use, and it is read by the
same loader as real SemanticKITTI. ``mini.json`` in its root names the splits, the onboard models and their sensors.
An explicit ``root`` is only read: it must hold a generated mini (``occbench synth --output ROOT`` makes one), unless
``generate=True`` asks for generation there, which is refused in a folder that holds anything else. This module
only reads: finding the data cache and generating on first use are the generator's (:func:`mini_provider`).
Mini numbers are synthetic: never present them as real-data numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

from occbench.dataset_cards import dataset_card
from occbench.datasets.semantickitti import SPLIT_ALIASES, SemanticKITTI
from occbench.errors import MissingDataError, OccbenchError
from occbench.io.mini_manifest import generated, read_manifest

DEFAULT_ONBOARD: str = dataset_card("mini").default_onboard or ""  # occbench/datasets/cards/mini.json
DATA_GROUP = "occbench.data"  # entry points that find (and make on first use) embedded data sets
CARD = dataset_card("mini")  # occbench/datasets/cards/mini.json


def mini_provider() -> Callable[..., Path]:
    """The function that finds occbench-mini and generates on first use what a command needs (signature of
    ``ensure_mini(root=None, progress=True, generate=None, splits=None, onboard=None) -> root``): the
    ``occbench-mini`` entry point of the ``occbench.data`` group, the generator's. Loaders only read."""
    eps = {ep.name: ep for ep in entry_points(group=DATA_GROUP)}
    if "occbench-mini" not in eps:
        raise OccbenchError(
            f"no occbench-mini generator is installed (the 'occbench-mini' entry point of the "
            f"'{DATA_GROUP}' group); reinstall occbench (`pip install -e .`)"
        )
    return eps["occbench-mini"].load()


class OccbenchMini(SemanticKITTI):
    """occbench-mini through the SemanticKITTI loader (splits and sensors from ``mini.json``)."""

    name = CARD.results_name
    protocol = CARD.protocol_id
    synthetic = CARD.synthetic

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
        root = mini_provider()(root, progress, generate, [split], models)
        self.manifest = m = read_manifest(root)
        have = generated(m).get(split)
        if split in m["splits"] and (have is None or not set(models) & set(m["onboard"]) <= set(have)):
            what = f"split {split!r}" + (f" with the predictions of {onboard}" if models else "")
            raise MissingDataError(
                root / "sequences",
                f"occbench-mini {what}",
                "not generated in this root yet; generate it with "
                f"`occbench synth --output {root} --split {split}` (size {m.get('size')}, seed {m.get('seed')})",
            )
        self.splits = {k: list(v) for k, v in self.manifest["splits"].items()}
        sensors = self.manifest.get("sensors", {})
        gt_sub = self.manifest.get("test_ground_truth", "test-ground-truth")
        self._test_gt_root = root / gt_sub
        own = predictions_root is None  # the mini's own predictions (another folder's models may have any name)
        if predictions_root is None:
            predictions_root = root / self.manifest.get("predictions", "predictions")
        if own and onboard is not None and onboard not in self.manifest["onboard"]:
            raise MissingDataError(
                Path(predictions_root) / onboard,
                f"onboard model {onboard!r} in occbench-mini",
                f"this mini has: {', '.join(self.manifest['onboard'])}",
            )
        super().__init__(
            root,
            split,
            onboard,
            predictions_root,
            sequences,
            sensor or sensors.get(onboard or "", None),
            ground_truth_root=None,
            predictions_format=predictions_format,
        )

    def _gt_dir(self, root: Path, gt_root: Path, seq: str, split: str) -> Path | None:
        if seq in self.splits.get("test", []):
            return self._test_gt_root / "sequences" / seq / "voxels"
        return gt_root / "sequences" / seq / "voxels"

    def describe(self) -> dict:
        d = super().describe()
        d["generator"] = {
            k: self.manifest.get(k) for k in ("name", "format_version", "generator_version", "seed", "size")
        }
        return d

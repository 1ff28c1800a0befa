"""SemanticKITTI semantic scene completion (v1.1 voxel release) with onboard predictions.

Layout (semantic-kitti-api README; predictions in the official submission layout)::

    <root>/sequences/XX/{calib.txt, poses.txt, times.txt}
    <root>/sequences/XX/voxels/NNNNNN.{bin,label,invalid,occluded}      every 5th scan
    <predictions_root>/<onboard>/sequences/XX/predictions/NNNNNN.label[.gz]

``predictions_root`` defaults to ``<root>/predictions``.
"""

from __future__ import annotations

import os
import re
from functools import partial
from pathlib import Path

import numpy as np

from occbench.dataset_cards import dataset_card
from occbench.datasets.base import SSCDataset, open_onboard_store
from occbench.datasets.frame import ScanSequence, VoxelLayout
from occbench.errors import FormatError, MissingDataError, UnknownNameError
from occbench.io.formats import ForeignFormat
from occbench.io.kitti import Calibration, read_calib, read_poses, read_times
from occbench.labels import load_label_map

CARD = dataset_card("semantickitti")  # occbench/datasets/cards/semantickitti.json
SPLITS: dict[str, list[str]] = CARD.split_lists()
SPLIT_ALIASES = {"valid": "val", "validation": "val"}

HOW_TO_GET = (
    "SemanticKITTI must be downloaded by hand (http://www.semantic-kitti.org/dataset.html#download: "
    "'SemanticKITTI voxel data (v1.1)' plus the KITTI odometry calibration and poses), "
    "unpacked so that <root>/sequences/08/voxels/000000.label exists."
)

# Onboard model modality, for sensor-aware methods. Users may pass sensor= explicitly.
KNOWN_SENSORS = {
    "voxformer": "camera",
    "monoscene": "camera",
    "tpvformer": "camera",
    "occformer": "camera",
    "sscnet": "lidar",
    "sscnet-full": "lidar",
    "lmscnet": "lidar",
    "scpnet": "lidar",
    "voxformer-sim": "camera",
    "sscnet-sim": "lidar",
}


def normalize_split(split: str, splits: dict[str, list[str]]) -> str:
    split = SPLIT_ALIASES.get(split, split)
    if split not in splits:
        raise UnknownNameError("split", split, list(splits))
    return split


def guess_sensor(onboard: str | None) -> str | None:
    if onboard is None:
        return None
    return KNOWN_SENSORS.get(onboard.lower())


_SCAN_RE = re.compile(r"^(\d{6})\.")


def read_sequence_poses(seq_dir: Path, calib: Calibration) -> np.ndarray:
    """LiDAR poses of ``<seq_dir>/poses.txt``, checked against the sequence: ``times.txt`` (when present) must have
    as many lines, and every scan in ``voxels/`` (and ``velodyne/``, when present) must have a pose."""
    path = seq_dir / "poses.txt"
    poses = read_poses(path, calib)
    n = poses.shape[0]
    times = seq_dir / "times.txt"
    if times.exists():
        nt = read_times(times).shape[0]
        if nt != n:
            raise FormatError(path, f"one pose per line of {times.name} ({nt} lines)", f"{n} poses")
    for sub in ("voxels", "velodyne"):
        d = seq_dir / sub
        if d.is_dir():
            last = max((int(m.group(1)) for m in map(_SCAN_RE.match, os.listdir(d)) if m), default=-1)
            if last >= n:
                raise FormatError(
                    path,
                    f"a pose for every scan ({sub}/ holds scan {last:06d}, so at least {last + 1} poses)",
                    f"{n} poses",
                )
    return poses


class SemanticKITTI(SSCDataset):
    """SemanticKITTI SSC split with the predictions of one onboard model.

    >>> ds = SemanticKITTI("/data/semantickitti", split="val", onboard="voxformer")   # doctest: +SKIP
    >>> seq = ds["08"]; frame = seq.frames()[0]
    >>> gt = frame.ground_truth()          # (256,256,32) uint8 train ids, 255 = ignore/invalid
    >>> pred = frame.prediction()          # onboard prediction, train ids
    """

    name = CARD.results_name
    protocol = CARD.protocol_id
    splits = SPLITS

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        onboard: str | None = None,
        predictions_root: str | Path | None = None,
        sequences: list[str] | None = None,
        sensor: str | None = None,
        ground_truth_root: str | Path | None = None,
        predictions_format: ForeignFormat | None = None,
    ):
        root = Path(root).expanduser()
        split = normalize_split(split, self.splits)
        seq_root = root / "sequences"
        if not seq_root.is_dir():
            raise MissingDataError(seq_root, f"{self.name} sequences folder", HOW_TO_GET)
        names = list(self.splits[split]) if sequences is None else list(sequences)
        lm = load_label_map("semantickitti")
        store = open_onboard_store(root, predictions_root, onboard, predictions_format, lm)
        gt_root = Path(ground_truth_root) if ground_truth_root is not None else root
        sensor = sensor or guess_sensor(onboard)
        seqs = []
        for s in names:
            d = seq_root / s
            if not d.is_dir():
                raise MissingDataError(d, f"sequence {s} of split {split}", HOW_TO_GET)
            gt_dir = self._gt_dir(root, gt_root, s, split)
            seqs.append(
                ScanSequence(
                    name=s,
                    voxel_dir=d / "voxels",
                    gt_voxel_dir=gt_dir,
                    label_map=lm,
                    layout=VoxelLayout(),
                    load_calib=partial(read_calib, d / "calib.txt"),
                    load_poses=partial(read_sequence_poses, d),
                    onboard=store,
                    onboard_name=onboard,
                    sensor=sensor,
                )
            )
        super().__init__(root, split, onboard, lm, seqs)

    def _gt_dir(self, root: Path, gt_root: Path, seq: str, split: str) -> Path | None:
        d = gt_root / "sequences" / seq / "voxels"
        if split == "test" and gt_root == root:
            return None  # the hidden test set: inputs only
        return d

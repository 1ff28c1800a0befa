"""SSCBench-KITTI360 semantic scene completion with onboard predictions.

Layout (ai4ce/SSCBench ``dataset/KITTI-360/README.md``)::

    <root>/data_2d_raw/2013_05_28_drive_00XX_sync/voxels/NNNNNN.{bin,label,invalid}   every 5th frame
    <root>/data_2d_raw/2013_05_28_drive_00XX_sync/cam0_to_world.txt                  (or KITTI-360's
    <root>/data_poses/2013_05_28_drive_00XX_sync/cam0_to_world.txt                    data_poses folder)
    <root>/preprocess/labels/2013_05_28_drive_00XX_sync/NNNNNN_1_1.npy   SSCBench's preprocessed ground truth
    <predictions_root>/<onboard>/sequences/2013_05_28_drive_00XX_sync/predictions/NNNNNN.label[.gz]

The ground truth is read from the voxels or, where they are absent, from SSCBench's ``.npy`` labels (float32 train
ids, 255 unknown): ``ground_truth="auto" | "voxels" | "sscbench-npy"`` (:func:`ground_truth_source`); the two forms
score identically.

Differences from SemanticKITTI, all handled here: 19 classes (``kitti360`` label map), ``.invalid`` is one
byte per voxel and is cleared where the label is non-empty, no ``.occluded``, frames are numbered by the raw
KITTI-360 frame id, and the calibration is fixed (SSCBench ``kitti_360_dataset.py``: fx=fy=552.554261,
cx=682.049453, cy=238.769549, images 1408x376, ``cam2velo`` below).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from occbench.dataset_cards import dataset_card
from occbench.datasets.base import SSCDataset, open_onboard_store
from occbench.datasets.frame import Sequence, VoxelLayout
from occbench.datasets.semantickitti import guess_sensor, normalize_split
from occbench.errors import FormatError, MissingDataError
from occbench.io.formats import ForeignFormat
from occbench.io.kitti import Calibration, check_rigid, read_number_rows
from occbench.labels import load_label_map

DRIVE = "2013_05_28_drive_{:04d}_sync"
CARD = dataset_card("sscbench-kitti360")  # occbench/labels/datasets/sscbench-kitti360.json
SPLITS: dict[str, list[str]] = CARD.split_lists()
CAM2VELO = np.array([
    [0.04307104361, -0.08829286498, 0.995162929, 0.8043914418],
    [-0.999004371, 0.007784614041, 0.04392796942, 0.2993489574],
    [-0.01162548558, -0.9960641394, -0.08786966659, -0.1770225824],
    [0.0, 0.0, 0.0, 1.0],
])
K = np.array([[552.554261, 0.0, 682.049453, 0.0], [0.0, 552.554261, 238.769549, 0.0], [0.0, 0.0, 1.0, 0.0]])
IMAGE_SIZE = (1408, 376)
HOW_TO_GET = (
    "SSCBench-KITTI360 must be downloaded by hand (https://github.com/ai4ce/SSCBench, dataset/KITTI-360/README.md) "
    "and unpacked so that <root>/data_2d_raw/2013_05_28_drive_0006_sync/voxels/ exists; the poses "
    "(cam0_to_world.txt) come from KITTI-360's data_poses download."
)
_VOX_RE = re.compile(r"^(\d{6})\.label$")
_NPY_RE = re.compile(r"^(\d{6})_1_1\.npy$")


def kitti360_calibration() -> Calibration:
    Tr = np.linalg.inv(CAM2VELO)  # velodyne -> camera 0
    return Calibration(P={k: K.copy() for k in ("P0", "P1", "P2", "P3")}, Tr=Tr, path=None)


def read_cam0_to_world(path: Path, calib: Calibration) -> np.ndarray:
    """Read KITTI-360 ``cam0_to_world.txt`` (``frame`` + 16 floats per row) as dense LiDAR poses.

    Returns (max_frame + 1, 4, 4); frames without a pose are NaN and raise when used.
    """
    if not path.is_file():
        raise MissingDataError(path, "KITTI-360 poses (cam0_to_world.txt)", HOW_TO_GET)
    rows, lines = read_number_rows(path, "KITTI-360 poses file (frame id + 16 floats per row)", 17)
    f = rows[:, 0]
    bad = np.flatnonzero((f < 0) | (f != np.round(f)) | (f > 200_000))
    if bad.size:
        raise FormatError(path, "a frame id (an integer >= 0) first on every row", f"{rows[bad[0], 0]!r} on line {lines[bad[0]]}")
    frames = f.astype(np.int64)
    if np.unique(frames).size != frames.size:
        dup = int(frames[np.flatnonzero(np.bincount(frames) > 1)[0]]) if frames.size else 0
        raise FormatError(path, "each frame id once", f"frame {dup} on several rows")
    T = rows[:, 1:].reshape(-1, 4, 4)
    check_rigid(T, path, "cam0_to_world poses", lines=lines)
    poses = np.full((int(frames.max()) + 1, 4, 4), np.nan)
    poses[frames] = T @ calib.Tr
    return poses


class SSCBenchKITTI360(SSCDataset):
    """SSCBench-KITTI360 split with the predictions of one onboard model."""

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
        ground_truth: str = "auto",
        labels_root: str | Path | None = None,
        predictions_format: ForeignFormat | None = None,
    ):
        root = Path(root).expanduser()
        split = normalize_split(split, self.splits)
        raw = root / "data_2d_raw"
        names = list(self.splits[split]) if sequences is None else list(sequences)
        npy_root = Path(labels_root).expanduser() if labels_root is not None else root / "preprocess" / "labels"
        self.ground_truth = ground_truth_source(raw, npy_root, names, split, ground_truth)
        lm = load_label_map("kitti360")
        store = open_onboard_store(root, predictions_root, onboard, predictions_format, lm)
        layout = VoxelLayout(invalid_packed=False, clear_invalid_where_labelled=True, has_occluded=False,
                             gt_format=self.ground_truth)
        frame_re, gt_of = (_VOX_RE, lambda s: raw / s / "voxels") if self.ground_truth == "voxels" else \
            (_NPY_RE, lambda s: npy_root / s)
        seqs = []
        for s in names:
            d = raw / s
            gt_dir = gt_of(s)
            pose_file = d / "cam0_to_world.txt"
            if not pose_file.is_file():
                pose_file = root / "data_poses" / s / "cam0_to_world.txt"
            seqs.append(Sequence(
                name=s, voxel_dir=d / "voxels", gt_voxel_dir=gt_dir, label_map=lm, layout=layout,
                load_calib=kitti360_calibration,
                load_poses=lambda c, p=pose_file: read_cam0_to_world(p, c),
                onboard=store, onboard_name=onboard, sensor=sensor or guess_sensor(onboard),
                frame_ids=lambda g=gt_dir, r=frame_re: sorted(int(m.group(1)) for m in map(r.match, (e.name for e in g.iterdir())) if m),
                image_size=IMAGE_SIZE,
            ))
        super().__init__(root, split, onboard, lm, seqs)

    def describe(self) -> dict:
        return {**super().describe(), "ground_truth": self.ground_truth}


def ground_truth_source(raw: Path, npy_root: Path, drives: list[str], split: str, choice: str = "auto") -> str:
    """Which ground truth a split is read from: ``voxels`` (``data_2d_raw/<drive>/voxels/*.label`` + ``.invalid``,
    preprocessed by occbench exactly like SSCBench) or ``sscbench-npy`` (SSCBench's own ``preprocess/labels/<drive>/
    NNNNNN_1_1.npy``). ``auto`` takes ``voxels`` when every drive has that folder, else ``sscbench-npy`` when every
    drive has its labels folder; scores are identical when both come from the same release."""
    if choice not in ("auto", "voxels", "sscbench-npy"):
        raise ValueError(f"ground_truth must be 'auto', 'voxels' or 'sscbench-npy', not {choice!r}")
    vox_missing = [raw / d / "voxels" for d in drives if not (raw / d / "voxels").is_dir()]
    npy_missing = [npy_root / d for d in drives if not (npy_root / d).is_dir()]
    if choice == "voxels" or (choice == "auto" and not vox_missing):
        if vox_missing:
            raise MissingDataError(vox_missing[0], f"voxels of drive {vox_missing[0].parent.name} (split {split})", HOW_TO_GET)
        return "voxels"
    if npy_missing:
        if choice == "auto":
            raise MissingDataError(vox_missing[0], f"ground truth of drive {vox_missing[0].parent.name} (split {split})",
                                   f"expected {vox_missing[0]}/NNNNNN.label + .invalid, or SSCBench's "
                                   f"{npy_root / vox_missing[0].parent.name}/NNNNNN_1_1.npy\n{HOW_TO_GET}")
        raise MissingDataError(npy_missing[0], f"SSCBench labels of drive {npy_missing[0].name} (split {split})",
                               "expected <root>/preprocess/labels/<drive>/NNNNNN_1_1.npy (or pass labels_root)")
    return "sscbench-npy"

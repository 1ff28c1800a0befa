"""SSCBench-KITTI360 semantic scene completion with onboard predictions.

Layout (ai4ce/SSCBench ``dataset/KITTI-360/README.md``)::

    <root>/data_2d_raw/2013_05_28_drive_00XX_sync/voxels/NNNNNN.{bin,label,invalid}   every 5th frame
    <root>/data_2d_raw/2013_05_28_drive_00XX_sync/cam0_to_world.txt                  (or KITTI-360's
    <root>/data_poses/2013_05_28_drive_00XX_sync/cam0_to_world.txt                    data_poses folder)
    <predictions_root>/<onboard>/sequences/2013_05_28_drive_00XX_sync/predictions/NNNNNN.label[.gz]

Differences from SemanticKITTI, all handled here: 19 classes (``kitti360`` label map), ``.invalid`` is one
byte per voxel and is cleared where the label is non-empty, no ``.occluded``, frames are numbered by the raw
KITTI-360 frame id, and the calibration is fixed (SSCBench ``kitti_360_dataset.py``: fx=fy=552.554261,
cx=682.049453, cy=238.769549, images 1408x376, ``cam2velo`` below).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from occbench.datasets.base import SSCDataset, open_onboard_store
from occbench.datasets.frame import Sequence, VoxelLayout
from occbench.datasets.semantickitti import guess_sensor, normalize_split
from occbench.errors import FormatError, MissingDataError
from occbench.io.kitti import Calibration, check_rigid, read_number_rows
from occbench.labels import load_label_map

DRIVE = "2013_05_28_drive_{:04d}_sync"
SPLITS: dict[str, list[str]] = {
    "train": [DRIVE.format(i) for i in (0, 2, 3, 4, 5, 7, 10)],
    "val": [DRIVE.format(6)],
    "test": [DRIVE.format(9)],
}
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

    name = "sscbench-kitti360"
    protocol = "sscbench-kitti360-ssc"
    splits = SPLITS

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        onboard: str | None = None,
        predictions_root: str | Path | None = None,
        sequences: list[str] | None = None,
        sensor: str | None = None,
    ):
        root = Path(root).expanduser()
        split = normalize_split(split, self.splits)
        raw = root / "data_2d_raw"
        if not raw.is_dir():
            raise MissingDataError(raw, "SSCBench-KITTI360 data_2d_raw folder", HOW_TO_GET)
        names = list(self.splits[split]) if sequences is None else list(sequences)
        store = open_onboard_store(root, predictions_root, onboard)
        lm = load_label_map("kitti360")
        layout = VoxelLayout(label_map="kitti360", invalid_packed=False, clear_invalid_where_labelled=True, has_occluded=False)
        seqs = []
        for s in names:
            d = raw / s
            if not (d / "voxels").is_dir():
                raise MissingDataError(d / "voxels", f"voxels of drive {s} (split {split})", HOW_TO_GET)
            pose_file = d / "cam0_to_world.txt"
            if not pose_file.is_file():
                pose_file = root / "data_poses" / s / "cam0_to_world.txt"
            seqs.append(Sequence(
                name=s, voxel_dir=d / "voxels", gt_voxel_dir=d / "voxels", label_map=lm, layout=layout,
                load_calib=kitti360_calibration,
                load_poses=lambda c, p=pose_file: read_cam0_to_world(p, c),
                onboard=store, onboard_name=onboard, sensor=sensor or guess_sensor(onboard),
                frame_ids=lambda d=d: sorted(int(m.group(1)) for m in map(_VOX_RE.match, (e.name for e in (d / "voxels").iterdir())) if m),
                image_size=IMAGE_SIZE,
            ))
        super().__init__(root, split, onboard, lm, seqs)

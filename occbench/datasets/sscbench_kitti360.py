"""SSCBench-KITTI360 semantic scene completion with onboard predictions.

Layout (ai4ce/SSCBench ``dataset/KITTI-360/README.md``)::

    <root>/data_2d_raw/2013_05_28_drive_00XX_sync/voxels/NNNNNN.{bin,label,invalid}   every 5th frame
    <root>/data_poses/2013_05_28_drive_00XX_sync/cam0_to_world.txt                    KITTI-360's poses download
    <root>/data_2d_raw/2013_05_28_drive_00XX_sync/cam0_to_world.txt                   (or there)
    <root>/calibration/perspective.txt, calib_cam_to_velo.txt                        KITTI-360's calibration (optional)
    <root>/preprocess/labels/2013_05_28_drive_00XX_sync/NNNNNN_1_1.npy   SSCBench's preprocessed ground truth
    <predictions_root>/<onboard>/sequences/2013_05_28_drive_00XX_sync/predictions/NNNNNN.label[.gz]

The ground truth is read from the voxels or, where they are absent, from SSCBench's ``.npy`` labels (float32 train
ids, 255 unknown): ``ground_truth="auto" | "voxels" | "sscbench-npy"`` (:func:`ground_truth_source`); the two forms
score identically.

Frames are SSCBench's 6-digit frame numbers, which are not KITTI-360's: the poses file is numbered by KITTI-360
frame and each SSCBench frame's pose is looked up through a frame map (:mod:`occbench.datasets.kitti360_frames`):
``frame_map="sscbench-release"`` (default, the correspondence of the public release shipped with occbench), a path
to a frame-map file, or ``"identity"`` for a poses file already numbered by SSCBench frame. A scan whose KITTI-360
frame has no row in the poses file has no pose (``ScanSequence.pose_valid``).

The LiDAR pose is composed as the KITTI-360 devkit does: ``cam0_to_world @ R_rect_00 @ inv(cam_to_velo)``
(``cam0_to_world`` is the rectified camera 0). The calibration is read from ``<root>/calibration/perspective.txt``
(``P_rect_00``, ``R_rect_00``) and ``calib_cam_to_velo.txt`` when present, else published values are used: SSCBench's
``read_calib`` (``kitti_360_dataset.py``: fx=fy=552.554261, cx=682.049453, cy=238.769549, images 1408x376,
``cam2velo`` below) and KITTI-360's ``R_rect_00``. Which was used is recorded in the results header
(``header.dataset.poses``).

Other differences from SemanticKITTI, all handled here: 19 classes (``kitti360`` label map), ``.invalid`` is one
byte per voxel and is cleared where the label is non-empty, no ``.occluded``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from occbench.dataset_cards import dataset_card
from occbench.datasets.base import SSCDataset, open_onboard_store
from occbench.datasets.frame import ScanSequence, VoxelLayout
from occbench.datasets.kitti360_frames import IDENTITY, RELEASE, RELEASE_MAP, load_frame_map
from occbench.datasets.semantickitti import guess_sensor, normalize_split
from occbench.errors import FormatError, MissingDataError
from occbench.io.formats import ForeignFormat
from occbench.io.kitti import Calibration
from occbench.io.kitti360 import read_cam0_to_world_rows, read_cam_to_velo, read_perspective
from occbench.labels import load_label_map

DRIVE = "2013_05_28_drive_{:04d}_sync"
CARD = dataset_card("sscbench-kitti360")  # occbench/datasets/cards/sscbench-kitti360.json
SPLITS: dict[str, list[str]] = CARD.split_lists()
# SSCBench read_calib (method/MonoScene/monoscene/data/kitti_360/kitti_360_dataset.py): camera 0 -> velodyne
CAM2VELO = np.array(
    [
        [0.04307104361, -0.08829286498, 0.995162929, 0.8043914418],
        [-0.999004371, 0.007784614041, 0.04392796942, 0.2993489574],
        [-0.01162548558, -0.9960641394, -0.08786966659, -0.1770225824],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
K = np.array([[552.554261, 0.0, 682.049453, 0.0], [0.0, 552.554261, 238.769549, 0.0], [0.0, 0.0, 1.0, 0.0]])
# KITTI-360 calibration/perspective.txt, R_rect_00 as printed there (6 decimals): unrectified -> rectified camera 0
R_RECT_00 = np.array(
    [
        [0.999974, -0.007141, -0.000089, 0.0],
        [0.007141, 0.999969, -0.003247, 0.0],
        [0.000112, 0.003247, 0.999995, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
IMAGE_SIZE = (1408, 376)
PERSPECTIVE = Path("calibration") / "perspective.txt"
CAM_TO_VELO = Path("calibration") / "calib_cam_to_velo.txt"
HOW_TO_GET = (
    "SSCBench-KITTI360 must be downloaded by hand (https://github.com/ai4ce/SSCBench, dataset/KITTI-360/README.md) "
    "and unpacked so that <root>/data_2d_raw/2013_05_28_drive_0006_sync/voxels/ exists; the poses "
    "(cam0_to_world.txt, numbered by KITTI-360 frame) come from KITTI-360's data_poses download."
)
_VOX_RE = re.compile(r"^(\d{6})\.label$")
_NPY_RE = re.compile(r"^(\d{6})_1_1\.npy$")


def kitti360_calibration(root: str | Path | None = None) -> Calibration:
    """The calibration of camera 0 and the velodyne: from ``<root>/calibration/perspective.txt`` and
    ``calib_cam_to_velo.txt`` where present (each file on its own), else the published values (module docstring).
    ``Tr`` = ``inv(cam_to_velo)`` (velodyne -> unrectified camera 0, as SSCBench projects),
    ``R_rect`` = ``R_rect_00``."""
    P, R = K, R_RECT_00
    cam2velo = CAM2VELO
    path = None
    if root is not None:
        persp, c2v = Path(root) / PERSPECTIVE, Path(root) / CAM_TO_VELO
        if persp.exists():
            P, R = read_perspective(persp)
            path = persp
        if c2v.exists():
            cam2velo = read_cam_to_velo(c2v)
    return Calibration(
        P={k: P.copy() for k in ("P0", "P1", "P2", "P3")}, Tr=np.linalg.inv(cam2velo), path=path, R_rect=R.copy()
    )


def calibration_source(root: str | Path) -> dict[str, str]:
    """Where each part of the calibration comes from (for the results header)."""
    out = {}
    for key, rel, published in (
        ("perspective", PERSPECTIVE, "published (SSCBench read_calib P_rect_00, KITTI-360 R_rect_00)"),
        ("cam_to_velo", CAM_TO_VELO, "published (SSCBench read_calib cam2velo)"),
    ):
        out[key] = str(rel) if (Path(root) / rel).exists() else published
    return out


def read_cam0_to_world(
    path: Path, calib: Calibration, frame_ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """LiDAR poses of the scans whose KITTI-360 frame ids are ``frame_ids`` (index = scan) from ``cam0_to_world.txt``:
    ``(poses (N, 4, 4), valid (N,))``, ``poses[i] = cam0_to_world[frame_ids[i]] @ R_rect_00 @ inv(cam_to_velo)``
    (``calib.Tr_rect``). ``frame_ids`` None: the file's own numbering (scan i is row id i, ``N`` = largest id + 1).
    A scan whose frame has no row is not valid; its pose row is NaN."""
    rows = read_cam0_to_world_rows(path)
    ids = np.arange(int(rows.frames[-1]) + 1) if frame_ids is None else np.asarray(frame_ids, np.int64)
    pos, found = rows.lookup(ids)
    poses = np.full((len(ids), 4, 4), np.nan)
    poses[found] = rows.poses[pos[found]] @ calib.Tr_rect
    return poses, found


def _resolve_frame_map(frame_map: str | Path | None) -> tuple[str, Path | None]:
    """``(what the header records, the map file or None for identity)``."""
    if frame_map is None or str(frame_map) == RELEASE:
        return RELEASE, RELEASE_MAP
    if str(frame_map) == IDENTITY:
        return IDENTITY, None
    p = Path(frame_map).expanduser()
    if not p.is_file():
        raise MissingDataError(p, "SSCBench-KITTI360 frame map (--frame-map: a file, 'sscbench-release' or 'identity')")
    return str(p), p


def _poses_loader(
    pose_file: Path, map_file: Path | None, drive: str
) -> Callable[[Calibration], tuple[np.ndarray, np.ndarray]]:
    """The poses reader of a drive (the frame map is read with the poses, on first use)."""

    def load(calib: Calibration) -> tuple[np.ndarray, np.ndarray]:
        return read_cam0_to_world(pose_file, calib, _drive_frames(map_file, drive))

    return load


def _frame_ids_in(folder: Path, pattern: re.Pattern[str]) -> list[int]:
    """The frame ids of the ground-truth files in ``folder`` (names matching ``pattern``), sorted."""
    return sorted(int(m.group(1)) for m in map(pattern.match, (e.name for e in folder.iterdir())) if m)


def _drive_frames(map_file: Path | None, drive: str) -> np.ndarray | None:
    if map_file is None:
        return None
    table = load_frame_map(map_file)
    if drive not in table:
        raise FormatError(
            map_file,
            f"a line for drive {drive} in the SSCBench-KITTI360 frame map",
            f"drives {', '.join(sorted(table))}",
        )
    return table[drive]


def _pose_note(pose_file: Path, map_file: Path | None, drive: str):
    def note(t: int) -> str:
        ids = _drive_frames(map_file, drive)
        if ids is None:
            return f" (frame {t} has no row in {pose_file.name}, which is read as numbered by SSCBench frame)"
        if not 0 <= t < len(ids):
            return f" (the frame map {map_file} lists SSCBench frames 000000..{len(ids) - 1:06d} of this drive)"
        return f" (it is KITTI-360 frame {ids[t]:010d}, which has no row in {pose_file.name})"

    return note


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
        frame_map: str | Path | None = None,
    ):
        root = Path(root).expanduser()
        split = normalize_split(split, self.splits)
        raw = root / "data_2d_raw"
        names = list(self.splits[split]) if sequences is None else list(sequences)
        npy_root = Path(labels_root).expanduser() if labels_root is not None else root / "preprocess" / "labels"
        self.ground_truth = ground_truth_source(raw, npy_root, names, split, ground_truth)
        lm = load_label_map("kitti360")
        store = open_onboard_store(root, predictions_root, onboard, predictions_format, lm)
        layout = VoxelLayout(
            invalid_packed=False, clear_invalid_where_labelled=True, has_occluded=False, gt_format=self.ground_truth
        )
        frame_re, gt_of = (
            (_VOX_RE, lambda s: raw / s / "voxels")
            if self.ground_truth == "voxels"
            else (_NPY_RE, lambda s: npy_root / s)
        )
        self.frame_map, map_file = _resolve_frame_map(frame_map)
        seqs = []
        for s in names:
            d = raw / s
            gt_dir = gt_of(s)
            pose_file = d / "cam0_to_world.txt"
            if not pose_file.is_file():
                pose_file = root / "data_poses" / s / "cam0_to_world.txt"
            seqs.append(
                ScanSequence(
                    name=s,
                    voxel_dir=d / "voxels",
                    gt_voxel_dir=gt_dir,
                    label_map=lm,
                    layout=layout,
                    load_calib=partial(kitti360_calibration, root),
                    load_poses=_poses_loader(pose_file, map_file, s),
                    onboard=store,
                    onboard_name=onboard,
                    sensor=sensor or guess_sensor(onboard),
                    frame_ids=partial(_frame_ids_in, gt_dir, frame_re),
                    image_size=IMAGE_SIZE,
                    pose_file=pose_file,
                    pose_note=_pose_note(pose_file, map_file, s),
                )
            )
        super().__init__(root, split, onboard, lm, seqs)

    def describe(self) -> dict:
        """Header facts, with ``poses``: the frame map (``sscbench-release``, ``identity`` or the file given), where
        the calibration came from, and per drive the scans without a pose (left out of every window)."""
        poses = {
            "frame_map": self.frame_map,
            "numbering": (
                "the poses files are numbered by SSCBench frame"
                if self.frame_map == IDENTITY
                else "the poses files are numbered by KITTI-360 frame; SSCBench frames are looked up in the frame map"
            ),
            "composition": "cam0_to_world @ R_rect_00 @ inv(cam_to_velo)",
            "calibration": calibration_source(self.root),
            "scans_without_pose": {s.name: int((~s.pose_valid).sum()) for s in self.sequences},
        }
        return {**super().describe(), "ground_truth": self.ground_truth, "poses": poses}


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
            raise MissingDataError(
                vox_missing[0], f"voxels of drive {vox_missing[0].parent.name} (split {split})", HOW_TO_GET
            )
        return "voxels"
    if npy_missing:
        if choice == "auto":
            raise MissingDataError(
                vox_missing[0],
                f"ground truth of drive {vox_missing[0].parent.name} (split {split})",
                f"expected {vox_missing[0]}/NNNNNN.label + .invalid, or SSCBench's "
                f"{npy_root / vox_missing[0].parent.name}/NNNNNN_1_1.npy\n{HOW_TO_GET}",
            )
        raise MissingDataError(
            npy_missing[0],
            f"SSCBench labels of drive {npy_missing[0].name} (split {split})",
            "expected <root>/preprocess/labels/<drive>/NNNNNN_1_1.npy (or pass labels_root)",
        )
    return "sscbench-npy"

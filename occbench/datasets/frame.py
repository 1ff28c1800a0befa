"""Frames and sequences: lazy views over an SSC dataset on disk.

Nothing is read when a dataset or sequence is opened except the small text files (poses, calib)
on first access; voxel files are read (memory-mapped for ``.label``) when a frame's array is asked for.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from occbench.errors import MissingDataError
from occbench.io.kitti import Calibration
from occbench.io.predictions import PredictionStore
from occbench.io.voxels import read_bits, read_invalid_kitti360, read_label
from occbench.labels import IGNORE, LabelMap

if TYPE_CHECKING:
    from collections.abc import Callable

    from occbench.io.formats import ForeignPredictionStore

_GT_LABEL = re.compile(r"^\d{6}\.label$")


NPY_LABEL_SUFFIX = "_1_1.npy"


@dataclass(frozen=True)
class VoxelLayout:
    """How a dataset stores a frame's voxel files."""

    invalid_packed: bool = True  # SemanticKITTI: bit-packed; SSCBench-KITTI360: one byte per voxel
    clear_invalid_where_labelled: bool = False  # SSCBench-KITTI360 preprocessing: INVALID[LABEL != 0] = 0
    has_occluded: bool = True
    # "voxels": <gt dir>/NNNNNN.label + .invalid; "sscbench-npy": SSCBench <gt dir>/NNNNNN_1_1.npy (train ids, 255)
    gt_format: str = "voxels"


class ScanSequence:
    """One driving sequence: poses, calibration, labelled frames, onboard predictions.

    Parameters are filled in by the dataset classes; users get sequences from
    ``dataset.sequences`` or ``dataset[name]``. ``dataset`` and ``dataset_root``: the results name and root of the
    dataset it belongs to (set by :class:`~occbench.datasets.base.SSCDataset`; None for a sequence made alone).
    """

    dataset: str | None = None
    dataset_root: Path | None = None

    def __init__(
        self,
        name: str,
        voxel_dir: Path,
        gt_voxel_dir: Path | None,
        label_map: LabelMap,
        layout: VoxelLayout,
        load_calib: Callable[[], Calibration],
        load_poses: Callable[[Calibration], np.ndarray | tuple[np.ndarray, np.ndarray]],
        label_every: int = 5,
        onboard: PredictionStore | ForeignPredictionStore | None = None,
        onboard_name: str | None = None,
        sensor: str | None = None,
        frame_ids: Callable[[], list[int]] | None = None,
        image_size: tuple[int, int] = (1220, 370),
        pose_file: Path | None = None,
        pose_note: Callable[[int], str] | None = None,
    ):
        self.name = name
        self.voxel_dir = voxel_dir
        self.gt_voxel_dir = gt_voxel_dir
        self.label_map = label_map
        self.layout = layout
        self._load_calib = load_calib
        self._load_poses = load_poses
        self.label_every = label_every
        self.onboard_store = onboard
        self.onboard_name = onboard_name
        self.sensor = sensor
        self._frame_ids = frame_ids
        self.image_size = image_size
        self.pose_file = pose_file
        self._pose_note = pose_note

    def __repr__(self) -> str:
        return f"ScanSequence({self.name!r}, scans={self.num_scans}, onboard={self.onboard_name!r})"

    def __getstate__(self) -> dict:
        """Pickles (e.g. into ``DataLoader`` workers) with its calibration, poses and scan list read: the loaders
        that read them are closures of the dataset, which do not pickle."""
        state = self.__dict__.copy()
        state["calib"], state["poses"] = self.calib, self.poses
        if self._frame_ids is not None:
            state["labelled_frames"] = self.labelled_frames
        state["_load_calib"] = state["_load_poses"] = state["_frame_ids"] = None
        return state

    # -- geometry ----------------------------------------------------------------------------
    @cached_property
    def calib(self) -> Calibration:
        return self._load_calib()

    @cached_property
    def _pose_table(self) -> tuple[np.ndarray, np.ndarray]:
        out = self._load_poses(self.calib)  # poses, or (poses, pose_valid) where some scans have none
        poses, valid = out if isinstance(out, tuple) else (out, None)
        poses = np.asarray(poses, np.float64)
        valid = np.ones(len(poses), bool) if valid is None else np.array(valid, bool)
        if valid.shape != (len(poses),):
            raise ValueError(f"sequence {self.name}: pose_valid of shape {valid.shape} for {len(poses)} poses")
        poses.flags.writeable = False
        valid.flags.writeable = False
        return poses, valid

    @property
    def poses(self) -> np.ndarray:
        """(num_scans, 4, 4) float64 LiDAR poses in the sequence's world frame (read-only). The rows of scans without a
        pose (``pose_valid`` False) hold NaN and are never used: see :attr:`pose_valid`."""
        return self._pose_table[0]

    @property
    def pose_valid(self) -> np.ndarray:
        """(num_scans,) bool: which scans have a pose. A scan without one takes no part in any window (voting,
        OccFiner's stage 1, the world map); a scored scan without one is an error (:meth:`require_poses`)."""
        return self._pose_table[1]

    @property
    def num_scans(self) -> int:
        return int(self.poses.shape[0])

    def require_poses(self, scans, what: str = "scored") -> None:
        """Raise :class:`MissingDataError` (naming the sequence, the scan and the poses file) unless every scan of
        ``scans`` has a pose."""
        valid = self.pose_valid
        for t in scans:
            t = int(t)
            if 0 <= t < len(valid) and valid[t]:
                continue
            note = (
                self._pose_note(t)
                if self._pose_note is not None
                else (
                    f" (the poses cover scans 0..{len(valid) - 1})" if not 0 <= t < len(valid) else " (no pose for it)"
                )
            )
            raise MissingDataError(
                self.pose_file or self.voxel_dir,
                f"pose of {what} frame {t:06d} of sequence {self.name}{note}",
                "every scored frame needs a pose; see the dataset documentation on poses",
            )

    def relative_transform(self, src: int, dst: int) -> np.ndarray:
        """4x4 transform taking points of scan ``src`` into the LiDAR frame of scan ``dst``."""
        self.require_poses((src, dst), "requested")
        return np.linalg.inv(self.poses[dst]) @ self.poses[src]

    # -- frames --------------------------------------------------------------------------------
    @cached_property
    def labelled_frames(self) -> list[int]:
        """The scans a benchmark scores. With ground truth: the scans whose ``NNNNNN.label`` is present in the
        ground-truth folder (as the official ``evaluate_completion.py`` scores the files it finds), within the
        poses; a hidden test split (no ground truth): every ``label_every``-th scan of the sequence. Gaps are
        reported by :func:`occbench.datasets.check.dataset_warnings`."""
        if self._frame_ids is not None:
            return self._frame_ids()
        if self.gt_voxel_dir is None:
            return list(range(0, self.num_scans, self.label_every))
        return [t for t in self.ground_truth_scans if t < self.num_scans]

    @cached_property
    def ground_truth_scans(self) -> list[int]:
        """Scan numbers of the ground-truth ``NNNNNN.label`` files present (sorted; none without ground truth)."""
        d = self.gt_voxel_dir
        if d is None:
            return []
        try:
            names = [e.name for e in os.scandir(d)]
        except FileNotFoundError:
            raise MissingDataError(
                d, f"ground truth of sequence {self.name} (a voxels folder with NNNNNN.label files)"
            ) from None
        return sorted(int(n[:6]) for n in names if _GT_LABEL.match(n))

    @property
    def has_ground_truth(self) -> bool:
        return self.gt_voxel_dir is not None

    def frame(self, index: int) -> Frame:
        if not 0 <= index < self.num_scans:
            raise IndexError(f"sequence {self.name} has scans 0..{self.num_scans - 1}, asked for {index}")
        return Frame(self, int(index))

    def frames(self) -> list[Frame]:
        """The labelled frames (the ones a benchmark scores)."""
        return [Frame(self, i) for i in self.labelled_frames]

    def __len__(self) -> int:
        return len(self.labelled_frames)

    def __iter__(self):
        return iter(self.frames())

    # -- onboard predictions --------------------------------------------------------------------
    def prediction(self, index: int) -> np.ndarray:
        """Onboard prediction of scan ``index`` as train ids (uint8, (256,256,32))."""
        if self.onboard_store is None:
            raise ValueError(f"sequence {self.name}: no onboard model chosen (pass onboard=NAME to the dataset)")
        raw = self.onboard_store.read(self.name, index)
        return self.label_map.to_train(raw, self.onboard_store.find(self.name, index))

    def prediction_raw(self, index: int) -> np.ndarray:
        """Onboard prediction (or submitted file) of scan ``index`` as stored: raw ids of the label map, not
        checked against it (errors name the file)."""
        if self.onboard_store is None:
            raise ValueError(f"sequence {self.name}: no onboard model chosen (pass onboard=NAME to the dataset)")
        return self.onboard_store.read(self.name, index)

    def scored_from_raw_files(self, protocol) -> bool:
        """Whether this sequence's files are exactly what the SSC metric takes with raw ids (``FrameArrays`` with
        ``labels="raw"``) under ``protocol`` (SemanticKITTI layout: raw ids of the protocol's label map in ``.label``
        predictions, bit-packed ``.invalid`` used as stored), so that scoring its predictions needs no train-id
        arrays at all. :meth:`Frame.ground_truth` folds invalid voxels into ignore, which equals passing the mask
        only under the ``mask-all`` invalid policy."""
        lay = self.layout
        return (
            self.onboard_store is not None
            and getattr(self.onboard_store, "raw_label_files", True)
            and self.gt_voxel_dir is not None
            and lay.gt_format == "voxels"
            and lay.invalid_packed
            and not lay.clear_invalid_where_labelled
            and self.label_map.name == protocol.label_map
            and protocol.invalid_policy == "mask-all"
        )


class Frame:
    """One scan of a sequence. Arrays are read on access."""

    __slots__ = ("sequence", "index")

    def __init__(self, sequence: ScanSequence, index: int):
        self.sequence = sequence
        self.index = index

    def __repr__(self) -> str:
        return f"Frame({self.sequence.name}/{self.index:06d})"

    @property
    def name(self) -> str:
        return f"{self.index:06d}"

    @property
    def pose(self) -> np.ndarray:
        self.sequence.require_poses((self.index,), "requested")
        return self.sequence.poses[self.index]

    @property
    def calib(self) -> Calibration:
        return self.sequence.calib

    def _gt_path(self, ext: str) -> Path:
        d = self.sequence.gt_voxel_dir
        if d is None:
            raise MissingDataError(
                self.sequence.voxel_dir, f"ground truth of sequence {self.sequence.name} (hidden test split)"
            )
        return d / f"{self.name}{ext}"

    def ground_truth_files(self) -> list[Path]:
        """The files :meth:`ground_truth` reads: ``.label`` and ``.invalid``, or SSCBench's ``_1_1.npy``."""
        if self.sequence.layout.gt_format == "sscbench-npy":
            return [self._gt_path(NPY_LABEL_SUFFIX)]
        return [self._gt_path(".label"), self._gt_path(".invalid")]

    def prediction_file(self) -> Path | None:
        """The file :meth:`prediction` reads (the onboard model's, or a submission's), None if there is none."""
        store = self.sequence.onboard_store
        return None if store is None else store.find(self.sequence.name, self.index)

    @property
    def has_ground_truth(self) -> bool:
        return self.sequence.gt_voxel_dir is not None and self.ground_truth_files()[0].is_file()

    def _voxel_gt_path(self, ext: str) -> Path:
        if self.sequence.layout.gt_format != "voxels":
            raise MissingDataError(
                self._gt_path(ext),
                f"{ext} file (this dataset reads its ground truth from "
                f"SSCBench {NPY_LABEL_SUFFIX} labels, which hold train ids only)",
            )
        return self._gt_path(ext)

    def label_raw(self, mmap: bool = True) -> np.ndarray:
        """The raw uint16 ``.label`` grid (memory-mapped by default)."""
        return read_label(self._voxel_gt_path(".label"), mmap=mmap)

    def invalid(self) -> np.ndarray:
        """uint8 0/1 invalid mask (never observed by the LiDAR)."""
        p = self._voxel_gt_path(".invalid")
        lay = self.sequence.layout
        inv = read_bits(p) if lay.invalid_packed else read_invalid_kitti360(p).copy()
        if lay.clear_invalid_where_labelled:
            inv[np.asarray(self.label_raw()) != 0] = 0
        return inv

    def occluded(self) -> np.ndarray:
        if not self.sequence.layout.has_occluded:
            raise MissingDataError(self._gt_path(".occluded"), "occluded mask (this dataset has none)")
        return read_bits(self._gt_path(".occluded"))

    def ground_truth(self) -> np.ndarray:
        """Train ids (uint8, (256,256,32)): 0 empty, 1..C-1 classes, 255 where ignored or invalid."""
        if self.sequence.layout.gt_format == "sscbench-npy":
            from occbench.io.formats import read_sscbench_label_npy

            return read_sscbench_label_npy(self._gt_path(NPY_LABEL_SUFFIX), self.sequence.label_map)
        p = self._gt_path(".label")
        gt = self.sequence.label_map.to_train(self.label_raw(), p).copy()
        gt[self.invalid() != 0] = IGNORE
        return gt

    def input_occupancy(self) -> np.ndarray:
        """The single-scan ``.bin`` input occupancy (uint8 0/1)."""
        p = self.sequence.voxel_dir / f"{self.name}.bin"
        return read_bits(p)

    def prediction(self) -> np.ndarray:
        """The onboard model's prediction of this scan (train ids)."""
        return self.sequence.prediction(self.index)

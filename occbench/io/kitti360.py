"""KITTI-360 text files: ``calibration/perspective.txt``, ``calibration/calib_cam_to_velo.txt`` and
``data_poses/<drive>/cam0_to_world.txt`` (formats of the KITTI-360 devkit, ``kitti360scripts``).

- ``perspective.txt``: ``KEY: values`` lines; occbench reads ``P_rect_00`` (12 numbers, the rectified projection of
  camera 0) and ``R_rect_00`` (9 numbers, unrectified camera 0 -> rectified camera 0); other keys are ignored, as
  the devkit's ``loadPerspectiveIntrinsic`` does.
- ``calib_cam_to_velo.txt``: 12 numbers, the 3x4 rigid transform unrectified camera 0 -> velodyne.
- ``cam0_to_world.txt``: per row a KITTI-360 frame id and 16 numbers, the 4x4 pose of the *rectified* camera 0 in
  the drive's world (kitti360Scripts ``helpers/project.py`` composes ``pose @ camToPose @ inv(R_rect)``). Rows exist
  only for frames where the car moved (the ids have gaps).

The LiDAR pose of a frame is ``cam0_to_world @ R_rect_00 @ inv(cam_to_velo)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occbench.errors import FormatError, MissingDataError
from occbench.io.kitti import check_rigid, parse_numbers, read_number_rows, read_text_lines

MAX_FRAME_ID = 200_000  # KITTI-360's longest drive has about 16,000 frames


def read_perspective(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(P_rect_00 (3, 4), R_rect_00 (4, 4))`` of ``perspective.txt``. Refused, naming the line: a line that is not
    ``KEY: values``, a key given twice, a wrong count or a value that is not a finite number for the two keys read,
    a missing key, a degenerate ``P_rect_00`` and a ``R_rect_00`` that is not a rotation."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise MissingDataError(path, "KITTI-360 perspective calibration (perspective.txt)")
    want = {"P_rect_00": 12, "R_rect_00": 9}
    seen: dict[str, int] = {}
    vals: dict[str, list[float]] = {}
    for lineno, line in read_text_lines(path, "KITTI-360 perspective calibration"):
        key, sep, rest = line.partition(":")
        key = key.strip()
        if not sep or not key or " " in key:
            raise FormatError(
                path, "lines 'KEY: values' (keys P_rect_00, R_rect_00, ...)", f"line {lineno}: {line[:60]!r}"
            )
        if key in seen:
            raise FormatError(
                path, f"each key once ('{key}:' on line {seen[key]})", f"a second '{key}:' line on line {lineno}"
            )
        seen[key] = lineno
        if key in want:
            vals[key] = parse_numbers(path, lineno, rest.split(), f"{want[key]} numbers for {key}", want[key])
    for key in want:
        if key not in vals:
            raise FormatError(path, f"a '{key}:' line", f"keys {sorted(seen)}")
    P = np.array(vals["P_rect_00"]).reshape(3, 4)
    if P[0, 0] <= 0 or P[1, 1] <= 0 or P[2, 2] != 1:
        raise FormatError(
            path,
            f"a rectified projection P_rect_00 (line {seen['P_rect_00']}) with fx, fy > 0 and P[2, 2] = 1",
            f"fx = {P[0, 0]:g}, fy = {P[1, 1]:g}, P[2, 2] = {P[2, 2]:g}",
        )
    R = np.eye(4)
    R[:3, :3] = np.array(vals["R_rect_00"]).reshape(3, 3)
    check_rigid(R, path, "R_rect_00 (a rotation)", lines=np.array([seen["R_rect_00"]]))
    return P, R


def read_cam_to_velo(path: str | Path) -> np.ndarray:
    """The 4x4 rigid transform camera 0 (unrectified) -> velodyne of ``calib_cam_to_velo.txt`` (12 numbers)."""
    path = Path(path)
    rows, lines = read_number_rows(path, "KITTI-360 calib_cam_to_velo.txt (12 numbers: a 3x4 transform)", 12)
    if len(rows) != 1:
        raise FormatError(path, "one line of 12 numbers (a 3x4 transform)", f"{len(rows)} lines")
    T = np.eye(4)
    T[:3] = rows[0].reshape(3, 4)
    check_rigid(T, path, "camera 0 -> velodyne transform", lines=lines)
    return T


@dataclass(frozen=True)
class PoseRows:
    """The rows of a ``cam0_to_world.txt``: frame ids (ascending), their 4x4 poses and file lines."""

    path: Path
    frames: np.ndarray  # (M,) int64, strictly increasing
    poses: np.ndarray  # (M, 4, 4) float64, rigid
    lines: np.ndarray  # (M,) the file line of each row

    def lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(row index, found)`` of each frame id of ``ids`` (row index 0 where not found)."""
        ids = np.asarray(ids, np.int64)
        pos = np.searchsorted(self.frames, ids)
        pos_c = np.minimum(pos, len(self.frames) - 1)
        found = (pos < len(self.frames)) & (self.frames[pos_c] == ids)
        return np.where(found, pos_c, 0), found


def read_cam0_to_world_rows(path: str | Path) -> PoseRows:
    """Read ``cam0_to_world.txt`` (a frame id and 16 numbers per row; ids distinct, any order). Errors name the file
    and the line: a frame id that is not an integer in ``0..200000``, an id twice, a pose that is not rigid."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise MissingDataError(path, "KITTI-360 poses (cam0_to_world.txt)")
    rows, lines = read_number_rows(path, "KITTI-360 poses file (frame id + 16 numbers per row)", 17)
    f = rows[:, 0]
    bad = np.flatnonzero((f < 0) | (f != np.round(f)) | (f > MAX_FRAME_ID))
    if bad.size:
        raise FormatError(
            path,
            f"a frame id (an integer in 0..{MAX_FRAME_ID}) first on every row",
            f"{rows[bad[0], 0]!r} on line {lines[bad[0]]}",
        )
    frames = f.astype(np.int64)
    order = np.argsort(frames, kind="stable")
    frames, rows, lines = frames[order], rows[order], lines[order]
    dup = np.flatnonzero(np.diff(frames) == 0)
    if dup.size:
        i = int(dup[0])
        raise FormatError(path, "each frame id once", f"frame {frames[i]} on lines {lines[i]} and {lines[i + 1]}")
    T = rows[:, 1:].reshape(-1, 4, 4)
    check_rigid(T, path, "cam0_to_world poses", lines=lines)
    return PoseRows(path, frames, T, lines)

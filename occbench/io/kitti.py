"""KITTI odometry text files: ``calib.txt``, ``poses.txt``, ``times.txt``.

``calib.txt`` holds ``P0..P3`` (3x4 rectified projections) and ``Tr`` (3x4 velodyne -> cam0).
``poses.txt`` holds one 3x4 camera-0 pose per scan (SemanticKITTI loop-closed poses).
The LiDAR pose of scan i in the sequence's world is ``inv(Tr) @ P_i @ Tr``
(semantic-kitti-api ``generate_sequential.py::parse_poses``; voxelizer ``KittiReader::readPoses``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occbench.errors import FormatError, MissingDataError
from occbench.io.atomic import atomic_write_text

# Rotation matrices in poses.txt / calib.txt are printed with ~7 significant digits:
# on the real files max |R^T R - I| is 1.6e-6. Anything beyond 1e-4 is not a rigid transform.
RIGID_TOL = 1e-4


@dataclass(frozen=True, eq=False)
class Calibration:
    """KITTI odometry calibration of one sequence. All matrices are float64."""

    P: dict[str, np.ndarray]  # "P0".."P3": (3, 4)
    Tr: np.ndarray  # (4, 4) velodyne -> rectified camera 0
    path: Path | None = None

    @property
    def P2(self) -> np.ndarray:
        return self.P["P2"]

    @property
    def T_cam2_velo(self) -> np.ndarray:
        """velodyne -> rectified camera-2 frame (pykitti convention: shift by P2[0,3]/P2[0,0])."""
        T2 = np.eye(4)
        T2[0, 3] = self.P2[0, 3] / self.P2[0, 0]
        return T2 @ self.Tr

    @property
    def K2(self) -> np.ndarray:
        return self.P2[:3, :3].copy()


def check_rigid(T: np.ndarray, path: str | Path | None, what: str, tol: float = RIGID_TOL) -> None:
    """Raise :class:`FormatError` unless every 4x4 in ``T`` is a rigid transform."""
    T = np.asarray(T, np.float64)
    Ts = T.reshape(-1, 4, 4)
    R = Ts[:, :3, :3]
    ortho = np.abs(np.einsum("nij,nkj->nik", R, R) - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(R)
    bottom = np.abs(Ts[:, 3] - np.array([0, 0, 0, 1.0])).max(axis=1)
    bad = np.flatnonzero((ortho > tol) | (np.abs(det - 1) > tol) | (bottom > 0) | ~np.isfinite(Ts).all(axis=(1, 2)))
    if bad.size:
        i = int(bad[0])
        raise FormatError(
            path,
            f"rigid {what} (|R^T R - I| <= {tol:g}, det R = 1)",
            f"{bad.size} non-rigid entr{'y' if bad.size == 1 else 'ies'}, first at line {i + 1}: "
            f"|R^T R - I| = {ortho[i]:.3g}, det R = {det[i]:.6g}",
        )


def read_calib(path: str | Path) -> Calibration:
    """Read ``calib.txt`` (keys ``P0..P3`` and ``Tr``) with pykitti's parser, then validate it."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(path, "calibration file")
    from pykitti.utils import read_calib_file  # imports cv2 at import time (opencv-python-headless)

    try:
        raw = read_calib_file(str(path))
    except ValueError as e:
        raise FormatError(path, "lines 'KEY: 12 floats'", f"unparsable content ({e})") from None
    P: dict[str, np.ndarray] = {}
    for key in ("P0", "P1", "P2", "P3", "Tr"):
        if key not in raw:
            raise FormatError(path, f"a '{key}:' line (keys P0, P1, P2, P3, Tr)", f"keys {sorted(raw)}")
        v = np.asarray(raw[key], np.float64).reshape(-1)
        if v.size != 12:
            raise FormatError(path, f"12 values for {key}", f"{v.size}")
        P[key] = v.reshape(3, 4)
    Tr = np.eye(4)
    Tr[:3, :4] = P.pop("Tr")
    check_rigid(Tr, path, "Tr (velodyne -> cam0)")
    return Calibration(P=P, Tr=Tr, path=path)


def write_calib(path: str | Path, calib: Calibration) -> None:
    lines = [f"{k}: " + " ".join(f"{x:.12e}" for x in calib.P[k].reshape(-1)) for k in ("P0", "P1", "P2", "P3")]
    lines.append("Tr: " + " ".join(f"{x:.12e}" for x in calib.Tr[:3].reshape(-1)))
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_poses(path: str | Path, calib: Calibration | None = None) -> np.ndarray:
    """Read ``poses.txt`` as (N, 4, 4) float64.

    Without ``calib`` these are the camera-0 poses as stored. With ``calib`` they are the LiDAR
    poses ``inv(Tr) @ P @ Tr``. Every pose is checked to be rigid.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(path, "poses file")
    try:
        vals = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise FormatError(path, "12 floats per line", f"unparsable content ({e})") from None
    if vals.size == 0:
        raise FormatError(path, "one 3x4 pose (12 floats) per line", "an empty file")
    if vals.shape[1] != 12:
        raise FormatError(path, "12 floats per line (row-major 3x4 pose)", f"{vals.shape[1]} per line")
    n = vals.shape[0]
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :4] = vals.reshape(n, 3, 4)
    check_rigid(T, path, "camera-0 poses")
    if calib is not None:
        T = np.linalg.inv(calib.Tr) @ T @ calib.Tr
    return T


def write_poses(path: str | Path, poses_cam0: np.ndarray) -> None:
    """Write (N, 4, 4) camera-0 poses as ``poses.txt`` (12 floats per line, ``%.12e``)."""
    P = np.asarray(poses_cam0, np.float64).reshape(-1, 4, 4)[:, :3, :4].reshape(-1, 12)
    atomic_write_text(path, "".join(" ".join(f"{x:.12e}" for x in row) + "\n" for row in P))


def lidar_to_cam0_poses(poses_lidar: np.ndarray, calib: Calibration) -> np.ndarray:
    """Inverse of the LiDAR-pose conversion: ``Tr @ T_lidar @ inv(Tr)``."""
    return calib.Tr @ np.asarray(poses_lidar) @ np.linalg.inv(calib.Tr)


def read_times(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(path, "times file")
    try:
        t = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except ValueError as e:
        raise FormatError(path, "one float (seconds) per line", f"unparsable content ({e})") from None
    if t.ndim != 1:
        raise FormatError(path, "one float (seconds) per line", f"{t.shape[1]} values per line")
    return t


def write_times(path: str | Path, times: np.ndarray) -> None:
    atomic_write_text(path, "".join(f"{x:.6e}\n" for x in np.asarray(times, np.float64)))


def relative_pose(poses: np.ndarray, src: int | np.ndarray, dst: int) -> np.ndarray:
    """Transform taking points of frame ``src`` into frame ``dst``: ``inv(T_dst) @ T_src``."""
    return np.linalg.inv(poses[dst]) @ poses[src]

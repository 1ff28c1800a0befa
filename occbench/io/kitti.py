"""KITTI odometry text files: ``calib.txt``, ``poses.txt``, ``times.txt``.

``calib.txt`` holds ``P0..P3`` (3x4 rectified projections) and ``Tr`` (3x4 velodyne -> rectified cam0).
``poses.txt`` holds one 3x4 camera-0 pose per scan (SemanticKITTI loop-closed poses).
The LiDAR pose of scan i in the sequence's world is ``inv(Tr) @ P_i @ Tr``
(semantic-kitti-api ``generate_sequential.py::parse_poses``; voxelizer ``KittiReader::readPoses``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occbench.errors import FormatError, MissingDataError
from occbench.io.atomic import atomic_write_text
from occbench.io.files import open_regular

# Rotation matrices in poses.txt / calib.txt are printed with ~7 significant digits:
# on the real files max |R^T R - I| is 1.6e-6. Anything beyond 1e-4 is not a rigid transform.
RIGID_TOL = 1e-4


@dataclass(frozen=True, eq=False)
class Calibration:
    """Calibration of one sequence. All matrices are float64.

    ``Tr`` takes velodyne points into the camera-0 frame that the projections ``P`` are applied to (the camera
    frustum). For KITTI odometry (``calib.txt``) that frame is the rectified camera 0 and ``R_rect`` is None. For
    SSCBench-KITTI360 it is the unrectified camera 0 (``inv(calib_cam_to_velo)``: SSCBench's loaders project with
    it, and the onboard models' field of view assumes it), and ``R_rect`` holds KITTI-360's ``R_rect_00``
    (unrectified -> rectified camera 0). :attr:`Tr_rect` = ``R_rect @ Tr`` is velodyne -> rectified camera 0 in
    both cases: the LiDAR pose of a scan is ``camera-0 pose @ Tr_rect`` (KITTI odometry:
    ``inv(Tr) @ P_i @ Tr``)."""

    P: dict[str, np.ndarray]  # "P0".."P3": (3, 4)
    Tr: np.ndarray  # (4, 4) velodyne -> the camera-0 frame of the projections P (see above)
    path: Path | None = None
    R_rect: np.ndarray | None = None  # (4, 4) that frame -> rectified camera 0; None: identity

    @property
    def Tr_rect(self) -> np.ndarray:
        """(4, 4) velodyne -> rectified camera 0 (``R_rect @ Tr``)."""
        return self.Tr.copy() if self.R_rect is None else self.R_rect @ self.Tr

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


MAX_POSE_TRANSLATION_M = 1e5  # 100 km: longer than any driving log; the world map holds +-209 km (x, y)


def check_rigid(
    T: np.ndarray,
    path: str | Path | None,
    what: str,
    tol: float = RIGID_TOL,
    lines: np.ndarray | None = None,
    max_translation: float = MAX_POSE_TRANSLATION_M,
) -> None:
    """Raise :class:`FormatError` unless every 4x4 in ``T`` is finite, a rigid transform, and translates by at most
    ``max_translation`` metres on each axis (a pose at 1e308 m is finite and rigid, and breaks every map).

    ``lines``: the file line of each matrix (for the message; default: entry ``i`` is on line ``i + 1``)."""
    T = np.asarray(T, np.float64)
    Ts = T.reshape(-1, 4, 4)
    where = (lambda i: int(lines[i])) if lines is not None else (lambda i: i + 1)
    finite = np.isfinite(Ts).all(axis=(1, 2))
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        bad = Ts[i][~np.isfinite(Ts[i])][0]
        raise FormatError(
            path,
            f"finite numbers in {what}",
            f"{int((~finite).sum())} entr{'y' if (~finite).sum() == 1 else 'ies'} with NaN or inf, "
            f"first at line {where(i)} ({bad})",
        )
    R = Ts[:, :3, :3]
    ortho = np.abs(np.einsum("nij,nkj->nik", R, R) - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(R)
    bottom = np.abs(Ts[:, 3] - np.array([0, 0, 0, 1.0])).max(axis=1)
    bad = np.flatnonzero((ortho > tol) | (np.abs(det - 1) > tol) | (bottom > 0))
    if bad.size:
        i = int(bad[0])
        raise FormatError(
            path,
            f"rigid {what} (|R^T R - I| <= {tol:g}, det R = 1)",
            f"{bad.size} non-rigid entr{'y' if bad.size == 1 else 'ies'}, first at line {where(i)}: "
            f"|R^T R - I| = {ortho[i]:.3g}, det R = {det[i]:.6g}",
        )
    far = np.flatnonzero(np.abs(Ts[:, :3, 3]).max(axis=1) > max_translation)
    if far.size:
        i = int(far[0])
        raise FormatError(
            path,
            f"{what} with translations within {max_translation:g} m",
            f"{far.size} entr{'y' if far.size == 1 else 'ies'} beyond, first at line {where(i)} "
            f"({np.abs(Ts[i, :3, 3]).max():.6g} m)",
        )


MAX_TEXT_BYTES = 64 << 20  # poses of the longest KITTI sequence are ~0.5 MB


def read_text_lines(path: str | Path, what: str) -> list[tuple[int, str]]:
    """(line number, text) of every non-blank line of a small text file (a regular file, UTF-8)."""
    path = Path(path)
    return _text_lines(path, what, _read_small(path, what))


def _read_small(path: Path, what: str) -> bytes:
    with open_regular(path, what) as f:
        data = f.read(MAX_TEXT_BYTES + 1)
    if len(data) > MAX_TEXT_BYTES:
        raise FormatError(path, f"a {what} of at most {MAX_TEXT_BYTES:,} bytes", "a larger file")
    return data


def _text_lines(path: Path, what: str, data: bytes) -> list[tuple[int, str]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(path, f"a {what} in plain text", f"undecodable bytes at byte {e.start}") from None
    return [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def parse_numbers(path: Path, lineno: int, tokens: list[str], expected: str, count: int | None = None) -> list[float]:
    """Floats of one line; a token that is not a number, NaN or inf, or a wrong count is a :class:`FormatError`
    naming the file, the line and the column. ``expected`` says what a line holds (e.g. "12 floats per line")."""
    out = []
    for j, tok in enumerate(tokens, 1):
        try:
            x = float(tok)
        except ValueError:
            raise FormatError(
                path, expected, f"unparsable content on line {lineno}: {tok[:40]!r} in column {j} is not a number"
            ) from None
        if not math.isfinite(x):
            raise FormatError(path, f"finite numbers, {expected}", f"{tok[:40]!r} on line {lineno}, column {j}")
        out.append(x)
    if count is not None and len(tokens) != count:
        raise FormatError(path, expected, f"{len(tokens)} per line on line {lineno}")
    return out


# Number files parsed in this process, by content (a digest of the bytes read): every job of a run opens the
# dataset and reads the same poses again (4,071 lines of sequence 08: 14 ms a parse, against well under 1 ms to read
# and digest them). Only files that parse are kept; a file whose bytes changed is parsed again.
_PARSED: dict[tuple[int, bytes], tuple[np.ndarray, np.ndarray]] = {}
_PARSED_MAX = 32


def read_number_rows(path: str | Path, what: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A text file of ``width`` finite numbers per non-blank line: ((rows, width) float64, line numbers)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise MissingDataError(path, what)
    data = _read_small(path, what)
    key = (width, hashlib.blake2b(data, digest_size=20).digest())
    hit = _PARSED.get(key)
    if hit is not None:
        return hit[0].copy(), hit[1].copy()
    vals, numbers = _number_rows(path, what, width, _text_lines(path, what, data))
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[key] = (vals.copy(), numbers.copy())
    return vals, numbers


def _number_rows(path: Path, what: str, width: int, lines: list[tuple[int, str]]) -> tuple[np.ndarray, np.ndarray]:
    if not lines:
        raise FormatError(path, f"{what}: {width} float{'s' if width != 1 else ''} per line", "an empty file")
    numbers = np.array([i for i, _ in lines])
    rows = [line.split() for _, line in lines]
    if all(len(r) == width for r in rows):  # the common case, in one pass; any problem: line by line, below
        try:
            flat = np.array([float(tok) for r in rows for tok in r], np.float64)
        except ValueError:
            flat = None
        if flat is not None and np.isfinite(flat).all():
            return flat.reshape(-1, width), numbers
    expected = f"{width} float{'s' if width != 1 else ''} per line" if width != 1 else "one float per line"
    vals = np.array([parse_numbers(path, i, r, expected, width) for (i, _), r in zip(lines, rows)], np.float64)
    return vals.reshape(-1, width), numbers


CALIB_KEYS = ("P0", "P1", "P2", "P3", "Tr")
MAX_TR_TRANSLATION_M = 100.0  # a sensor-to-sensor offset on one vehicle


def read_calib(path: str | Path) -> Calibration:
    """Read ``calib.txt`` (keys ``P0..P3`` and ``Tr``, 12 numbers each) and validate it.

    Refused, naming the line: a line that is not ``KEY: values``, a key given twice, a missing key, a value that
    is not a finite number, a projection ``P0..P3`` whose left 3x3 block is singular (e.g. all zeros), and a
    ``Tr`` that is not rigid. Lines of other keys are ignored (as KITTI tools do).
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise MissingDataError(path, "calibration file")
    seen: dict[str, int] = {}
    P: dict[str, np.ndarray] = {}
    for lineno, line in read_text_lines(path, "calibration file"):
        key, sep, rest = line.partition(":")
        key = key.strip()
        if not sep or not key:
            raise FormatError(
                path, f"lines 'KEY: values' (keys {', '.join(CALIB_KEYS)})", f"line {lineno}: {line[:60]!r}"
            )
        if key in seen:
            raise FormatError(
                path, f"each key once ('{key}:' on line {seen[key]})", f"a second '{key}:' line on line {lineno}"
            )
        seen[key] = lineno
        if key in CALIB_KEYS:
            P[key] = np.array(parse_numbers(path, lineno, rest.split(), f"12 floats for {key}", 12)).reshape(3, 4)
    missing = [k for k in CALIB_KEYS if k not in P]
    if missing:
        raise FormatError(path, f"a '{missing[0]}:' line (keys {', '.join(CALIB_KEYS)})", f"keys {sorted(seen)}")
    for k in ("P0", "P1", "P2", "P3"):
        K = P[k][:, :3]
        scale = np.abs(K).max()
        if scale == 0 or abs(np.linalg.det(K / scale)) < 1e-9 or P[k][0, 0] == 0:
            raise FormatError(
                path,
                f"a projection matrix {k} (line {seen[k]}) with a non-singular left 3x3 block and fx != 0",
                f"a degenerate one (|det| = {abs(np.linalg.det(K)):.3g}, fx = {P[k][0, 0]:g})",
            )
    Tr = np.eye(4)
    Tr[:3, :4] = P.pop("Tr")
    check_rigid(Tr, path, "Tr (velodyne -> cam0)", lines=np.array([seen["Tr"]]), max_translation=MAX_TR_TRANSLATION_M)
    return Calibration(P=P, Tr=Tr, path=path)


def write_calib(path: str | Path, calib: Calibration) -> None:
    lines = [f"{k}: " + " ".join(f"{x:.12e}" for x in calib.P[k].reshape(-1)) for k in ("P0", "P1", "P2", "P3")]
    lines.append("Tr: " + " ".join(f"{x:.12e}" for x in calib.Tr[:3].reshape(-1)))
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_poses(path: str | Path, calib: Calibration | None = None) -> np.ndarray:
    """Read ``poses.txt`` as (N, 4, 4) float64.

    Without ``calib`` these are the camera-0 poses as stored. With ``calib`` they are the LiDAR
    poses ``inv(Tr) @ P @ Tr``. Every value must be a finite number and every pose rigid (errors name the line).
    """
    path = Path(path)
    vals, lines = read_number_rows(path, "poses file", 12)
    n = vals.shape[0]
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :4] = vals.reshape(n, 3, 4)
    check_rigid(T, path, "camera-0 poses", lines=lines)
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
    """Read ``times.txt``: one finite number (seconds) per line."""
    return read_number_rows(path, "times file", 1)[0][:, 0]


def write_times(path: str | Path, times: np.ndarray) -> None:
    atomic_write_text(path, "".join(f"{x:.6e}\n" for x in np.asarray(times, np.float64)))


def relative_pose(poses: np.ndarray, src: int | np.ndarray, dst: int) -> np.ndarray:
    """Transform taking points of frame ``src`` into frame ``dst``: ``inv(T_dst) @ T_src``."""
    return np.linalg.inv(poses[dst]) @ poses[src]

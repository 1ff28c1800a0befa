"""Which KITTI-360 frame each SSCBench-KITTI360 frame is.

SSCBench renumbers KITTI-360's frames: its drive 2013_05_28_drive_0000_sync holds frames 000000-010482 where
KITTI-360 has 0-11517, and SSCBench frame 000000 is KITTI-360 frame 9, 000001 is 14, 000005 is 53, 000300 is 392.
KITTI-360's poses (``cam0_to_world.txt``) are numbered by KITTI-360 frame, so every pose lookup goes through this
correspondence.

A frame map is read from a text file in one of two forms (lines starting with ``#`` and blank lines are skipped):

- **runs** (the form occbench ships, ``data/sscbench-kitti360-frames.txt``): one line per drive, the drive name and
  then the KITTI-360 frame ids of SSCBench frames 0, 1, 2, ... in order, as inclusive runs ``a-b`` of consecutive
  ids or single ids: ``2013_05_28_drive_0000_sync 9 14 22 30 35 53 57 61 65-66 ...``;
- **pairs** (hustvl/Symphonies ``assets/kitti_360_match.txt``): ``<drive> <KITTI-360 frame>.png <SSCBench frame>.png``
  per line; the progress-bar lines of that file (starting with ``Working...``) are skipped.

Either way every drive's SSCBench frames must be 0..n-1, each once, and their KITTI-360 ids strictly increasing (the
frames are in time order); anything else is a :class:`FormatError` naming the file and the line.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from occbench.errors import FormatError, MissingDataError
from occbench.io.kitti import read_text_lines
from occbench.io.kitti360 import MAX_FRAME_ID

RELEASE_MAP = Path(__file__).parent / "data" / "sscbench-kitti360-frames.txt"
RELEASE = "sscbench-release"  # frame_map value: the shipped table
IDENTITY = "identity"  # frame_map value: the poses file is already numbered by SSCBench frame
_DRIVE = re.compile(r"^2013_05_28_drive_\d{4}_sync$")
_RUN = re.compile(r"^(\d{1,6})(?:-(\d{1,6}))?$")
_PAIR = re.compile(r"^(\d{1,10})\.png$")
_PROGRESS = "Working..."


def _runs(path: Path, lineno: int, tokens: list[str]) -> list[int]:
    out: list[int] = []
    for j, tok in enumerate(tokens, 2):
        m = _RUN.match(tok)
        if not m:
            raise FormatError(
                path,
                "KITTI-360 frame ids or runs 'a-b' after the drive name",
                f"{tok[:40]!r} on line {lineno}, column {j}",
            )
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        if b < a or b > MAX_FRAME_ID:
            raise FormatError(
                path, f"runs 'a-b' with a <= b <= {MAX_FRAME_ID}", f"{tok!r} on line {lineno}, column {j}"
            )
        out.extend(range(a, b + 1))
    return out


def read_frame_map(path: str | Path) -> dict[str, np.ndarray]:
    """``{drive: KITTI-360 frame id of each SSCBench frame}`` (int64 arrays, index = SSCBench frame) of a frame-map
    file in either form (module docstring), checked."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise MissingDataError(path, "SSCBench-KITTI360 frame map")
    runs: dict[str, tuple[int, list[int]]] = {}
    pairs: dict[str, list[tuple[int, int, int]]] = {}
    for lineno, line in read_text_lines(path, "SSCBench-KITTI360 frame map"):
        text = line.strip()
        if text.startswith("#") or text.startswith(_PROGRESS):
            continue
        tokens = text.split()
        drive = tokens[0]
        if not _DRIVE.match(drive):
            raise FormatError(
                path,
                "a drive name (2013_05_28_drive_NNNN_sync) first on every line",
                f"{drive[:40]!r} on line {lineno}",
            )
        if drive in runs or (drive in pairs and not (len(tokens) == 3 and _PAIR.match(tokens[1]))):
            first = runs[drive][0] if drive in runs else pairs[drive][0][2]
            raise FormatError(
                path,
                f"one line per drive in the runs form ({drive} is on line {first})",
                f"a second line for it on line {lineno}",
            )
        m_raw, m_ssc = (_PAIR.match(tokens[1]), _PAIR.match(tokens[2])) if len(tokens) == 3 else (None, None)
        if m_raw and m_ssc:
            raw, ssc = int(m_raw.group(1)), int(m_ssc.group(1))
            if len(tokens[2]) != len("000000.png"):
                raise FormatError(
                    path, "a 6-digit SSCBench frame name (NNNNNN.png) third", f"{tokens[2]!r} on line {lineno}"
                )
            if raw > MAX_FRAME_ID:
                raise FormatError(path, f"KITTI-360 frame ids up to {MAX_FRAME_ID}", f"{raw} on line {lineno}")
            pairs.setdefault(drive, []).append((ssc, raw, lineno))
        elif len(tokens) >= 2 and not any(t.endswith(".png") for t in tokens[1:]):
            runs[drive] = (lineno, _runs(path, lineno, tokens[1:]))
        else:
            raise FormatError(
                path,
                "'<drive> <runs of KITTI-360 frame ids>' or '<drive> <KITTI-360 frame>.png <SSCBench frame>.png'",
                f"line {lineno}: {text[:60]!r}",
            )
    both = sorted(set(runs) & set(pairs))
    if both:
        raise FormatError(path, "each drive in one form", f"drive {both[0]} both as runs and as pairs")
    out: dict[str, np.ndarray] = {}
    for drive, (lineno, ids) in runs.items():
        a = np.asarray(ids, np.int64)
        bad = np.flatnonzero(np.diff(a) <= 0)
        if bad.size:
            raise FormatError(
                path,
                "strictly increasing KITTI-360 frame ids per drive (frames in time order)",
                f"{a[bad[0]]} then {a[bad[0] + 1]} (SSCBench frames {bad[0]:06d}, {bad[0] + 1:06d}) on line {lineno}",
            )
        out[drive] = a
    for drive, rows in pairs.items():
        rows.sort()
        ssc_frames = np.array([r[0] for r in rows])
        if not np.array_equal(ssc_frames, np.arange(len(rows))):
            i = int(np.flatnonzero(ssc_frames != np.arange(len(rows)))[0])
            raise FormatError(
                path,
                f"SSCBench frames 000000..{len(rows) - 1:06d} of {drive}, each once",
                f"frame {ssc_frames[i]:06d} where {i:06d} belongs (line {rows[i][2]})",
            )
        a = np.array([r[1] for r in rows], np.int64)
        bad = np.flatnonzero(np.diff(a) <= 0)
        if bad.size:
            i = int(bad[0])
            raise FormatError(
                path,
                "KITTI-360 frame ids strictly increasing with the SSCBench frame (time order)",
                f"{a[i]} for {i:06d} (line {rows[i][2]}) then {a[i + 1]} for {i + 1:06d} (line {rows[i + 1][2]})",
            )
        out[drive] = a
    if not out:
        raise FormatError(path, "at least one drive", "no frame-map lines")
    return out


@lru_cache(maxsize=4)
def _cached(path: str, mtime_ns: int, size: int) -> dict[str, np.ndarray]:
    return read_frame_map(path)


def load_frame_map(path: str | Path) -> dict[str, np.ndarray]:
    """:func:`read_frame_map`, read once per file version (the arrays are read-only)."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise MissingDataError(p, "SSCBench-KITTI360 frame map") from None
    out = _cached(str(p), st.st_mtime_ns, st.st_size)
    for a in out.values():
        a.flags.writeable = False
    return out


def release_frame_map() -> dict[str, np.ndarray]:
    """The correspondence of the public SSCBench-KITTI360 release (shipped with occbench; source and licence in
    ``data/NOTICE``)."""
    return load_frame_map(RELEASE_MAP)


def write_frame_map(path: str | Path, table: dict[str, np.ndarray], header: str = "") -> None:
    """Write ``table`` in the runs form (``header``: comment lines put first)."""
    from occbench.io.atomic import atomic_write_text

    lines = [f"# {h}" for h in header.splitlines()]
    for drive, ids in table.items():
        a = np.asarray(ids, np.int64)
        toks, i = [], 0
        while i < len(a):
            j = i
            while j + 1 < len(a) and a[j + 1] == a[j] + 1:
                j += 1
            toks.append(f"{a[i]}-{a[j]}" if j > i else f"{a[i]}")
            i = j + 1
        lines.append(" ".join([drive, *toks]))
    atomic_write_text(path, "\n".join(lines) + "\n")

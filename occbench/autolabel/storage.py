r"""Pseudo-label storage: top-1 labels, or top-2 labels with quantised confidences, one small file per frame.

Layout: ``<root>/sequences/<seq>/<NNNNNN>.pl`` plus ``<root>/manifest.json`` (source, method config, format).

File format ``occbench-pl`` version 1 (little-endian; documented in ``docs/autolabel.md``)::

    bytes 0..5   magic b"OCCPL\0"
    byte  6      format version (1)
    byte  7      k: 1 (top-1) or 2 (top-2)
    byte  8      number of classes C (labels are train ids 0..C-1)
    bytes 9..15  zero
    bytes 16..   zlib stream (level 6) of k == 1: the (256, 256, 32) uint8 top-1 train ids, C order [x][y][z];
                 k == 2: four such uint8 planes one after the other: top-1 id, top-2 id,
                 c1 = round(255 * p1), c2 = round(255 * p2) (p the source's probabilities of the two labels).

The top-1 plane of a top-2 file is the source's own decision (what its ``refine`` returns), so a top-2 file
always contains the top-1 file's content. Top-1 is the most probable class by construction: every top-2 file
has ``c1 >= c2`` in every cell (:func:`top2_pseudo_label` caps ``p2`` at ``p1`` before quantising, and rounding is
monotone); :func:`encode` refuses and :func:`decode` rejects a file that breaks it. Writes are atomic; a frame
present is never rewritten (resume).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from occbench.errors import FormatError, MissingDataError
from occbench.io.atomic import atomic_write_bytes, atomic_write_text
from occbench.io.files import read_json_document

MAGIC = b"OCCPL\0"
FORMAT_VERSION = 1
HEADER_BYTES = 16
GRID = (256, 256, 32)
EXT = ".pl"


@dataclass
class PseudoLabel:
    """One frame's pseudo-label. ``top2`` / ``conf`` are None for top-1 labels.

    ``top1``, ``top2``: (256, 256, 32) uint8 train ids; ``conf``: (2, 256, 256, 32) uint8 quantised probabilities.
    """

    top1: np.ndarray
    top2: np.ndarray | None = None
    conf: np.ndarray | None = None

    @property
    def k(self) -> int:
        return 1 if self.top2 is None else 2

    def q1(self) -> np.ndarray | None:
        """Top-1 share ``c1 / (c1 + c2)`` as float32 (1 where both are 0), or None for top-1 labels."""
        if self.conf is None:
            return None
        c1 = self.conf[0].astype(np.float32)
        s = c1 + self.conf[1].astype(np.float32)
        return np.where(s > 0, c1 / np.maximum(s, 1.0), 1.0).astype(np.float32)


def quantize(p: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] as uint8 steps of 1/255: ``round(255 p)`` (half to even), clipped to 0..255; the
    error of ``c / 255`` is at most 1/510 for p in [0, 1]."""
    return np.clip(np.rint(np.asarray(p, np.float64) * 255.0), 0, 255).astype(np.uint8)


def top2_pseudo_label(top1: np.ndarray, top2: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> PseudoLabel:
    """A top-2 pseudo-label from a source's ``(top1, top2, p1, p2)``, consistent by construction: ``p2`` is capped
    at ``p1`` (a source whose decision is not its most probable class, e.g. voting under the ``occupancy`` empty
    policy, stores the pair as equally likely rather than contradicting its label), then both are quantised."""
    a1, a2 = np.asarray(p1, np.float64), np.asarray(p2, np.float64)
    return PseudoLabel(
        np.asarray(top1, np.uint8), np.asarray(top2, np.uint8), np.stack([quantize(a1), quantize(np.minimum(a2, a1))])
    )


def _inconsistent_cells(conf: np.ndarray) -> int:
    return int(np.count_nonzero(conf[1] > conf[0]))


def encode(pl: PseudoLabel, num_classes: int = 20) -> bytes:
    planes = [pl.top1] if pl.top2 is None else [pl.top1, pl.top2, pl.conf[0], pl.conf[1]]  # type: ignore[index]
    if pl.top2 is not None and (pl.conf is None or pl.conf.shape != (2, *GRID)):
        raise ValueError("a top-2 pseudo-label needs conf of shape (2, 256, 256, 32)")
    for a in planes:
        if a.shape != GRID:
            raise ValueError(f"pseudo-label planes must have shape {GRID}, got {a.shape}")
    for a in planes[:2]:
        if a.size and int(a.max()) >= num_classes:
            raise ValueError(f"pseudo-label ids must be train ids 0..{num_classes - 1}, got {int(a.max())}")
    if pl.conf is not None and pl.top2 is not None and (bad := _inconsistent_cells(pl.conf)):
        raise ValueError(
            f"a top-2 pseudo-label needs c1 >= c2 (top-1 the most probable) in every cell, "
            f"got c2 > c1 in {bad} cells (build it with top2_pseudo_label)"
        )
    head = MAGIC + bytes([FORMAT_VERSION, pl.k, num_classes]) + bytes(HEADER_BYTES - len(MAGIC) - 3)
    body = b"".join(np.ascontiguousarray(a, np.uint8).tobytes() for a in planes)
    return head + zlib.compress(body, 6)


def decode(data: bytes, path: str | Path | None = None) -> PseudoLabel:
    if len(data) < HEADER_BYTES or data[:6] != MAGIC:
        raise FormatError(path, "an occbench-pl file (magic OCCPL)", f"{data[:6]!r}")
    version, k = data[6], data[7]
    if version != FORMAT_VERSION or k not in (1, 2):
        raise FormatError(path, f"occbench-pl version {FORMAT_VERSION} with k in (1, 2)", f"version {version}, k {k}")
    try:
        body = zlib.decompress(data[HEADER_BYTES:])
    except zlib.error as e:
        raise FormatError(path, "a zlib stream", f"corrupt data ({e})") from None
    n = int(np.prod(GRID))
    planes = 1 if k == 1 else 4
    if len(body) != planes * n:
        raise FormatError(path, f"{planes * n} bytes after decompression", f"{len(body)}")
    arr = np.frombuffer(body, np.uint8).reshape(planes, *GRID)
    if k == 1:
        return PseudoLabel(arr[0])
    if bad := _inconsistent_cells(arr[2:4]):
        raise FormatError(
            path,
            "a top-2 pseudo-label with c1 >= c2 in every cell (top-1 the most probable)",
            f"c2 > c1 in {bad} cells (delete the pseudo-label folder to generate it again)",
        )
    return PseudoLabel(arr[0], arr[1], arr[2:4])


class PseudoLabelStore:
    """Pseudo-labels of one source: ``<root>/sequences/<seq>/<NNNNNN>.pl`` + ``manifest.json``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, sequence: str, frame: int) -> Path:
        return self.root / "sequences" / sequence / f"{int(frame):06d}{EXT}"

    def exists(self, sequence: str, frame: int) -> bool:
        return self.path(sequence, frame).is_file()

    def write(self, sequence: str, frame: int, pl: PseudoLabel, num_classes: int = 20) -> int:
        data = encode(pl, num_classes)
        atomic_write_bytes(self.path(sequence, frame), data)
        return len(data)

    def read(self, sequence: str, frame: int) -> PseudoLabel:
        p = self.path(sequence, frame)
        if not p.is_file():
            raise MissingDataError(p, f"pseudo-label of {sequence}/{int(frame):06d}")
        return decode(p.read_bytes(), p)

    def files(self) -> list[Path]:
        d = self.root / "sequences"
        return sorted(d.glob(f"*/*{EXT}")) if d.is_dir() else []

    def disk_usage(self) -> dict[str, Any]:
        """Bytes on disk of the frame files (manifest excluded), and per frame."""
        sizes = [p.stat().st_size for p in self.files()]
        dense = int(np.prod(GRID)) * 2  # an uncompressed uint16 .label file
        total = int(sum(sizes))
        per = total / len(sizes) if sizes else 0.0
        return {
            "frames": len(sizes),
            "bytes": total,
            "bytes_per_frame": round(per, 1),
            "label_file_bytes_per_frame": dense,
            "ratio_vs_label": round(dense / per, 1) if per else None,
        }

    def read_manifest(self) -> dict[str, Any] | None:
        p = self.root / "manifest.json"
        if not p.exists():
            return None
        m = read_json_document(p, "a pseudo-label manifest")
        if not isinstance(m, dict):
            raise FormatError(p, "a JSON object (a pseudo-label manifest)", f"a JSON {type(m).__name__}")
        return m

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_text(self.root / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")

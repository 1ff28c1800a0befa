"""Per-frame predictions of an onboard model (or of an offboard method).

Layout (the official submission layout, one folder per model)::

    <predictions_root>/<model>/sequences/XX/predictions/NNNNNN.label      # uint16 raw ids, 4,194,304 bytes
    <predictions_root>/<model>/sequences/XX/predictions/NNNNNN.label.gz   # compressed variant

The compressed variant is the gzip (RFC 1952, ``mtime=0``) of the exact ``.label`` bytes: byte-identical
after ``gunzip``, readable by any tool, about 50x smaller on SSC grids (most voxels are empty), and
decompressed in about 7 ms a frame. A folder may mix both; if both exist for a frame that is an error.
"""
from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from occbench.errors import FormatError, MissingDataError
from occbench.io.atomic import atomic_write_bytes
from occbench.io.voxels import GRID_SHAPE, LABEL_BYTES, read_label

PLAIN = ".label"
COMPRESSED = ".label.gz"
_FRAME_RE = re.compile(r"^(\d{6})\.label(\.gz)?$")


def frame_name(frame: int) -> str:
    return f"{int(frame):06d}"


def read_prediction_file(path: str | Path) -> np.ndarray:
    """Read a ``.label`` or ``.label.gz`` file as (256, 256, 32) uint16 raw ids."""
    path = Path(path)
    if path.name.endswith(".gz"):
        if not path.is_file():
            raise MissingDataError(path, "prediction file")
        try:
            data = gzip.decompress(path.read_bytes())
        except (OSError, EOFError) as e:
            raise FormatError(path, "a gzip stream of a .label file", f"corrupt data ({e})") from None
        if len(data) != LABEL_BYTES:
            raise FormatError(path, f"{LABEL_BYTES:,} bytes after decompression (2,097,152 uint16)", f"{len(data):,} bytes")
        return np.frombuffer(data, "<u2").reshape(GRID_SHAPE)
    return read_label(path)


def encode_prediction(raw: np.ndarray, compressed: bool) -> bytes:
    raw = np.asarray(raw)
    if raw.shape != GRID_SHAPE:
        raise ValueError(f"a prediction must have shape {GRID_SHAPE}, got {raw.shape}")
    if raw.dtype.kind not in "ui":
        raise ValueError(f"a prediction must hold integer raw ids, got dtype {raw.dtype}")
    data = np.ascontiguousarray(raw, dtype="<u2").tobytes()
    return gzip.compress(data, compresslevel=6, mtime=0) if compressed else data


def write_prediction_file(path: str | Path, raw: np.ndarray) -> None:
    """Write raw ids atomically; the extension (``.label`` or ``.label.gz``) picks the variant."""
    path = Path(path)
    atomic_write_bytes(path, encode_prediction(raw, compressed=path.name.endswith(".gz")))


class PredictionStore:
    """Predictions of one model: ``<root>/sequences/XX/predictions/NNNNNN.label[.gz]``.

    ``root`` is the model's folder (``<predictions_root>/<model>``).
    """

    def __init__(self, root: str | Path, compressed: bool = False):
        self.root = Path(root)
        self.compressed = compressed

    def __repr__(self) -> str:
        return f"PredictionStore({str(self.root)!r}, compressed={self.compressed})"

    def folder(self, sequence: str) -> Path:
        return self.root / "sequences" / sequence / "predictions"

    def path(self, sequence: str, frame: int, compressed: bool | None = None) -> Path:
        c = self.compressed if compressed is None else compressed
        return self.folder(sequence) / (frame_name(frame) + (COMPRESSED if c else PLAIN))

    def find(self, sequence: str, frame: int) -> Path | None:
        """The existing file of a frame (either variant), or None. Both variants at once is an error."""
        plain, comp = self.path(sequence, frame, False), self.path(sequence, frame, True)
        has_p, has_c = plain.is_file(), comp.is_file()
        if has_p and has_c:
            raise FormatError(comp, f"one file per frame, not both {plain.name} and {comp.name}", "both")
        return plain if has_p else comp if has_c else None

    def exists(self, sequence: str, frame: int) -> bool:
        return self.find(sequence, frame) is not None

    def read(self, sequence: str, frame: int) -> np.ndarray:
        p = self.find(sequence, frame)
        if p is None:
            raise MissingDataError(self.path(sequence, frame), f"prediction of sequence {sequence} frame {frame_name(frame)}")
        return read_prediction_file(p)

    def write(self, sequence: str, frame: int, raw: np.ndarray) -> Path:
        p = self.path(sequence, frame)
        write_prediction_file(p, raw)
        return p

    def sequences(self) -> list[str]:
        d = self.root / "sequences"
        return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []

    def frames(self, sequence: str) -> list[int]:
        """Frame numbers present (either variant), sorted."""
        d = self.folder(sequence)
        if not d.is_dir():
            return []
        out = set()
        for name in (e.name for e in d.iterdir()):
            m = _FRAME_RE.match(name)
            if m:
                out.add(int(m.group(1)))
        return sorted(out)

    def unexpected_files(self, sequence: str) -> list[Path]:
        d = self.folder(sequence)
        if not d.is_dir():
            return []
        return sorted(p for p in d.iterdir() if not _FRAME_RE.match(p.name))

    def iter_files(self) -> Iterator[tuple[str, int, Path]]:
        for s in self.sequences():
            for f in self.frames(s):
                p = self.find(s, f)
                assert p is not None
                yield s, f, p


def convert_store(src: str | Path, dst: str | Path, compressed: bool, progress: bool = False) -> int:
    """Copy every prediction of ``src`` to ``dst`` in the chosen variant (byte-exact content).

    Files already present in ``dst`` with the right variant are skipped (resumable). Returns the number written.
    """
    from occbench.progress import progress_bar

    s, d = PredictionStore(src), PredictionStore(dst, compressed=compressed)
    items = list(s.iter_files())
    n = 0
    for seq, frame, path in progress_bar(items, desc="convert", disable=not progress):
        if d.path(seq, frame).is_file():
            continue
        d.write(seq, frame, read_prediction_file(path))
        n += 1
    return n

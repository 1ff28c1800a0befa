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
import os
import re
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from occbench.errors import FormatError, MissingDataError
from occbench.grid import KITTI
from occbench.io.atomic import atomic_write_bytes
from occbench.io.files import describe_mode, open_regular
from occbench.io.voxels import LABEL_BYTES, NUM_VOXELS

PLAIN = ".label"
COMPRESSED = ".label.gz"
PREDICTION_TEMPS = "sequences/*/predictions"  # where a store's temporary files live (occbench.io.folder_lock)
FRAME_RE = re.compile(r"^(\d{6})\.label(\.gz)?$")


def frame_name(frame: int) -> str:
    return f"{int(frame):06d}"


def read_prediction_file(path: str | Path, follow_links: bool = True) -> np.ndarray:
    """Read a ``.label`` or ``.label.gz`` file as (256, 256, 32) uint16 raw ids.

    Only a regular file is opened (a directory, FIFO or device is refused; ``follow_links=False`` refuses a
    symbolic link too). A ``.label.gz`` is inflated as a stream and never past one frame: more data than
    4,194,304 bytes, a truncated or a corrupt stream is a :class:`FormatError` naming the file.
    """
    path = Path(path)
    with open_regular(path, "prediction file", follow=follow_links) as f:
        if path.name.endswith(".gz"):
            data = inflate_capped(f, path, LABEL_BYTES)
        else:
            size = os.fstat(f.fileno()).st_size
            if size != LABEL_BYTES:
                raise FormatError(
                    path, f"{LABEL_BYTES:,} bytes ({NUM_VOXELS:,} uint16 labels of {KITTI.shape})", f"{size:,} bytes"
                )
            data = bytearray(LABEL_BYTES)
            got = f.readinto(data)
            if got != LABEL_BYTES or f.read(1):  # changed while being read
                raise FormatError(path, f"{LABEL_BYTES:,} bytes", "a file whose size changed while it was read")
    return np.frombuffer(data, "<u2").reshape(KITTI.shape)


def inflate_capped(f: BinaryIO, path: Path, size: int, chunk: int = 1 << 16) -> bytearray:
    """Inflate the gzip stream (one or more members) read from ``f``, which must hold exactly ``size`` bytes.

    Streaming with a hard cap: at most ``size + 1`` bytes are ever inflated (the extra byte detects an
    overflow), so a gzip bomb costs no more memory than one frame."""
    expected = f"a gzip stream of exactly {size:,} bytes (a .label file)"
    out = bytearray(size)
    n, read_any = 0, False
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pending = b""
    while True:
        if not pending:
            pending = f.read(chunk)
            if not pending:
                break
            read_any = True
        if d.eof:  # the previous member ended: another one follows
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            piece = d.decompress(pending, size + 1 - n)
        except zlib.error as e:
            raise FormatError(path, expected, f"corrupt data after {n:,} inflated bytes ({e})") from None
        if n + len(piece) > size:
            raise FormatError(path, expected, f"more than {size:,} bytes (inflating stopped there)")
        out[n : n + len(piece)] = piece
        n += len(piece)
        pending = d.unused_data if d.eof else d.unconsumed_tail
    if not read_any:
        raise FormatError(path, expected, "an empty file")
    if not d.eof:
        raise FormatError(path, expected, f"a truncated stream ({n:,} bytes inflated before it ended)")
    if n != size:
        raise FormatError(path, expected, f"{n:,} bytes after decompression")
    return out


def encode_prediction(raw: np.ndarray, compressed: bool) -> bytes:
    raw = np.asarray(raw)
    if raw.shape != KITTI.shape:
        raise ValueError(f"a prediction must have shape {KITTI.shape}, got {raw.shape}")
    if raw.dtype.kind not in "ui":
        raise ValueError(f"a prediction must hold integer raw ids, got dtype {raw.dtype}")
    data = np.ascontiguousarray(raw, dtype="<u2").tobytes()
    return gzip.compress(data, compresslevel=6, mtime=0) if compressed else data


def write_prediction_file(path: str | Path, raw: np.ndarray) -> None:
    """Write raw ids atomically; the extension (``.label`` or ``.label.gz``) picks the variant."""
    path = Path(path)
    atomic_write_bytes(path, encode_prediction(raw, compressed=path.name.endswith(".gz")))


def _is_regular(path: Path) -> bool:
    """Whether ``path`` resolves to a regular file; False if absent (or a broken link); an entry of that name that
    is something else (a directory, FIFO, device) is a :class:`FormatError`."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    if not stat.S_ISREG(st.st_mode):
        raise FormatError(path, "a regular prediction file", describe_mode(st.st_mode))
    return True


class PredictionStore:
    """Predictions of one model: ``<root>/sequences/XX/predictions/NNNNNN.label[.gz]``.

    ``root`` is the model's folder (``<predictions_root>/<model>``).
    """

    name_pattern = FRAME_RE  # file names of frames

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
        has_p, has_c = _is_regular(plain), _is_regular(comp)
        if has_p and has_c:
            raise FormatError(comp, f"one file per frame, not both {plain.name} and {comp.name}", "both")
        return plain if has_p else comp if has_c else None

    def exists(self, sequence: str, frame: int) -> bool:
        return self.find(sequence, frame) is not None

    def read(self, sequence: str, frame: int) -> np.ndarray:
        p = self.find(sequence, frame)
        if p is None:
            raise MissingDataError(
                self.path(sequence, frame), f"prediction of sequence {sequence} frame {frame_name(frame)}"
            )
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
            m = FRAME_RE.match(name)
            if m:
                out.add(int(m.group(1)))
        return sorted(out)

    def unexpected_files(self, sequence: str) -> list[Path]:
        d = self.folder(sequence)
        if not d.is_dir():
            return []
        return sorted(p for p in d.iterdir() if not FRAME_RE.match(p.name))

    def iter_files(self) -> Iterator[tuple[str, int, Path]]:
        for s in self.sequences():
            for f in self.frames(s):
                p = self.find(s, f)
                if p is None:  # listed by name, but neither variant resolves to a file
                    raise FormatError(self.path(s, f), "a prediction file", "a broken symbolic link")
                yield s, f, p


def convert_store(src: str | Path, dst: str | Path, compressed: bool, progress: bool = False) -> int:
    """Copy every prediction of ``src`` to ``dst`` in the chosen variant (byte-exact content).

    Files already present in ``dst`` with the right variant are skipped (resumable). Returns the number written.
    """
    from occbench.runtime.progress import progress_bar

    s, d = PredictionStore(src), PredictionStore(dst, compressed=compressed)
    items = list(s.iter_files())
    n = 0
    for seq, frame, path in progress_bar(items, desc="convert", disable=not progress):
        if d.path(seq, frame).is_file():
            continue
        d.write(seq, frame, read_prediction_file(path))
        n += 1
    return n

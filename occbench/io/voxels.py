"""SemanticKITTI v1.1 and SSCBench-KITTI360 voxel files.

Flat order is C-order over ``(256, 256, 32)`` = ``[x, y, z]``, z fastest (voxelizer ``saveVoxelGrid``).

=============  =====================================  ==============
extension      content                                bytes / frame
=============  =====================================  ==============
``.bin``       occupancy, bit-packed, MSB first        262,144
``.invalid``   bit-packed, MSB first (SemanticKITTI)   262,144
``.occluded``  bit-packed, MSB first                   262,144
``.label``     uint16 little-endian raw ids            4,194,304
``.invalid``   one byte per voxel (SSCBench-KITTI360)  2,097,152
=============  =====================================  ==============
"""

from __future__ import annotations

import mmap
import os
import sys
from pathlib import Path

import numpy as np

from occbench.errors import FormatError
from occbench.grid import KITTI
from occbench.io.atomic import atomic_write_bytes
from occbench.io.files import regular_stat

GRID_SHAPE: tuple[int, int, int] = KITTI.shape
NUM_VOXELS: int = KITTI.num_voxels
PACKED_BYTES: int = NUM_VOXELS // 8
LABEL_BYTES: int = NUM_VOXELS * 2


def _check_size(path: Path, expected: int, what: str) -> None:
    size = regular_stat(path, what).st_size  # a directory, FIFO or device is refused before it is opened
    if size != expected:
        raise FormatError(path, f"{expected:,} bytes ({what})", f"{size:,} bytes")


def read_bits(path: str | Path, shape: tuple[int, ...] = GRID_SHAPE) -> np.ndarray:
    """Read a bit-packed ``.bin`` / ``.invalid`` / ``.occluded`` file as a uint8 0/1 array of ``shape``."""
    path = Path(path)
    n = int(np.prod(shape))
    _check_size(path, n // 8, f"bit-packed voxel grid of {shape}, MSB first")
    return np.unpackbits(np.fromfile(path, np.uint8)).reshape(shape)


def read_bits_packed(path: str | Path, shape: tuple[int, ...] = GRID_SHAPE) -> np.ndarray:
    """Read a bit-packed file without unpacking it: ``(prod(shape) / 8,)`` uint8, MSB first (voxel ``i`` is
    bit ``7 - (i & 7)`` of byte ``i >> 3``). :class:`occbench.metrics.SSCMetric` takes these bytes as they are."""
    path = Path(path)
    n = int(np.prod(shape))
    _check_size(path, n // 8, f"bit-packed voxel grid of {shape}, MSB first")
    return np.fromfile(path, np.uint8)


def read_invalid_as_stored(path: str | os.PathLike, shape: tuple[int, ...] = GRID_SHAPE) -> np.ndarray:
    """An ``.invalid`` file as stored, told apart by its size: bit-packed bytes ``(n / 8,)`` (SemanticKITTI,
    see :func:`read_bits_packed`) or one 0/1 byte per voxel ``(n,)`` (SSCBench-KITTI360)."""
    path = Path(path)
    n = int(np.prod(shape))
    size = regular_stat(path, "invalid mask").st_size
    if size == n // 8:
        return np.fromfile(path, np.uint8)
    if size == n:
        return read_invalid_kitti360(path, shape).reshape(-1)
    raise FormatError(
        path,
        f"{n // 8:,} bytes (bit-packed, SemanticKITTI) or {n:,} bytes (one byte per voxel, SSCBench-KITTI360)",
        f"{size:,} bytes",
    )


def map_label(path: str | os.PathLike, shape: tuple[int, ...] = GRID_SHAPE) -> np.ndarray:
    """A ``.label`` file as a read-only uint16 array of ``shape`` backed by a memory map of the file.

    Unlike :func:`read_label` nothing is copied: on Linux the pages are mapped up front (``MAP_POPULATE``;
    the file's pages are read into the page cache if they are not there), so a consumer's single pass over
    the array is the only pass over the data. The map is released with the last reference to the array.
    Do not truncate the file while the array is alive (the process would get SIGBUS).
    """
    path = Path(path)
    n = int(np.prod(shape))
    _check_size(path, 2 * n, f"{n:,} uint16 labels of {shape}")
    with open(path, "rb") as fh:
        if sys.platform == "win32":  # pragma: no cover
            buf = mmap.mmap(fh.fileno(), 2 * n, access=mmap.ACCESS_READ)
        else:
            buf = mmap.mmap(
                fh.fileno(), 2 * n, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0), prot=mmap.PROT_READ
            )
    return np.frombuffer(buf, "<u2").reshape(shape)


def pack_bits(mask: np.ndarray) -> np.ndarray:
    """Pack a boolean/0-1 grid (C-order) into bytes, MSB first."""
    return np.packbits(np.ascontiguousarray(mask).reshape(-1) != 0)


def write_bits(path: str | Path, mask: np.ndarray) -> None:
    """Write a boolean/0-1 grid as a bit-packed file (nonzero -> 1), atomically."""
    mask = np.asarray(mask)
    if mask.size % 8:
        raise ValueError(f"{path}: a bit-packed grid needs a multiple of 8 voxels, got {mask.size}")
    atomic_write_bytes(path, pack_bits(mask).tobytes())


def read_label(path: str | Path, shape: tuple[int, ...] = GRID_SHAPE, mmap: bool = False) -> np.ndarray:
    """Read a ``.label`` file: uint16 little-endian raw ids, reshaped to ``shape``.

    With ``mmap=True`` the array is a read-only memory map (nothing is read until indexed).
    """
    path = Path(path)
    n = int(np.prod(shape))
    _check_size(path, 2 * n, f"{n:,} uint16 labels of {shape}")
    if mmap:
        return np.memmap(path, dtype="<u2", mode="r", shape=shape)
    return np.fromfile(path, "<u2").reshape(shape)


def write_label(path: str | Path, labels: np.ndarray) -> None:
    """Write raw ids as a uint16 little-endian ``.label`` file (C-order), atomically.

    ``labels`` must be integer and within 0..65535; nothing is clipped.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "ui":
        raise FormatError(path, "integer raw label ids", f"dtype {labels.dtype}")
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) > 65535):
        raise FormatError(path, "raw ids in 0..65535", f"range {labels.min()}..{labels.max()}")
    atomic_write_bytes(path, np.ascontiguousarray(labels, dtype="<u2").tobytes())


def read_invalid_kitti360(path: str | Path, shape: tuple[int, ...] = GRID_SHAPE) -> np.ndarray:
    """SSCBench-KITTI360 ``.invalid``: one byte per voxel (not packed)."""
    path = Path(path)
    n = int(np.prod(shape))
    _check_size(path, n, f"{n:,} one-byte invalid flags (SSCBench-KITTI360)")
    data = np.fromfile(path, np.uint8)
    if data.size and int(data.max()) > 1:
        raise FormatError(path, "invalid flags 0/1", f"values up to {int(data.max())}")
    return data.reshape(shape)


def write_invalid_kitti360(path: str | Path, invalid: np.ndarray) -> None:
    atomic_write_bytes(path, (np.ascontiguousarray(invalid).reshape(-1) != 0).astype(np.uint8).tobytes())

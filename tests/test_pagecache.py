"""occbench.io.pagecache: prefetch / evict / resident_fraction, and scoring with the next frame prefetched."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from occbench.io.pagecache import evict, prefetch, resident_fraction
from occbench.io.voxels import map_label, read_bits, read_bits_packed, read_label, write_bits, write_label
from occbench.labels import load_label_map
from occbench.metrics import FrameArrays, SSCMetric
from occbench.metrics.testing import synthetic_frame

linux = pytest.mark.skipif(sys.platform != "linux", reason="posix_fadvise and mincore semantics are Linux's")


def _filesystem(path: Path) -> str:
    """Type of the filesystem holding ``path`` (longest mount point prefix in /proc/mounts)."""
    best, fstype = "", "?"
    real = os.path.realpath(path)
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mnt, typ = line.split()[:3]
        if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
            best, fstype = mnt, typ
    return fstype


@linux
def test_evict_drops_pages_and_prefetch_brings_them_back(tmp_path):
    p = tmp_path / "a.bin"
    np.arange(4_000_000, dtype=np.uint8).tofile(p)
    assert resident_fraction(p) == 1.0  # just written
    evict(p)
    left = resident_fraction(p)
    if _filesystem(tmp_path) in ("tmpfs", "ramfs"):  # memory filesystems cannot drop pages
        assert left == 1.0
        return
    assert left == 0.0
    prefetch(p)
    deadline = time.monotonic() + 60  # the read runs in the background: soon, later on a busy disk
    while resident_fraction(p) < 1.0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert resident_fraction(p) == 1.0
    assert np.array_equal(np.fromfile(p, np.uint8), np.arange(4_000_000, dtype=np.uint8))


@linux
def test_resident_fraction_counts_pages(tmp_path):
    p = tmp_path / "b.bin"
    p.write_bytes(b"\1" * (10 * 4096 + 1))  # 11 pages
    if _filesystem(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip("memory filesystem: pages cannot be dropped")
    evict(p)
    with open(p, "rb") as fh:  # read pages 0..2 only; readahead may bring more, never fewer
        fh.read(3 * 4096)
    frac = resident_fraction(p)
    assert 3 / 11 <= frac <= 1.0
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert resident_fraction(empty) == 1.0


def test_hints_ignore_missing_files(tmp_path):
    prefetch(tmp_path / "missing.label")  # the reader reports a missing file, with its name
    evict(tmp_path / "missing.label")
    with pytest.raises(FileNotFoundError):
        resident_fraction(tmp_path / "missing.label")


def test_prefetching_the_next_frame_counts_the_same(tmp_path):
    """The evaluation's pattern: read a frame's files, ask for the next frame's, count the arrays."""
    lm = load_label_map()
    rng = np.random.default_rng(3)
    files = []
    for f in range(3):
        pred, gt, inv = synthetic_frame(rng)
        g = lm.inv_lut[np.where(gt == 255, 0, gt)].astype(np.uint16)
        g[gt == 255] = 52
        trio = (tmp_path / f"{f}.pred.label", tmp_path / f"{f}.label", tmp_path / f"{f}.invalid")
        write_label(trio[0], lm.inv_lut[pred].astype(np.uint16))
        write_label(trio[1], g)
        write_bits(trio[2], inv)
        files.append(trio)
    a, b = SSCMetric(), SSCMetric()
    for f, trio in enumerate(files):
        evict(*trio)
        nxt = files[f + 1] if f + 1 < len(files) else (tmp_path / "gone.label",)
        arrays = FrameArrays(map_label(trio[1]), read_bits_packed(trio[2]), labels="raw")
        pred = map_label(trio[0])
        prefetch(*nxt)
        a.update_frame(pred, arrays)
        b.update_frame(read_label(trio[0]), FrameArrays(read_label(trio[1]), read_bits(trio[2]), labels="raw"))
    assert np.array_equal(a._counts, b._counts) and a.compute() == b.compute()

"""Hostile submissions: links, special files and gzip streams are listed problems, never followed, opened, crashes
or memory blow-ups."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
import zlib

import numpy as np
import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.errors import FormatError
from occbench.io.predictions import PredictionStore, read_prediction_file
from occbench.io.voxels import LABEL_BYTES
from occbench.testing import make_semantickitti_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(
        tmp_path_factory.mktemp("sub") / "kitti", {"08": 36}, onboard={"noisy": 0.2}, compressed=True, seed=5
    )


def _submission(tree, dst):
    """A valid submission: the onboard predictions of the labelled scans (every 5th)."""
    shutil.copytree(tree / "predictions" / "noisy", dst)
    d = dst / "sequences" / "08" / "predictions"
    for p in d.iterdir():
        if int(p.name[:6]) % 5:
            p.unlink()
    return dst, d


def _score(tree, sub):
    def alarm(*_):
        raise TimeoutError("validation blocked (a FIFO or device was opened)")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(120)
    try:
        return CliRunner().invoke(
            main,
            ["evaluate", "--dataset", "semantickitti", "--root", str(tree), "--predictions", str(sub), "-q", "-j", "1"],
        )
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_links_and_special_files_are_all_listed_and_none_is_opened(tree, tmp_path, monkeypatch):
    sub, d = _submission(tree, tmp_path / "model")
    outside = tmp_path / "outside.label.gz"
    shutil.move(d / "000000.label.gz", outside)
    os.symlink(outside, d / "000000.label.gz")  # a valid file outside the folder
    (d / "000005.label.gz").unlink()
    os.symlink(tree / "sequences/08/voxels/000005.label", d / "000005.label")  # the ground truth itself
    (d / "000010.label.gz").unlink()
    (d / "000010.label").mkdir()  # a directory
    (d / "000015.label.gz").unlink()
    os.symlink(tmp_path / "nowhere", d / "000015.label")  # a broken link
    (d / "000020.label.gz").unlink()
    os.mkfifo(d / "000020.label")  # a FIFO
    (d / "000025.label.gz").unlink()
    os.symlink("/dev/zero", d / "000025.label")  # a device
    (d / "000030.label.gz").unlink()
    os.symlink("/etc/passwd", d / "000030.label")  # a file of the machine
    os.symlink("/etc", d / "notes")  # a stray link
    bad_names = [
        "000000.label.gz",
        "000005.label",
        "000010.label",
        "000015.label",
        "000020.label",
        "000025.label",
        "000030.label",
    ]
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: (opened.append(os.fspath(p)), real_open(p, *a, **k))[1])
    r = _score(tree, sub)
    assert r.exit_code == 3, r.output + repr(r.exception)
    msg = r.output
    assert "Traceback" not in msg and "AssertionError" not in msg
    assert "8 problem(s)" in msg, msg
    for name in bad_names:
        assert f"{d / name}:" in msg, (name, msg)
    assert msg.count("a symbolic link") == 6 and "a directory" in msg and "a FIFO" in msg
    assert "notes: unexpected file (a symbolic link)" in msg
    assert f"{os.stat('/etc/passwd').st_size:,} bytes" not in msg  # nothing about the link's target
    assert not any(os.path.basename(p) in bad_names for p in opened), opened


def test_a_linked_predictions_folder_is_refused(tree, tmp_path):
    sub, d = _submission(tree, tmp_path / "model")
    shutil.move(d, tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", d)
    r = _score(tree, sub)
    assert r.exit_code == 3 and f"{d}: a symbolic link, expected a folder inside the submission folder" in r.output, (
        r.output
    )


def test_a_link_to_the_ground_truth_is_not_scored(tree, tmp_path):
    sub, d = _submission(tree, tmp_path / "model")
    for t in range(0, 36, 5):  # the ground truth with its ignored ids (52, 99) zeroed would score 100.00
        gt = np.fromfile(tree / f"sequences/08/voxels/{t:06d}.label", "<u2")
        gt[(gt == 52) | (gt == 99)] = 0
        gt.tofile(tmp_path / f"{t:06d}.label")
        (d / f"{t:06d}.label.gz").unlink()
        os.symlink(tmp_path / f"{t:06d}.label", d / f"{t:06d}.label")
    r = _score(tree, sub)
    assert r.exit_code == 3 and "8 problem(s)" in r.output and "IoU" not in r.output, r.output


def test_regular_predictions_still_score(tree, tmp_path):
    sub, _ = _submission(tree, tmp_path / "model")
    r = _score(tree, sub)
    assert r.exit_code == 0, r.output


# ------------------------------------------------------------------------- gzip streams
def _gz(tmp_path, data: bytes, name="000000.label.gz"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _frame(seed=0):
    return np.random.default_rng(seed).integers(0, 260, (256, 256, 32)).astype("<u2")


@pytest.mark.parametrize(
    "case", ["garbage-deflate", "truncated", "one-byte-more", "one-byte-less", "empty", "trailing-garbage", "bad-crc"]
)
def test_corrupt_gzip_streams_are_format_errors_naming_the_file(tmp_path, case):
    raw = _frame().tobytes()
    good = gzip.compress(raw, mtime=0)
    data = {
        "garbage-deflate": good[:10] + np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "truncated": good[: len(good) // 2],
        "one-byte-more": gzip.compress(raw + b"\0", mtime=0),
        "one-byte-less": gzip.compress(raw[:-1], mtime=0),
        "empty": b"",
        "trailing-garbage": good + b"garbage!",
        "bad-crc": good[:-8] + bytes(4) + good[-4:],
    }[case]
    p = _gz(tmp_path, data)
    with pytest.raises(FormatError, match="000000.label.gz"):
        read_prediction_file(p)


def test_multi_member_gzip_reads_like_gunzip(tmp_path):
    raw = _frame(2)
    b = raw.tobytes()
    p = _gz(tmp_path, gzip.compress(b[:1000], mtime=0) + gzip.compress(b[1000:], mtime=0))
    assert np.array_equal(read_prediction_file(p), raw)


def test_corrupt_stream_is_a_listed_problem(tree, tmp_path):
    sub, d = _submission(tree, tmp_path / "model")
    good = (d / "000000.label.gz").read_bytes()
    (d / "000000.label.gz").write_bytes(good[:10] + bytes(range(256)) * 8)
    (d / "000005.label.gz").write_bytes(good[: len(good) // 3])
    r = _score(tree, sub)
    assert r.exit_code == 3 and "2 problem(s)" in r.output and "corrupt data" in r.output and "truncated" in r.output, (
        r.output
    )


BOMB_MIB = 256


def test_a_gzip_bomb_costs_one_frame_of_memory(tmp_path):
    """256 MiB of zeros in about 256 KB: refused after inflating 4 MiB + 1 byte; peak memory grows by < 32 MB."""
    p = tmp_path / "000000.label.gz"
    c = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    with open(p, "wb") as f:
        for _ in range(BOMB_MIB):
            f.write(c.compress(zeros))
        f.write(c.flush())
    assert p.stat().st_size < 2 << 20
    code = (
        "import resource, sys\n"
        "from occbench.errors import FormatError\n"
        "from occbench.io.predictions import read_prediction_file\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    read_prediction_file({str(p)!r})\n"
        "except FormatError as e:\n"
        "    print('refused:', e)\n"
        "print('grew_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"more than {LABEL_BYTES:,} bytes" in out.stdout, out.stdout
    grew_kb = int(out.stdout.split("grew_kb")[1])
    assert grew_kb < 32 * 1024, out.stdout


def test_convert_and_store_refuse_special_entries(tmp_path):
    store = PredictionStore(tmp_path / "src")
    store.write("08", 0, _frame(3))
    os.mkfifo(store.folder("08") / "000005.label")
    with pytest.raises(FormatError, match="a FIFO"):
        list(store.iter_files())
    os.unlink(store.folder("08") / "000005.label")
    os.symlink(tmp_path / "none", store.folder("08") / "000005.label")
    with pytest.raises(FormatError, match="broken symbolic link"):
        list(store.iter_files())

"""Property-based fuzzing of every reader and of the submission validator: whatever the bytes, only occbench's own
errors (occbench.errors.OccbenchError) come out, never a traceback of another kind; and well-formed input (drawn
among the cases, and as explicit examples) is accepted and read back as written.

Deterministic (derandomized) and bounded: 60 examples a reader, about 10 s in total on a shared 2-core machine.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from occbench.autolabel.storage import PseudoLabelStore
from occbench.datasets import SemanticKITTI
from occbench.datasets.sscbench_kitti360 import kitti360_calibration, read_cam0_to_world
from occbench.errors import OccbenchError
from occbench.evaluation.submission import validate_predictions
from occbench.io.kitti import read_calib, read_poses, read_times, write_calib, write_poses
from occbench.io.mini_manifest import read_manifest
from occbench.io.predictions import PredictionStore, read_prediction_file
from occbench.io.voxels import (
    LABEL_BYTES,
    NUM_VOXELS,
    PACKED_BYTES,
    map_label,
    read_bits,
    read_bits_packed,
    read_invalid_as_stored,
    read_invalid_kitti360,
    read_label,
)
from occbench.results import Results
from occbench.testing import make_semantickitti_tree, tiny_calibration

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TOKENS = [
    "nan",
    "inf",
    "-inf",
    "1e999",
    "0",
    "-0",
    "1.2.3",
    "Tr:",
    "P2:",
    ":",
    "",
    "\x00",
    "é",
    "\ufeff",
    "0x10",
    "1_000",
    "--1",
    "  ",
    "\t",
    "9" * 400,
]


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    path.write_bytes(data)
    return path


REPO = Path(__file__).resolve().parents[1]


def _only_occbench_errors(fn, *args):
    try:
        fn(*args)
    except OccbenchError:
        pass


def _reads_back(fn, path: Path, expected: np.ndarray | None) -> None:
    """``fn(path)`` raises only occbench's errors; where ``expected`` is given (the file is well formed) it must
    accept the file and return exactly those values."""
    try:
        got = fn(path)
    except OccbenchError as e:
        assert expected is None, f"{fn.__name__} refused a well-formed file: {e}"
        return
    if expected is not None:
        assert np.array_equal(np.asarray(got).ravel(), expected), fn.__name__


def _bytes_of(size: int, seed: int, fill: str) -> bytes:
    if fill == "zeros":
        return bytes(size)
    if fill == "ids":  # plausible raw ids, so that a right-sized file gets past the size checks
        return np.random.default_rng(seed).choice(
            np.array([0, 10, 40, 52, 999, 65535], "<u2"), size // 2
        ).tobytes() + b"\0" * (size % 2)
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


SIZES = st.sampled_from(
    [
        0,
        1,
        7,
        PACKED_BYTES - 1,
        PACKED_BYTES,
        PACKED_BYTES + 1,
        NUM_VOXELS,
        LABEL_BYTES - 1,
        LABEL_BYTES,
        LABEL_BYTES + 1,
    ]
)


@FUZZ
@given(size=SIZES, seed=st.integers(0, 2**32 - 1), fill=st.sampled_from(["random", "zeros", "ids"]))
@example(size=PACKED_BYTES, seed=1, fill="random")
@example(size=LABEL_BYTES, seed=2, fill="ids")
@example(size=NUM_VOXELS, seed=3, fill="zeros")
def test_voxel_readers(tmp_path, size, seed, fill):
    data = _bytes_of(size, seed, fill)
    p = _write(tmp_path / "f.bin", data)
    u8 = np.frombuffer(data, np.uint8)
    packed = size == PACKED_BYTES  # a well-formed bit-packed grid, whatever the bits
    labels = np.frombuffer(data, "<u2") if size == LABEL_BYTES else None  # any uint16 ids are a well-formed .label
    flags = u8 if size == NUM_VOXELS and (u8.size == 0 or u8.max() <= 1) else None  # one 0/1 byte per voxel
    expected = {
        read_bits: np.unpackbits(u8) if packed else None,
        read_bits_packed: u8 if packed else None,
        read_label: labels,
        map_label: labels,
        read_prediction_file: labels,
        read_invalid_kitti360: flags,
        read_invalid_as_stored: u8 if packed else flags,
    }
    for reader, want in expected.items():
        _reads_back(reader, p, want)


_RAW = np.where(np.random.default_rng(0).random(NUM_VOXELS) < 0.05, 40, 0).astype("<u2").tobytes()
_GOOD = gzip.compress(_RAW, compresslevel=1, mtime=0)


def _gz_variant(seed: int, how: str) -> bytes:
    rng = np.random.default_rng(seed)
    cut = int(rng.integers(0, len(_GOOD)))
    if how == "good":
        return _GOOD
    if how == "cut":
        return _GOOD[:cut]
    if how == "flip":
        flip = bytearray(_GOOD)
        for i in rng.integers(0, len(_GOOD), 8):
            flip[i] ^= int(rng.integers(1, 256))
        return bytes(flip)
    if how == "header-only":
        return _GOOD[:10] + rng.bytes(200)
    if how == "short":
        return gzip.compress(_RAW[: cut * 20], compresslevel=1, mtime=0)
    if how == "long":
        return _GOOD + gzip.compress(_RAW[: cut + 1], compresslevel=1, mtime=0)
    if how == "two-members":
        k = cut * 20
        return gzip.compress(_RAW[:k], compresslevel=1, mtime=0) + gzip.compress(_RAW[k:], compresslevel=1, mtime=0)
    return _GOOD + rng.bytes(int(rng.integers(1, 64)))  # junk after the stream


@FUZZ
@given(
    seed=st.integers(0, 2**32 - 1),
    how=st.sampled_from(["good", "cut", "flip", "header-only", "short", "long", "two-members", "junk-after"]),
)
@example(seed=0, how="good")
@example(seed=1, how="two-members")
def test_gzip_prediction_reader(tmp_path, seed, how):
    p = _write(tmp_path / "000000.label.gz", _gz_variant(seed, how))
    # one frame compressed whole or in several gzip members (RFC 1952) is well formed
    _reads_back(read_prediction_file, p, np.frombuffer(_RAW, "<u2") if how in ("good", "two-members") else None)


def _mutate(text: str, data: st.DataObject) -> bytes:
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["token", "dup", "drop", "bytes", "truncate", "swap"]))
        i = data.draw(st.integers(0, max(0, len(lines) - 1))) if lines else 0
        if op == "token" and lines:
            toks = lines[i].split(" ")
            toks[data.draw(st.integers(0, len(toks) - 1))] = data.draw(st.sampled_from(TOKENS))
            lines[i] = " ".join(toks)
        elif op == "dup" and lines:
            lines.insert(i, lines[i])
        elif op == "drop" and lines:
            del lines[i]
        elif op == "swap" and len(lines) > 1:
            lines[0], lines[-1] = lines[-1], lines[0]
        elif op == "truncate":
            joined = "\n".join(lines)
            lines = joined[: data.draw(st.integers(0, len(joined)))].splitlines()
    out = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    if data.draw(st.booleans()):
        out += data.draw(st.binary(max_size=16))
    return out


@pytest.fixture(scope="module")
def kitti_texts(tmp_path_factory):
    d = tmp_path_factory.mktemp("texts")
    write_calib(d / "calib.txt", tiny_calibration())
    T = np.tile(np.eye(4), (5, 1, 1))
    T[:, 0, 3] = np.arange(5)
    write_poses(d / "poses.txt", T)
    cam = "".join(f"{i} " + " ".join(f"{x:.6f}" for x in t.reshape(-1)) + "\n" for i, t in enumerate(T))
    return {
        "calib": (d / "calib.txt").read_text(),
        "poses": (d / "poses.txt").read_text(),
        "times": "".join(f"{0.1 * i:.6e}\n" for i in range(5)),
        "cam0_to_world": cam,
    }


_TEXT_READERS = {
    "calib": read_calib,
    "poses": read_poses,
    "times": read_times,
    "cam0_to_world": lambda q: read_cam0_to_world(q, kitti360_calibration()),
}


def _check_well_formed_text(which: str, got) -> None:
    """What the readers return for the unmutated files of ``kitti_texts``."""
    if which == "calib":
        want = tiny_calibration()
        assert sorted(got.P) == sorted(want.P) == ["P0", "P1", "P2", "P3"]
        for k in want.P:
            np.testing.assert_allclose(got.P[k], want.P[k], rtol=0, atol=1e-9)
        np.testing.assert_allclose(got.Tr, want.Tr, rtol=0, atol=1e-9)
    elif which == "times":
        np.testing.assert_allclose(got, 0.1 * np.arange(5), rtol=1e-6, atol=0)
    elif which == "poses":
        np.testing.assert_array_equal(got[:, :3, :3], np.tile(np.eye(3), (5, 1, 1)))
        np.testing.assert_array_equal(got[:, :3, 3], np.c_[np.arange(5), np.zeros(5), np.zeros(5)])
    else:  # LiDAR poses: camera poses moved 0..4 m apart, seen through one fixed rigid mount; every row has a pose
        got, valid = got
        assert valid.tolist() == [True] * 5
        rel = np.linalg.inv(got[0]) @ got
        # R_rect_00 as published (6 decimals) is orthonormal to ~5e-7: distances keep ~1e-6 m at 4 m
        np.testing.assert_allclose(np.linalg.norm(rel[:, :3, 3], axis=1), np.arange(5), rtol=0, atol=1e-5)


@FUZZ
@given(data=st.data(), which=st.sampled_from(["calib", "poses", "times", "cam0_to_world"]))
def test_text_readers(tmp_path, kitti_texts, data, which):
    kind = data.draw(st.sampled_from(["mutated", "bytes", "well-formed"]))
    raw = {
        "mutated": lambda: _mutate(kitti_texts[which], data),
        "bytes": lambda: data.draw(st.binary(max_size=300)),
        "well-formed": lambda: kitti_texts[which].encode(),
    }[kind]()
    p = _write(tmp_path / f"{which}.txt", raw)
    if kind == "well-formed":
        _check_well_formed_text(which, _TEXT_READERS[which](p))
    else:
        _only_occbench_errors(_TEXT_READERS[which], p)


@pytest.mark.parametrize("which", ["calib", "poses", "times", "cam0_to_world"])
def test_text_readers_accept_the_well_formed_files(tmp_path, kitti_texts, which):
    _check_well_formed_text(which, _TEXT_READERS[which](_write(tmp_path / f"{which}.txt", kitti_texts[which].encode())))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)
RESULTS = json.loads((REPO / "leaderboards/results/mini-val-voxformer-sim-onboard.json").read_text())
FINITE_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)
MINI_MANIFEST = {"splits": {"train": ["00"], "val": ["08"]}, "onboard": ["sscnet-sim"], "sensors": {}}


def _set_random_path(doc, data: st.DataObject):
    cur = doc
    for _ in range(data.draw(st.integers(0, 4))):
        if isinstance(cur, dict) and cur:
            k = data.draw(st.sampled_from(sorted(cur)))
            if not isinstance(cur[k], (dict, list)) or data.draw(st.booleans()):
                cur[k] = data.draw(JSON)
                return doc
            cur = cur[k]
        elif isinstance(cur, list) and cur:
            cur = cur[data.draw(st.integers(0, len(cur) - 1))]
    if isinstance(cur, dict):
        cur[data.draw(st.text(max_size=8))] = data.draw(JSON)
    return doc


def read_results(path: Path) -> dict:
    return Results.read(path).to_dict()


def _read_json_documents(tmp_path: Path, results: bytes, mini: bytes, pl: bytes):
    return (
        read_results(_write(tmp_path / "r.json", results)),
        read_manifest(_write(tmp_path / "mini.json", mini).parent),
        PseudoLabelStore(_write(tmp_path / "pl" / "manifest.json", pl).parent).read_manifest(),
    )


def test_results_and_manifest_readers_accept_well_formed_documents(tmp_path):
    docs = (RESULTS, MINI_MANIFEST, {"source": "onboard:noisy", "frames": [1, 2]})
    assert _read_json_documents(tmp_path, *(json.dumps(d).encode() for d in docs)) == docs


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["mutated", "json", "bytes", "well-formed"]))
def test_results_and_manifest_readers(tmp_path, data, kind):
    if kind == "well-formed":  # the committed results file with its numbers redrawn; manifests of drawn content
        doc = json.loads(json.dumps(RESULTS))
        doc["metrics"]["ssc"]["51.2"]["miou"] = data.draw(st.floats(0, 1))
        names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,7}", fullmatch=True).filter(lambda n: ".." not in n)
        mini = {**MINI_MANIFEST, "onboard": data.draw(st.lists(names, max_size=3, unique=True))}  # plain, distinct
        pl = data.draw(st.dictionaries(st.text(max_size=8), FINITE_JSON, max_size=4))
        got = _read_json_documents(tmp_path, *(json.dumps(d).encode() for d in (doc, mini, pl)))
        assert got == (doc, mini, pl)
        return
    if kind == "mutated":
        text = json.dumps(_set_random_path(json.loads(json.dumps(RESULTS)), data), allow_nan=True).encode()
    elif kind == "json":
        text = json.dumps(data.draw(JSON)).encode()
    else:
        text = data.draw(st.binary(max_size=200))
    _only_occbench_errors(read_results, _write(tmp_path / "r.json", text))
    _write(tmp_path / "mini.json", text)
    _only_occbench_errors(read_manifest, tmp_path)
    _write(tmp_path / "pl" / "manifest.json", text)
    _only_occbench_errors(PseudoLabelStore(tmp_path / "pl").read_manifest)


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory):
    return make_semantickitti_tree(tmp_path_factory.mktemp("fz") / "kitti", {"08": 6}, onboard={"noisy": 0.2}, seed=9)


_GOOD_GZ = b""
ENTRY = st.sampled_from(["good", "good-gz", "bytes", "dir", "link-in", "link-out", "broken-link", "fifo", "gz-junk"])
NAMES = st.sampled_from(["000000.label", "000000.label.gz", "000005.label", "000005.label.gz", "000003.label", "x.txt"])


@FUZZ
@given(
    entries=st.lists(st.tuples(NAMES, ENTRY, st.integers(0, 2**16)), max_size=5),
    seq_dir=st.sampled_from(["dir", "link", "file", "complete"]),
)
@example(entries=[], seq_dir="complete")
@example(entries=[("000000.label", "good-gz", 0)], seq_dir="complete")
def test_submission_validator(tmp_path, small_tree, entries, seq_dir):
    sub = tmp_path / "sub"
    shutil.rmtree(sub, ignore_errors=True)
    d = sub / "sequences" / "08" / "predictions"
    if seq_dir == "complete":  # well formed: one prediction per labelled scan, each plain or gzipped
        d.mkdir(parents=True)
        ds = SemanticKITTI(small_tree, "val", onboard="noisy")
        gz = {name for name, _, _ in entries}
        scans = ds.sequences[0].labelled_frames
        for scan in scans:
            data = (small_tree / f"predictions/noisy/sequences/08/predictions/{scan:06d}.label").read_bytes()
            if f"{scan:06d}.label.gz" in gz or f"{scan:06d}.label" in gz:
                (d / f"{scan:06d}.label.gz").write_bytes(gzip.compress(data, compresslevel=1, mtime=0))
            else:
                (d / f"{scan:06d}.label").write_bytes(data)
        rep = validate_predictions(ds, PredictionStore(sub))
        assert rep.ok and rep.checked == len(scans) > 0, rep.summary()
        return
    if seq_dir == "dir":
        d.mkdir(parents=True)
    elif seq_dir == "link":
        (sub / "sequences" / "08").mkdir(parents=True)
        os.symlink(small_tree / "predictions/noisy/sequences/08/predictions", d)
    else:
        _write(sub / "sequences" / "08", b"x")
    good = (small_tree / "predictions/noisy/sequences/08/predictions/000000.label").read_bytes()
    global _GOOD_GZ
    _GOOD_GZ = _GOOD_GZ or gzip.compress(good, compresslevel=1, mtime=0)
    if seq_dir == "dir":
        for name, kind, seed in entries:
            p = d / name
            if p.exists() or p.is_symlink():
                continue
            if kind == "good":
                p.write_bytes(good)
            elif kind == "good-gz":
                p.write_bytes(_GOOD_GZ)
            elif kind == "bytes":
                p.write_bytes(_bytes_of(seed % 64, seed, "random"))
            elif kind == "dir":
                p.mkdir()
            elif kind == "link-in":
                os.symlink(small_tree / "sequences/08/voxels/000000.label", p)
            elif kind == "link-out":
                os.symlink("/dev/null", p)
            elif kind == "broken-link":
                os.symlink(tmp_path / "nowhere", p)
            elif kind == "fifo":
                os.mkfifo(p)
            else:
                p.write_bytes(_GOOD_GZ[:40] + bytes(seed % 50))
    ds = SemanticKITTI(small_tree, "val", onboard="noisy")
    try:
        validate_predictions(ds, PredictionStore(sub))
    except OccbenchError:
        pass

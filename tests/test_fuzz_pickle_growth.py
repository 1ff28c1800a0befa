"""Bounded decoding: pickles that grow their data by repetition (calling an admitted global many times on one
remembered argument, or on its own output) are refused before they allocate, naming the file; valid pickles of
every protocol, MonoScene frame size included, still load."""

from __future__ import annotations

import pickle
import random
import struct
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.errors import FormatError
from occbench.io.safe_pickle import loads_pickle

BUDGET_SLACK = 64 << 20  # what a pickle may build beyond 4 x its size (the documented bound)

P = pickle


def _u(s: str) -> bytes:  # BINUNICODE
    b = s.encode()
    return P.BINUNICODE + struct.pack("<I", len(b)) + b


def _bytes(b: bytes) -> bytes:  # BINBYTES (protocol 3)
    return P.BINBYTES + struct.pack("<I", len(b)) + b


def _put(i: int) -> bytes:
    return P.LONG_BINPUT + struct.pack("<I", i)


def _get(i: int) -> bytes:
    return P.LONG_BINGET + struct.pack("<I", i)


G_ENCODE = P.GLOBAL + b"_codecs\nencode\n"
G_RECON = P.GLOBAL + b"numpy._core.multiarray\n_reconstruct\n"
G_NDARRAY = P.GLOBAL + b"numpy\nndarray\n"
G_DTYPE = P.GLOBAL + b"numpy\ndtype\n"
G_SET = P.GLOBAL + b"builtins\nset\n"
HEAD = P.PROTO + b"\x03"


def hex_doubling(times: int) -> bytes:
    """encode(encode(...encode(16 bytes, 'hex')..., 'hex'), 'hex'): 16 * 2**times bytes from a few hundred."""
    body = _bytes(b"0123456789abcdef")
    for _ in range(times):
        body = _get(0) + body + _u("hex") + P.TUPLE2 + P.REDUCE
    return HEAD + G_ENCODE + _put(0) + P.POP + body + P.STOP


def repeated_latin1(size: int, times: int) -> bytes:
    """One remembered string of ``size`` characters encoded ``times`` times into a list (each call a new copy)."""
    call = G_ENCODE + _get(0) + _u("latin1") + P.TUPLE2 + P.REDUCE
    return HEAD + _u("a" * size) + _put(0) + P.POP + P.MARK + call * times + P.LIST + P.STOP


def huge_reconstruct(n: int) -> bytes:
    """_reconstruct(ndarray, (n,), b'b'): numpy allocates the shape it is given."""
    return (
        HEAD
        + G_RECON
        + G_NDARRAY
        + P.BININT
        + struct.pack("<i", n)
        + P.TUPLE1
        + _bytes(b"b")
        + P.TUPLE3
        + P.REDUCE
        + P.STOP
    )


def ndarray_called(n: int) -> bytes:
    """ndarray((n,)) through REDUCE."""
    return HEAD + G_NDARRAY + P.BININT + struct.pack("<i", n) + P.TUPLE1 + P.TUPLE1 + P.REDUCE + P.STOP


def repeated_build(size: int, times: int) -> bytes:
    """Many empty arrays each given, by BUILD, one remembered string of ``size`` characters as data (a str is
    copied into every array)."""
    arr = (
        G_RECON
        + G_NDARRAY
        + P.BININT1
        + b"\x00"
        + P.TUPLE1
        + _bytes(b"b")
        + P.TUPLE3
        + P.REDUCE
        + P.MARK
        + P.BININT1
        + b"\x01"
        + P.BININT
        + struct.pack("<i", size)
        + P.TUPLE1
        + _get(1)
        + P.NEWFALSE
        + _get(0)
        + P.TUPLE
        + P.BUILD
    )
    dt = G_DTYPE + _u("u1") + P.NEWFALSE + P.NEWTRUE + P.TUPLE3 + P.REDUCE + _put(1) + P.POP
    return HEAD + _u("a" * size) + _put(0) + P.POP + dt + P.MARK + arr * times + P.LIST + P.STOP


def repeated_set(size: int, times: int) -> bytes:
    items = P.MARK + b"".join(P.BININT + struct.pack("<i", i) for i in range(size)) + P.LIST
    call = G_SET + _get(0) + P.TUPLE1 + P.REDUCE
    return HEAD + items + _put(0) + P.POP + P.MARK + call * times + P.LIST + P.STOP


def _sanity():  # the hand-built pickles mean what they say (small versions load under plain pickle)
    assert len(pickle.loads(hex_doubling(3))) == 16 * 8
    assert pickle.loads(repeated_latin1(5, 3)) == [b"aaaaa"] * 3
    assert pickle.loads(huge_reconstruct(7)).shape == (7,)
    assert pickle.loads(ndarray_called(5)).shape == (5,)
    out = pickle.loads(repeated_build(6, 2))
    assert len(out) == 2 and out[1].tobytes() == b"aaaaaa"
    assert pickle.loads(repeated_set(4, 2)) == [{0, 1, 2, 3}] * 2


def test_hand_built_pickles_are_what_they_say():
    _sanity()


GROWING = {
    "hex x34 (the 635-byte case: 16 * 2**34 bytes)": lambda: hex_doubling(34),
    "hex x26": lambda: hex_doubling(26),
    "1 MB string encoded 400 times": lambda: repeated_latin1(1 << 20, 400),
    "_reconstruct of 2**31 elements": lambda: huge_reconstruct(2**31 - 1),
    "ndarray((2**31,)) called": lambda: ndarray_called(2**31 - 1),
    "1 MB str data BUILT into 300 arrays": lambda: repeated_build(1 << 20, 300),
    "set of 100k items built 2000 times": lambda: repeated_set(100_000, 2000),
}


@pytest.mark.parametrize("name", list(GROWING))
def test_growing_pickle_is_refused_without_allocating(name):
    data = GROWING[name]()
    assert len(data) < 4 << 20
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=r"frame\.pkl: expected "):
            loads_pickle(data, "seq/frame.pkl")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * len(data) + BUDGET_SLACK + (32 << 20), f"{name}: {peak / 2**20:.0f} MiB allocated"


def test_random_growth_chains_never_exceed_the_budget():
    """Random mixtures of the above (seeded): each either loads within the budget or is refused; none allocates
    more."""
    rng = random.Random(31)
    for _ in range(40):
        kind = rng.choice(["hex", "latin1", "build", "set"])
        if kind == "hex":
            data = hex_doubling(rng.randint(1, 40))
        elif kind == "latin1":
            data = repeated_latin1(rng.choice([10, 1 << 16, 1 << 20]), rng.randint(1, 300))
        elif kind == "build":
            data = repeated_build(rng.choice([10, 1 << 16, 1 << 20]), rng.randint(1, 200))
        else:
            data = repeated_set(rng.choice([10, 10_000]), rng.randint(1, 3000))
        tracemalloc.start()
        try:
            try:
                loads_pickle(data, "f.pkl")
            except FormatError as e:
                assert "f.pkl" in str(e)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 4 * len(data) + BUDGET_SLACK + (32 << 20), (kind, len(data), peak)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_monoscene_sized_frames_still_load(protocol):
    rng = np.random.default_rng(protocol)
    obj = {
        "y_pred": rng.integers(0, 20, (256, 256, 32)).astype(np.uint16),
        "fov_mask_1": rng.random(256 * 256 * 32) < 0.5,
        "target": rng.integers(0, 20, (256, 256, 32)).astype(np.uint8),
        "cam_k": np.eye(3),
        "name": "000000",
    }
    back = loads_pickle(pickle.dumps(obj, protocol=protocol))
    for k, v in obj.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(back[k], v)
            assert back[k].dtype == v.dtype
        else:
            assert back[k] == v


def test_growing_pickle_through_convert_is_a_problem_of_that_file(tmp_path):
    src = tmp_path / "kitti" / "08"
    src.mkdir(parents=True)
    (src / "000000.pkl").write_bytes(hex_doubling(34))
    r = CliRunner().invoke(
        main,
        [
            "convert",
            str(tmp_path),
            str(tmp_path / "out"),
            "--from",
            "monoscene-pkl",
            "--dataset",
            "semantickitti",
            "-q",
        ],
    )
    assert r.exit_code == 3 and "000000.pkl" in r.output and "admitted for (str, 'latin1') only" in r.output
    assert not (tmp_path / "out" / "sequences").exists()


@pytest.mark.parametrize("shape", [(2**27,), (2**40,), (256, 256, 2**20)])
def test_npy_header_cannot_ask_for_more_than_its_data(tmp_path, shape):
    """np.load allocates the shape a .npy header announces before reading the data: a 200-byte file could ask
    for terabytes. The readers check the header against the bytes present first."""
    import io

    from numpy.lib import format as npy

    from occbench.io.formats import load_npy_bytes

    buf = io.BytesIO()
    npy.write_array_header_1_0(buf, {"descr": "<u8", "fortran_order": False, "shape": shape})
    buf.write(b"\0" * 100)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=r"x\.npy: expected a \.npy array.*bytes of data"):
            load_npy_bytes(buf.getvalue(), "x.npy")
        assert tracemalloc.get_traced_memory()[1] < 1 << 20
    finally:
        tracemalloc.stop()
    for good in (
        np.arange(24, dtype="<f4").reshape(2, 3, 4),
        np.asfortranarray(np.ones((3, 4), np.uint8)),
        np.arange(3, dtype=">u2"),
        np.zeros((0, 5)),
    ):
        b = io.BytesIO()
        np.save(b, good)
        back = load_npy_bytes(b.getvalue(), "good.npy")
        assert back.dtype == good.dtype and back.shape == good.shape and (back == good).all()


def test_a_bytearray_declared_beyond_the_file_is_refused_before_allocating():
    """BYTEARRAY8 (protocol 5): 14 bytes asking for 8 GiB took 8.4 GB of memory before it read a byte."""
    from occbench.io.safe_pickle import loads_pickle

    for n in (2**33, 2**62):
        bad = b"\x80\x05\x96" + struct.pack("<Q", n) + b"abc."
        with pytest.raises(FormatError, match="refused before allocating") as e:
            loads_pickle(bad, "x.pkl")
        assert "x.pkl" in str(e.value)
    short = b"\x80\x05\x96" + struct.pack("<Q", 10) + b"abc"  # within the budget, but the data is not there
    with pytest.raises(FormatError, match="before the end"):
        loads_pickle(short, "x.pkl")


def test_protocol_5_arrays_and_bytearrays_still_load():
    from occbench.io.safe_pickle import loads_pickle

    a = np.arange(1000, dtype=np.uint16).reshape(10, 100)
    data = pickle.dumps({"y_pred": a, "raw": bytearray(b"xyz")}, protocol=5)
    assert pickle.BYTEARRAY8 in data
    got = loads_pickle(data, "ok.pkl")
    assert np.array_equal(got["y_pred"], a) and got["raw"] == bytearray(b"xyz")

"""The restricted unpickler: numpy arrays and plain containers load; anything else is refused and never runs."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.io.safe_pickle import UnsafePickleError, load_pickle, loads_pickle


class _TouchMarker:
    """Unpickling this with ``pickle.load`` runs ``os.system("touch <marker>")``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _TouchViaEval(_TouchMarker):
    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w').close()",))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_numpy_arrays_scalars_and_containers_of_every_protocol_load(protocol):
    obj = {
        "y_pred": np.arange(24, dtype=np.uint16).reshape(2, 3, 4),
        "fov_mask_1": np.ones(8, bool),
        "cam_k": np.eye(3),
        "f": np.asfortranarray(np.ones((2, 3), np.float32)),
        "strided": np.arange(10)[::3],
        "be": np.arange(3, dtype=">u2"),
        "scalar": np.float32(1.5),
        "n": np.int64(7),
        "dt": np.dtype("u2"),
        "list": [1, 2.5, "a", b"b", None, True],
        "tuple": (1, (2,)),
        "set": {1, 2},
        "fs": frozenset({3}),
    }
    data = pickle.dumps(obj, protocol=protocol)
    back, ref = loads_pickle(data), pickle.loads(data)  # the same objects as an unrestricted load
    assert back.keys() == obj.keys()
    for k, v in ref.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(back[k], v)
            assert back[k].dtype == v.dtype and back[k].shape == v.shape
        else:
            assert back[k] == v and type(back[k]) is type(v)


@pytest.mark.parametrize("evil", [_TouchMarker, _TouchViaEval])
@pytest.mark.parametrize("protocol", [0, 2, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_crafted_pickle_runs_no_code(tmp_path, evil, protocol):
    marker = tmp_path / "marker"
    payload = {"y_pred": np.zeros((256, 256, 32), np.uint16), "target": evil(marker)}
    data = pickle.dumps(payload, protocol=protocol)
    pickle.loads(pickle.dumps(evil(tmp_path / "proof"), protocol=protocol))  # the payload does run under pickle.loads
    assert (tmp_path / "proof").exists()
    path = tmp_path / "08" / "000000.pkl"
    path.parent.mkdir()
    path.write_bytes(data)
    refused = r"posix\.system" if evil is _TouchMarker else r"(builtins|__builtin__)\.eval"
    with pytest.raises(
        UnsafePickleError,
        match=rf"000000.pkl: expected a pickle of numpy arrays and plain containers "
        rf"only, found a reference to {refused} \(refused, not executed\)",
    ):
        load_pickle(path)
    assert not marker.exists()
    # through the converter: listed as a problem of that file, nothing written, nothing run
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
    assert r.exit_code == 3 and "refused, not executed" in r.output and "000000.pkl" in r.output
    assert not marker.exists() and not (tmp_path / "out" / "sequences").exists()


def test_hand_written_global_and_persistent_id_are_refused(tmp_path):
    marker = tmp_path / "m"
    proto0 = f"cos\nsystem\n(Vtouch {marker}\ntR.".encode()  # GLOBAL os.system, protocol 0
    with pytest.raises(UnsafePickleError, match=r"os\.system"):
        loads_pickle(proto0, "x.pkl")
    with pytest.raises(ValueError, match="x.pkl: expected a readable pickle"):
        loads_pickle(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00\x8c\x01a\x94Q.", "x.pkl")  # BINPERSID
    with pytest.raises(ValueError, match="x.pkl: expected a readable pickle"):
        loads_pickle(b"\x80\x04not a pickle", "x.pkl")
    assert not marker.exists()


def test_oversized_and_special_files_are_refused_before_reading(tmp_path):
    big = tmp_path / "big.pkl"
    big.write_bytes(pickle.dumps({"y_pred": np.zeros(100, np.uint8)}))
    with pytest.raises(ValueError, match=r"big.pkl: expected a pickle of at most 10 bytes"):
        load_pickle(big, max_bytes=10)
    link = tmp_path / "link.pkl"
    link.symlink_to(big)
    with pytest.raises(ValueError, match=r"link.pkl: expected a regular file \(pickle\), found a link or special file"):
        load_pickle(link)

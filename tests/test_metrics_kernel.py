"""The compiled (numba) counting kernel and the numpy kernel give identical states and errors."""

from __future__ import annotations

import numpy as np
import pytest

from occbench.errors import FormatError
from occbench.labels import load_label_map
from occbench.metrics import PROTOCOLS, FrameArrays, SSCMetric, _kernel
from occbench.metrics.testing import synthetic_frame


def test_numba_is_used():
    assert _kernel.AVAILABLE  # numba is a declared dependency: its absence must not go unnoticed


@pytest.mark.parametrize("proto", ["semantickitti-ssc", "sscbench-kitti360-ssc"])
def test_compiled_equals_numpy_train_ids(proto):
    C = PROTOCOLS[proto].num_classes
    rng = np.random.default_rng(3)
    fast, slow = SSCMetric(proto), SSCMetric(proto)
    slow.use_compiled = False
    for _ in range(3):
        p, g, inv = synthetic_frame(rng)
        p = np.minimum(p, C - 1).astype(np.uint8)
        g = np.where(g == 255, 255, np.minimum(g, C - 1)).astype(np.uint8)
        for m in (fast, slow):
            m.update_frame(p, FrameArrays(g, inv))
            m.update_frame(p, FrameArrays(g))
            m.update_frame(p, FrameArrays(g, np.packbits(inv.reshape(-1))))
    assert np.array_equal(fast._counts, slow._counts) and fast.n_frames == slow.n_frames == 9
    assert fast.compute() == slow.compute()


def test_compiled_equals_numpy_raw_ids():
    lm = load_label_map()
    rng = np.random.default_rng(4)
    fast, slow = SSCMetric(), SSCMetric()
    slow.use_compiled = False
    for _ in range(3):
        p, g, inv = synthetic_frame(rng)
        pr, gr = lm.inv_lut[p], lm.inv_lut[np.where(g == 255, 0, g)]
        gr[g == 255] = 52
        gr[0, 0, :4] = 1  # outlier -> ignore
        for m in (fast, slow):
            m.update_frame(pr, FrameArrays(gr, np.packbits(inv.reshape(-1)), labels="raw"))
            m.update_frame(pr, FrameArrays(gr, labels="raw"))
    assert np.array_equal(fast._counts, slow._counts)


def test_compiled_path_errors_leave_state_untouched():
    rng = np.random.default_rng(5)
    p, g, inv = synthetic_frame(rng)
    m = SSCMetric()
    m.update_frame(p, FrameArrays(g, inv))
    before = m._counts.copy()
    bad = p.copy()
    idx = np.flatnonzero((g.reshape(-1) != 255) & (inv.reshape(-1) == 0))[:3]
    bad.reshape(-1)[idx] = 20
    with pytest.raises(FormatError, match=r"values \[20\] at 3 evaluated voxels"):
        m.update_frame(bad, FrameArrays(g, inv))
    assert np.array_equal(m._counts, before) and m.n_frames == 1
    gbad = g.copy()
    gbad[0, 0, 0] = 30
    with pytest.raises(FormatError, match="30"):
        m.update_frame(p, FrameArrays(gbad))
    assert np.array_equal(m._counts, before)


def test_checked_raw_frames_refuse_unpredictable_ids_anywhere_and_add_good_ones():
    """``add_checked_raw`` (a submission's ids checked inside the counting pass) refuses a frame exactly when the
    separate id check (``count_unmapped``, every voxel) finds an unpredictable raw id: at an evaluated voxel, at an
    invalid one, at one whose ground truth is ignore, at one whose ground truth is empty. A refused or malformed
    frame leaves the state untouched; a good one adds what ``update_frame`` adds."""
    from occbench.evaluation.submission import _prediction_lut

    lm = load_label_map()
    rng = np.random.default_rng(6)
    checked, plain = SSCMetric(), SSCMetric()
    p, g, inv = synthetic_frame(rng)
    pr, gr = lm.inv_lut[p], lm.inv_lut[np.where(g == 255, 0, g)]
    gr[g == 255] = 52  # ignore
    packed = np.packbits(inv.reshape(-1))
    frame = FrameArrays(gr, packed, labels="raw")
    flat_g, flat_inv = gr.reshape(-1), inv.reshape(-1)
    where = {
        "evaluated": np.flatnonzero((flat_g != 52) & (flat_g != 0) & (flat_inv == 0)),
        "invalid": np.flatnonzero(flat_inv != 0),
        "ignored": np.flatnonzero(flat_g == 52),
        "empty": np.flatnonzero((flat_g == 0) & (flat_inv == 0)),
    }
    lut = _prediction_lut(lm)
    for label, idx in where.items():
        assert idx.size, label
        for bad_id in (52, 1, 65535):  # maps to ignore; an outlier (ignore); unknown to the label map
            bad = pr.copy()
            bad.reshape(-1)[idx[: 1 + len(label)]] = bad_id
            flat = _kernel.readonly(bad.reshape(-1))
            assert _kernel.count_unmapped(flat, _kernel.words(flat), lut, lm.num_classes) > 0
            assert checked.add_checked_raw(bad, frame) is False, (label, bad_id)
            assert checked.n_frames == 0 and not checked._counts.any()
    gbad = gr.copy()
    gbad.reshape(-1)[where["evaluated"][0]] = 65535  # a malformed ground truth, no unpredictable prediction id
    assert checked.add_checked_raw(pr, FrameArrays(gbad, packed, labels="raw")) is False
    assert checked.n_frames == 0 and not checked._counts.any()
    for _ in range(2):
        assert checked.add_checked_raw(pr, frame) is True
        plain.update_frame(pr, frame)
    assert np.array_equal(checked._counts, plain._counts) and checked.n_frames == plain.n_frames == 2

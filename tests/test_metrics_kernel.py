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

"""The city map's counter stores runs in chunks and merges them chunk by chunk (memory): results must not
depend on the chunk size, including voxels whose entries straddle two chunks."""
from __future__ import annotations

import numpy as np
import pytest

from occbench.metrics import CityMapMetric, TemporalConsistency
from occbench.metrics.citymap import SparseCounter, _merge, _merge_runs, _reduce_sorted
from occbench.metrics.testing import synthetic_frame


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000, 1 << 22])
def test_sparse_counter_any_chunk_size_equals_unique(chunk):
    rng = np.random.default_rng(21)
    items = rng.integers(0, 3000, 25000).astype(np.uint64) << np.uint64(3)
    c = SparseCounter(buffer_items=997, chunk_items=chunk)
    for part in np.array_split(items, 41):
        c.add(part)
    uk, un = np.unique(items, return_counts=True)
    chunks = c.chunks()
    assert all(k.size <= chunk for k, _ in chunks) and c.n_entries == uk.size
    k, n = c.finalize()
    np.testing.assert_array_equal(k, uk)
    np.testing.assert_array_equal(n, un)
    assert n.dtype == np.uint32 and k.dtype == np.uint64
    other = SparseCounter(buffer_items=50, chunk_items=max(1, chunk // 2))
    other.add(items[:777])
    c.merge(other)
    uk2, un2 = np.unique(np.concatenate((items, items[:777])), return_counts=True)
    k2, n2 = c.finalize()
    np.testing.assert_array_equal(k2, uk2)
    np.testing.assert_array_equal(n2, un2)


def test_merge_runs_equals_sort_and_reduce():
    rng = np.random.default_rng(22)
    for na, nb, chunk in ((0, 0, 4), (0, 9, 4), (10, 0, 3), (1000, 300, 64), (500, 500, 1), (2000, 2000, 5000)):
        ka = np.unique(rng.integers(0, 3 * max(na, 1), na).astype(np.uint64))
        kb = np.unique(rng.integers(0, 3 * max(nb, 1), nb).astype(np.uint64))
        ca = rng.integers(1, 50, ka.size).astype(np.uint32)
        cb = rng.integers(1, 50, kb.size).astype(np.uint32)
        split = lambda k, c: [(k[s:s + 7], c[s:s + 7]) for s in range(0, k.size, 7)]  # noqa: E731
        run = _merge_runs(split(ka, ca), split(kb, cb), chunk)
        keys = np.concatenate((ka, kb))
        o = np.argsort(keys, kind="stable")
        rk, rc = _reduce_sorted(keys[o], np.concatenate((ca, cb))[o])
        got_k = np.concatenate([k for k, _ in run]) if run else np.zeros(0, np.uint64)
        got_c = np.concatenate([c for _, c in run]) if run else np.zeros(0, np.uint32)
        np.testing.assert_array_equal(got_k, rk)
        np.testing.assert_array_equal(got_c, rc)
        assert all(k.size <= chunk for k, _ in run)
        mk, mc = _merge((ka, ca), (kb, cb))
        np.testing.assert_array_equal(mk, rk)
        np.testing.assert_array_equal(mc, rc)


def test_city_map_and_consistency_do_not_depend_on_chunks():
    rng = np.random.default_rng(23)
    frames = [synthetic_frame(rng) for _ in range(2)]
    poses = []
    for t in range(2):
        T = np.eye(4)
        c, s = np.cos(0.3 * t), np.sin(0.3 * t)
        T[:2, :2] = [[c, -s], [s, c]]
        T[:3, 3] = (3.1 * t, -1.7 * t, 0.1 * t)
        poses.append(T)
    results = []
    for chunk in (1 << 22, 4097, 977):
        city, tc = CityMapMetric(), TemporalConsistency()
        city.counter = SparseCounter(buffer_items=300_000, chunk_items=chunk)
        tc.counter = SparseCounter(buffer_items=300_000, chunk_items=chunk)
        for (p, g, inv), T in zip(frames, poses):
            city.add_frame(p, g, T, inv)
            tc.add_frame(p, g, T, inv)
        vox, gm, pm = city.maps()
        assert vox.size == gm.size == pm.size and np.all(vox[1:] > vox[:-1])
        results.append((city.confusion(), vox, gm, pm, tc.compute()))
    for conf, vox, gm, pm, tcr in results[1:]:
        np.testing.assert_array_equal(conf, results[0][0])
        np.testing.assert_array_equal(vox, results[0][1])
        np.testing.assert_array_equal(gm, results[0][2])
        np.testing.assert_array_equal(pm, results[0][3])
        np.testing.assert_equal(tcr, results[0][4])  # NaN-aware

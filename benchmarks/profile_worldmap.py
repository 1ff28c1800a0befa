"""CPU profile of the world map state alone: one :class:`WorldMapState` planned for the first N poses of sequence 08,
the frames of ``bench_evaluate_cli.py`` (8 distinct, ``real`` or ``dense``), counted in the caller's thread; prints
the CPU seconds of each compiled kernel, of adding the frames, of ``settle`` and ``reduce``.

    python benchmarks/profile_worldmap.py real 100
"""

import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from bench_evaluate_cli import _frames, default_poses_dir

import occbench.metrics.worldmap as W
from occbench.io.kitti import read_calib, read_poses
from occbench.metrics import _worldkernels as K

density, n = sys.argv[1], int(sys.argv[2])
d = default_poses_dir()
poses = read_poses(d / "poses.txt", read_calib(d / "calib.txt"))[:n]
fr = _frames(density, 8)
T = collections.Counter()
for name in [
    "prepare",
    "accumulate",
    "evict",
    "seal_sizes",
    "seal_fill",
    "gather_records",
    "reduce_records",
    "keyset_add",
]:
    f = getattr(K, name)

    def wrap(*a, _f=f, _n=name, **k):
        t = time.process_time()
        r = _f(*a, **k)
        T[_n] += time.process_time() - t
        return r

    setattr(K, name, wrap)
st = W.WorldMapState("semantickitti-ssc")
t0 = time.process_time()
st.expect(poses)
T["expect"] = time.process_time() - t0
t0 = time.process_time()
for i in range(n):
    p, g, inv = fr[i % 8]
    st.add(p, g, poses[i], np.packbits(inv))
T["add_total"] = time.process_time() - t0
t0 = time.process_time()
st.settle()
T["settle"] = time.process_time() - t0
t0 = time.process_time()
st.reduce()
T["reduce"] = time.process_time() - t0
print(
    density,
    n,
    {k: round(v, 2) for k, v in T.items()},
    "ms/frame add:",
    round(1000 * T["add_total"] / n, 1),
    "finalised",
    st.finalised_early,
    "records MB",
    st.record_bytes / 1e6,
)

"""Throughput of region-centric voting on occbench-mini val: the reference, the exact engine and the approximate
lattice engine (numba and torch backends), side by side in one process.

Data: sequence 08 of occbench-mini val (``--root``, else the default mini in the data cache,
``$OCCBENCH_DATA/mini-v<generator version>``, if generated; predictions of ``voxformer-sim``, camera weights, the
default config otherwise). Without mini the synthetic scene of ``occbench_baselines.voting.synthetic`` seen from real
sequence-08 poses is used (and said so). Targets: every 5th scan (the labelled frames), as on real data.
One CPU thread (``torch.set_num_threads(1)``; numba kernels are single-threaded).

Reported per implementation and ``n``: targets/s in the steady state (the window slides by 5 scans per
target: 5 scans enter, 5 leave), wall-clock and CPU time of the process (the CPU rate is what one core gives when
the machine is shared), the time of the first target (builds the whole window), and the projected
time for real sequence 08 (815 labelled targets of 4,071 scans): ``first + 814 / steady`` for the engines,
``815 / rate`` for the reference; the prediction reads (``frames``, measured separately, once per scan for
the engines, ``2n+1`` per target for the reference) are added on top.

    python benchmarks/bench_voting.py [--root ROOT] [--n 5 10 25] [--targets 10] [--impls exact-numba lattice-numba ...]
    pytest benchmarks/bench_voting.py --benchmark-only -s      # the same measurements through pytest-benchmark
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from occbench.io.kitti import read_calib, read_poses
from occbench_baselines.voting import SensorWeights, VotingConfig, _exact_kernels, make_engine, vote_frame_reference
from occbench_baselines.voting.synthetic import SyntheticSequence

SEQ08 = Path(__file__).resolve().parents[1] / "tests" / "data" / "kitti-odometry" / "sequences" / "08"
SEQ08_TARGETS, SEQ08_SCANS = 815, 4071  # real sequence 08: labelled (every 5th) scans, all scans
STEP = 5


def mini_root(root: str | Path | None = None) -> Path | None:
    if root is not None:
        return Path(root)
    from occbench.synth.cache import default_mini_root

    r = default_mini_root()
    return r if (r / "mini.json").is_file() else None


class Data:
    """Sequence 08 of mini val (predictions read once, kept in memory) or the synthetic fallback."""

    def __init__(self, root: Path | None, model: str = "voxformer-sim", max_scans: int | None = None):
        if root is not None:
            from occbench.datasets import OccbenchMini

            ds = OccbenchMini(root, split="val", onboard=model, generate=False, progress=False)
            seq = ds["08"]
            self.name = f"mini-val-08 ({model})"
            self.calib, self.poses = seq.calib, seq.poses
            self.image_size = tuple(seq.image_size)
            self._read = seq.prediction
        else:
            num = max_scans or 120
            self.calib = read_calib(SEQ08 / "calib.txt")
            self.poses = read_poses(SEQ08 / "poses.txt", self.calib)[1000 : 1000 + num]
            syn = SyntheticSequence(self.poses, seed=1)
            self.name = "synthetic scene, real seq-08 poses 1000.. (mini not found)"
            self.image_size = (1220, 370)
            self._read = syn.noisy
        self.num = len(self.poses) if max_scans is None else min(max_scans, len(self.poses))
        self.poses = self.poses[: self.num]
        self._cache: dict[int, np.ndarray] = {}
        self.read_s: list[float] = []

    def frames(self, i: int) -> np.ndarray:
        if i not in self._cache:
            t0 = time.perf_counter()
            self._cache[i] = np.ascontiguousarray(self._read(i), dtype=np.uint8)
            self.read_s.append(time.perf_counter() - t0)
        return self._cache[i]

    def preload(self) -> None:
        for i in range(self.num):
            self.frames(i)

    @property
    def read_per_scan(self) -> float:
        return float(np.median(self.read_s)) if self.read_s else 0.0


def config(n: int, data: Data) -> VotingConfig:
    return VotingConfig(n=n, weights=SensorWeights(kind="camera", image_size=data.image_size))  # type: ignore[arg-type]


def targets_for(n: int, data: Data, k: int) -> list[int]:
    """1 + k labelled targets whose windows are not clipped by the sequence ends (where possible)."""
    start = ((n + STEP - 1) // STEP) * STEP
    ts = [t for t in range(start, data.num - n, STEP)] or [t for t in range(0, data.num, STEP)]
    return ts[: k + 1]


IMPLS = ("exact-numba", "lattice-numba", "exact-torch", "lattice-torch", "reference")


def time_engine(data: Data, n: int, k: int, impl: str) -> dict:
    engine, backend = impl.split("-")
    cfg = config(n, data)
    ts = targets_for(n, data, k)
    eng = make_engine(engine, data.frames, data.poses, data.calib, cfg, device="cpu", backend=backend)
    t0 = time.perf_counter()
    eng.vote(ts[0])
    first = time.perf_counter() - t0
    t1, c1 = time.perf_counter(), time.process_time()
    for t in ts[1:]:
        eng.vote(t)
    wall, cpu = time.perf_counter() - t1, time.process_time() - c1
    steady = (len(ts) - 1) / wall if len(ts) > 1 else float("nan")
    proj = first + (SEQ08_TARGETS - 1) / steady + SEQ08_SCANS * data.read_per_scan
    return {
        "impl": impl,
        "n": n,
        "targets": len(ts) - 1,
        "first_s": first,
        "tps": steady,
        "tps_cpu": (len(ts) - 1) / cpu if cpu > 0 else float("nan"),
        "proj_s": proj,
    }


def time_reference(data: Data, n: int, k: int = 1) -> dict:
    cfg = config(n, data)
    ts = targets_for(n, data, k)[:k]
    t0, c0 = time.perf_counter(), time.process_time()
    for t in ts:
        vote_frame_reference(t, data.frames, data.poses, data.calib, cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rate = len(ts) / wall
    proj = SEQ08_TARGETS / rate + SEQ08_TARGETS * (2 * n + 1) * data.read_per_scan
    return {
        "impl": "reference",
        "n": n,
        "targets": len(ts),
        "first_s": 1 / rate,
        "tps": rate,
        "tps_cpu": len(ts) / cpu,
        "proj_s": proj,
    }


def table(rows: list[dict]) -> str:
    out = [
        "| implementation | n | targets timed | first target (s) | steady targets/s (wall) | targets/s (CPU time) "
        "| projected real seq 08 (min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['impl']} | {r['n']} | {r['targets']} | {r['first_s']:.2f} | {r['tps']:.3f} | {r['tps_cpu']:.3f} "
            f"| {r['proj_s'] / 60:.1f} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=None)
    ap.add_argument("--model", default="voxformer-sim")
    ap.add_argument("--n", type=int, nargs="+", default=[5, 10, 25])
    ap.add_argument("--reference-n", type=int, nargs="*", default=[5, 25])
    ap.add_argument("--targets", type=int, default=10, help="steady-state targets timed per engine run")
    ap.add_argument("--torch-targets", type=int, default=2, help="steady-state targets of the torch CPU backends")
    default = [i for i in IMPLS if i != "reference" and (_exact_kernels.AVAILABLE or not i.endswith("numba"))]
    ap.add_argument("--impls", nargs="+", default=default, choices=[i for i in IMPLS if i != "reference"])
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = Data(mini_root(a.root), a.model)
    data.preload()
    print(
        f"data: {data.name}, {data.num} scans; prediction read {1e3 * data.read_per_scan:.1f} ms/scan (median); "
        f"torch threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    # warm-up outside the timed calls: numba compilation (or cached machine code load)
    for impl in a.impls:
        engine, backend = impl.split("-")
        make_engine(
            engine, data.frames, data.poses[:2], data.calib, config(0, data), device="cpu", backend=backend
        ).vote(0)
    rows = []
    for n in a.n:
        for impl in a.impls:
            rows.append(time_engine(data, n, a.torch_targets if impl.endswith("torch") else a.targets, impl))
            print(rows[-1], flush=True)
    for n in a.reference_n:
        rows.append(time_reference(data, n))
        print(rows[-1], flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print(table(rows))


# ------------------------------------------------------------------------------------ pytest-benchmark
@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    d = Data(mini_root(), max_scans=None if mini_root() else 2 * 25 + STEP * 4 + 1)
    d.preload()
    return d


def _report(benchmark, row: dict) -> None:
    benchmark.extra_info.update(targets_per_s=row["tps"], projected_seq08_s=row["proj_s"])
    print(
        f"\n[{row['impl']} n={row['n']}] {row['tps']:.3f} targets/s -> "
        f"projected real seq 08: {row['proj_s'] / 60:.1f} min"
    )


@pytest.mark.parametrize("n", [5, 25])
@pytest.mark.parametrize("impl", ["exact-numba", "lattice-numba", "exact-torch", "lattice-torch"])
def test_bench_engine(benchmark, data, n, impl):
    if impl.endswith("numba") and not _exact_kernels.AVAILABLE:
        pytest.skip("numba not installed")
    row: dict = {}
    benchmark.pedantic(
        lambda: row.update(time_engine(data, n, 4 if impl.endswith("numba") else 1, impl)), rounds=1, iterations=1
    )
    _report(benchmark, row)


@pytest.mark.parametrize("n", [5, 25])
def test_bench_reference(benchmark, data, n):
    row: dict = {}
    benchmark.pedantic(lambda: row.update(time_reference(data, n)), rounds=1, iterations=1)
    _report(benchmark, row)


if __name__ == "__main__":
    main()

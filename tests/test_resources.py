"""Default worker counts are bounded by memory as well as cores; -j beyond either is warned about."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from occbench.cli import main
from occbench.evaluation.resources import GIB, available_memory, choose_workers, usable_cores, worker_memory_gb
from occbench.methods import OffboardMethod, available_methods, method_class
from occbench.testing import make_semantickitti_tree


def test_every_reference_method_declares_its_per_worker_memory():
    for name in ("onboard", "average-fusion", "occfiner-voting", "occfiner-stage1", "occfiner"):
        assert name in available_methods()
        cls = method_class(name)
        declared = next(c for c in cls.__mro__ if "worker_memory_gb" in c.__dict__)
        assert declared is not OffboardMethod, name
        assert worker_memory_gb(name) == cls.worker_memory_gb > 0


def test_default_is_bounded_by_memory_on_a_small_machine():
    occ = worker_memory_gb("occfiner")
    # 4 cores (two 2-thread occfiner workers) of which only 1.5 workers' memory is free: one worker, not two
    assert choose_workers(None, "occfiner", cores=4, memory=int(1.5 * occ * GIB / 0.8)) == (1, [])
    assert choose_workers(None, "occfiner", cores=4, memory=int(0.5 * occ * GIB)) == (1, [])  # never below one
    assert choose_workers(None, "occfiner", cores=2, memory=24 * GIB) == (1, [])  # a worker keeps 2 threads busy
    assert choose_workers(None, "occfiner", cores=4, memory=24 * GIB) == (2, [])
    assert choose_workers(None, "average-fusion", cores=2, memory=24 * GIB) == (2, [])
    assert choose_workers(None, "onboard", cores=16, memory=None) == (8, [])  # at most 8; memory unknown
    assert choose_workers(None, "occfiner", cores=64, memory=8 * GIB)[0] == int(8 * 0.8 // occ) < 4  # memory-bound
    assert choose_workers(None, "occfiner", cores=64, memory=64 * GIB)[0] == 4  # at most 8 cores / 2 threads


def test_explicit_workers_are_kept_but_warned_about():
    n, w = choose_workers(4, "average-fusion", cores=2, memory=64 * GIB)
    assert n == 4 and len(w) == 1 and "more than the 2 usable CPU core(s)" in w[0]
    n, w = choose_workers(2, "occfiner", cores=2, memory=int(worker_memory_gb("occfiner") * GIB))
    assert n == 2 and len(w) == 1 and "may run out of memory" in w[0] and "occfiner" in w[0]
    assert choose_workers(1, "occfiner", cores=2, memory=64 * GIB) == (1, [])


def test_this_machine_is_measured():
    assert usable_cores() >= 1
    mem = available_memory()
    assert mem is None or mem > 0


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(tmp_path_factory.mktemp("res") / "kitti", {"08": 6}, onboard={"noisy": 0.2})


def test_cli_warns_when_j_exceeds_the_cores(tree, tmp_path):
    j = usable_cores() + 1
    r = CliRunner().invoke(
        main,
        [
            "refine",
            "--dataset",
            "semantickitti",
            "--root",
            str(tree),
            "--onboard",
            "noisy",
            "--method",
            "onboard",
            "-o",
            str(tmp_path / "o"),
            "-j",
            str(j),
            "-q",
        ],
    )
    assert r.exit_code == 0 and f"warning: -j {j} is more than the {usable_cores()} usable CPU core(s)" in r.output, (
        r.output
    )

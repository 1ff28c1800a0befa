"""Scoring submitted predictions runs its jobs on threads of the process: same numbers as one job, no worker process,
and a failed job or an interrupt ends the other jobs at their next frame."""

from __future__ import annotations

import concurrent.futures
import gc
import json
import shutil
import sys
import threading
import time

import pytest

import occbench.evaluation.run as run
from occbench.evaluation.config import EvalConfig
from occbench.evaluation.executors import run_jobs
from occbench.evaluation.jobs import run_planned
from occbench.evaluation.specs import DatasetSpec, Job, Submission
from occbench.runtime.ticks import RunStopped
from occbench.testing import make_semantickitti_tree, python_json


@pytest.fixture(scope="module")
def submission(tmp_path_factory):
    tree = make_semantickitti_tree(tmp_path_factory.mktemp("thr"), {"08": 31}, onboard={"noisy": 0.2}, seed=3)
    sub = tmp_path_factory.mktemp("sub") / "model"
    shutil.copytree(tree / "predictions" / "noisy", sub)
    for f in (sub / "sequences" / "08" / "predictions").iterdir():
        if int(f.name[:6]) % 5:
            f.unlink()
    return Submission(str(sub), DatasetSpec("semantickitti", str(tree), "val"))


class _NoProcesses:
    def __init__(self, *a, **kw):
        raise AssertionError("a worker process was started to score files")


def test_submission_jobs_run_on_threads_with_the_numbers_of_one_job(submission, monkeypatch):
    one = evaluate_with(submission, 1)
    seen: set[str] = set()
    job = run.run_job

    def recording_job(*a, **kw):
        seen.add(threading.current_thread().name)
        return job(*a, **kw)

    monkeypatch.setattr(run, "useful_workers", lambda workers, *a, **kw: workers)  # 7 frames: split anyway
    monkeypatch.setattr(run, "run_job", recording_job)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", _NoProcesses)  # what the executors import
    two = evaluate_with(submission, 2)
    assert len(seen) == 2 and all(n.startswith("occbench-job") for n in seen), seen
    assert two["header"]["workers"] == 2 and one["header"]["workers"] == 1
    assert two["metrics"] == one["metrics"]
    assert one["metrics"]["city_map"] and one["metrics"]["temporal_consistency"]


def test_scoring_on_threads_imports_no_multiprocessing(submission):
    """``multiprocessing`` (and the process pool's module) are imported only where a worker process is started:
    about 12 ms of every quiet scoring command's start-up otherwise (a progress bar imports it: tqdm's lock). The
    command still scores both jobs."""
    code = (
        "import json, sys\n"
        "from occbench.runtime.progress import set_quiet\n"
        "set_quiet(True)\n"
        "from occbench.evaluation.config import EvalConfig\n"
        "from occbench.evaluation.run import evaluate\n"
        "from occbench.evaluation.specs import DatasetSpec, Submission\n"
        f"sub = Submission({submission.folder!r}, DatasetSpec('semantickitti', {submission.dataset.root!r}, 'val'))\n"
        "r = evaluate(EvalConfig(submission=sub, workers=2)).to_dict()\n"
        "print(json.dumps({'workers': r['header']['workers'], 'frames': r['header']['frames'],\n"
        "    'loaded': sorted(m for m in ('multiprocessing', 'concurrent.futures.process') if m in sys.modules)}))\n"
    )
    out = python_json(code)
    assert out["loaded"] == []
    assert out["frames"] == evaluate_with(submission, 1)["header"]["frames"]


def evaluate_with(submission: Submission, workers: int) -> dict:
    return run.evaluate(EvalConfig(submission=submission, workers=workers)).to_dict()


def test_two_threads_pay_from_40_frames_with_maps_and_64_without():
    assert run.useful_workers(2, 39, True, True) == 1 and run.useful_workers(2, 40, True, True) == 2
    assert run.useful_workers(2, 63, True, False) == 1 and run.useful_workers(2, 128, True, False) == 2
    assert run.useful_workers(4, 10, False, True) == 4  # methods: what was asked for


def _frames(name: str, n: int, fail_at: int | None, done: dict, tick) -> str:
    """A job of ``n`` frames of 5 ms that calls ``tick()`` after each and records how far it got."""
    for i in range(n):
        if i == fail_at:
            raise ValueError(f"job {name} failed at frame {i}")
        time.sleep(0.005)
        done[name] = i + 1
        tick()
    return name


def test_a_failed_job_on_a_thread_ends_the_others_at_their_next_frame():
    done: dict[str, int] = {}
    jobs = [Job("a", tuple(range(2000))), Job("b", (0,))]
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="job b failed at frame 3"):
        run_planned(
            _frames,
            jobs,
            lambda j, tick: (
                j.sequence,
                len(j.targets) if j.sequence == "a" else 10,
                None if j.sequence == "a" else 3,
                done,
                tick,
            ),
            desc="t",
            workers=2,
            threads=True,
        )
    assert time.perf_counter() - t0 < 5.0 and 0 < done["a"] < 2000, done  # a: stopped, not run to its end (10 s)
    seen = dict(done)
    time.sleep(0.05)
    assert done == seen  # nothing runs on after the error is raised


def test_an_interrupt_ends_the_jobs_on_threads_and_is_raised():
    stop = threading.Event()
    done: dict[str, int] = {}

    def tick() -> None:
        if stop.is_set():
            raise RunStopped("stopped")

    def interrupt(i, result):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_jobs(
            _frames,
            [("quick", 1, None, done, tick), ("slow", 2000, None, done, tick)],
            workers=2,
            on_done=interrupt,
            stop=stop,
        )
    assert stop.is_set() and done["quick"] == 1 and 0 < done["slow"] < 2000, done


def test_results_of_jobs_on_threads_come_back_in_job_order():
    stop = threading.Event()
    done: dict[str, int] = {}
    jobs = [(str(i), 8 - 2 * i, None, done, lambda: None) for i in range(4)]
    assert run_jobs(_frames, jobs, workers=3, stop=stop) == ["0", "1", "2", "3"]
    assert not stop.is_set() and done == {"0": 8, "1": 6, "2": 4, "3": 2}


def test_the_console_script_freezes_the_garbage_collector_as_the_process_ends(monkeypatch):
    """``occbench`` (``occbench.cli:run``) leaves the objects of its imports to the operating system at exit instead
    of the interpreter's last collections (0.15-0.25 s a command); ``main`` itself, for callers that go on, does not."""
    import gc
    from pathlib import Path

    try:
        import tomllib
    except ImportError:  # Python 3.10: the test extras install tomli
        import tomli as tomllib

    from occbench.cli import main
    from occbench.cli import run as console

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["occbench"] == "occbench.cli:run"
    frozen: list[bool] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    monkeypatch.setattr(sys, "argv", ["occbench", "--version"])
    with pytest.raises(SystemExit) as e:
        console()
    assert e.value.code == 0 and frozen == [True]
    with pytest.raises(SystemExit):
        main()
    assert frozen == [True]


@pytest.mark.parametrize("entry", ["run", "main"])
def test_the_console_script_makes_no_full_collection_before_its_work(submission, tmp_path, entry):
    """A scoring command run by the console script (``run``) does its start-up's imports without a full garbage
    collection (each walks every object numba's import made: about 20 ms); ``main``, with Python's thresholds,
    makes some, which shows the count can see them. Both score the same."""
    out = tmp_path / "results.json"
    code = (
        "import gc, json, sys\n"
        f"from occbench.cli import {entry} as command\n"
        "full = []\n"
        "gc.callbacks.append(lambda phase, info: full.append(1) if phase == 'start' and info['generation'] == 2 "
        "and not gc.get_freeze_count() else None)\n"
        f"sys.argv = ['occbench', 'evaluate', '--dataset', 'semantickitti', '--root', "
        f"{submission.dataset.root!r}, '--predictions', {submission.folder!r}, '-q', '-o', {str(out)!r}]\n"
        "try:\n"
        "    command()\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "print(json.dumps({'code': code, 'full': len(full), 'thresholds': gc.get_threshold()}))\n"
    )
    got = python_json(code)
    assert got["code"] == 0 and json.loads(out.read_text())["metrics"]["city_map"]
    assert got["thresholds"] == list(gc.get_threshold())  # put back as the command ends
    assert (got["full"] == 0) if entry == "run" else (got["full"] > 0), got


def test_a_bad_file_in_a_job_on_a_thread_is_the_error_of_one_job_and_leaves_no_job_thread(
    submission, tmp_path, monkeypatch
):
    """A prediction of the wrong size in the second job: the same error (naming the file) as with one job, raised
    once every job on a thread has ended (their threads are gone)."""
    bad = tmp_path / "model"
    shutil.copytree(submission.folder, bad)
    victim = sorted((bad / "sequences" / "08" / "predictions").iterdir())[-1]
    victim.write_bytes(victim.read_bytes()[:1000])
    broken = Submission(str(bad), submission.dataset)
    with pytest.raises(Exception) as one:
        evaluate_with(broken, 1)
    monkeypatch.setattr(run, "useful_workers", lambda workers, *a, **kw: workers)
    with pytest.raises(type(one.value)) as two:
        evaluate_with(broken, 2)
    assert str(two.value) == str(one.value) and victim.name in str(two.value)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("occbench-job")]

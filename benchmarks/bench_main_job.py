"""The README's main job, ``occbench evaluate --method occfiner``, from an empty cache, as a whole process.

Runs the command (plus any arguments after ``--``) with ``OCCBENCH_DATA`` set to a fresh folder, samples the
whole process tree (the command and every worker it starts) ten times a second from ``/proc``, and reports per
phase the wall time, the CPU time of the tree and its peak memory: resident (RSS, summed over the live processes,
so pages two processes share count twice) and proportional (PSS, shared pages split between their processes):

* ``generation``: start until the mini manifest (``mini.json``) appears: imports, world building, ground truth,
  onboard predictions of the split;
* ``refine + score``: from there to the exit: OccFiner stage 1 and stage 2, the metrics and the report.

numba compiles its kernels into an empty cache folder, as on a fresh clone (``--warm-numba``: reuse the cache).

Also: the machine's load average before and after, when the first progress output appeared, and whether the
metrics equal a results file given with ``--expect`` (exactly, every number). Linux only (``/proc``).

    python benchmarks/bench_main_job.py --json out.json                          # the README command
    python benchmarks/bench_main_job.py --expect leaderboards/results/mini-val-voxformer-sim-occfiner.json
    python benchmarks/bench_main_job.py -- -j 2                                   # extra evaluate arguments
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HZ = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = raw[raw.rindex(")") + 2 :].split()
    return int(f[1]), sum(int(x) for x in f[11:15]) / HZ  # ppid; utime, stime, cutime, cstime


def _mem(pid: int) -> tuple[int, int]:
    """(resident, proportional) bytes of a process: RSS counts a page shared with another process in both,
    PSS splits it between them (``smaps_rollup``)."""
    out = [0, 0]
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            for i, key in enumerate(("Rss:", "Pss:")):
                if line.startswith(key):
                    out[i] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out[0], out[1]


def tree(root: int) -> tuple[int, float, int, int]:
    """(processes, CPU seconds, resident bytes, proportional bytes) of ``root`` and its live descendants."""
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and (s := _stat(int(d))) is not None:
            stats[int(d)] = s
    members, todo = set(), [root]
    while todo:
        p = todo.pop()
        if p in stats and p not in members:
            members.add(p)
            todo.extend(c for c, (pp, _) in stats.items() if pp == p)
    mem = [_mem(p) for p in members]
    return len(members), sum(stats[p][1] for p in members), sum(m[0] for m in mem), sum(m[1] for m in mem)


def run(cmd: list[str], data: Path, log: Path, period: float = 0.1, warm_numba: bool = False) -> dict:
    env = dict(os.environ, OCCBENCH_DATA=str(data))
    env.pop("OCCBENCH_MINI", None)
    if not warm_numba:  # compiled kernels are built as on a fresh clone, not loaded from an earlier run's cache
        env["NUMBA_CACHE_DIR"] = str(data / "numba-cache")
    phases = [
        {"phase": p, "wall_s": 0.0, "cpu_s": 0.0, "peak_rss_gb": 0.0, "peak_pss_gb": 0.0, "max_processes": 0}
        for p in ("generation", "refine + score")
    ]
    t0 = time.perf_counter()
    first_output = None  # when the first progress bar appeared
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        cpu, cur, t_phase, cpu_phase = 0.0, 0, t0, 0.0
        while True:
            n, c, rss, pss = tree(proc.pid)
            cpu = max(cpu, c)  # an exited worker's time moves to its parent when reaped: keep the count monotonic
            ph = phases[cur]
            ph["peak_rss_gb"] = max(ph["peak_rss_gb"], rss / 1e9)
            ph["peak_pss_gb"] = max(ph["peak_pss_gb"], pss / 1e9)
            ph["max_processes"] = max(ph["max_processes"], n)
            if first_output is None and any(m in log.read_bytes() for m in (b"generating", b"%|")):
                first_output = time.perf_counter() - t0  # a progress bar is shown
            if cur == 0 and any(data.glob("mini-v*/mini.json")):
                ph["wall_s"], ph["cpu_s"] = time.perf_counter() - t_phase, cpu - cpu_phase
                cur, t_phase, cpu_phase = 1, time.perf_counter(), cpu
            if proc.poll() is not None:
                break
            time.sleep(period)
    wall = time.perf_counter() - t0
    r = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command, reaped, with every process it reaped
    total_cpu = r.ru_utime + r.ru_stime
    phases[cur]["wall_s"] = time.perf_counter() - t_phase
    phases[cur]["cpu_s"] = max(0.0, total_cpu - cpu_phase)
    return {
        "command": " ".join(cmd),
        "returncode": proc.returncode,
        "wall_s": wall,
        "cpu_s": total_cpu,
        "peak_rss_gb": max(p["peak_rss_gb"] for p in phases),
        "peak_pss_gb": max(p["peak_pss_gb"] for p in phases),
        "first_output_s": first_output,
        "phases": phases,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data", type=Path, default=None, help="empty folder for the cache (default: a temporary one, removed after)"
    )
    ap.add_argument("--json", type=Path, default=None, help="write the measurements here")
    ap.add_argument("--expect", type=Path, default=None, help="a results file whose metrics the run must equal")
    ap.add_argument(
        "--warm-numba",
        action="store_true",
        help="use numba's cache of compiled kernels from earlier runs (default: compile them, as a fresh clone does)",
    )
    ap.add_argument("extra", nargs="*", help="arguments appended to `occbench evaluate --method occfiner` (after --)")
    a = ap.parse_args(argv)
    tmp = None if a.data else tempfile.mkdtemp(prefix="occbench-main-job-")
    data = a.data or Path(tmp)
    if data.exists() and any(data.iterdir()):
        ap.error(f"{data} is not empty: the main job is measured from an empty cache")
    data.mkdir(parents=True, exist_ok=True)
    results = data / "results.json"
    occbench = shutil.which("occbench") or "occbench"
    cmd = [occbench, "evaluate", "--method", "occfiner", "-o", str(results), *a.extra]
    load_before = os.getloadavg()
    try:
        r = run(cmd, data, data / "output.log", warm_numba=a.warm_numba)
        r["load_before"], r["load_after"] = load_before, os.getloadavg()
        r["cpus"] = len(os.sched_getaffinity(0))
        if results.is_file():
            got = json.loads(results.read_text())
            r["results_header_workers"] = got["header"].get("workers")
            if a.expect:
                r["metrics_equal_expected"] = got["metrics"] == json.loads(a.expect.read_text())["metrics"]
        else:
            r["log_tail"] = (data / "output.log").read_text(errors="replace")[-2000:]
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"{r['command']}\n{r['cpus']} CPUs; load average (1, 5, 15 min) before "
        f"{', '.join(f'{x:.2f}' for x in r['load_before'])}, after {', '.join(f'{x:.2f}' for x in r['load_after'])}"
    )
    print(f"{'phase':16s} {'wall s':>8s} {'CPU s':>8s} {'peak RSS GB':>12s} {'peak PSS GB':>12s} {'processes':>10s}")
    for p in r["phases"]:
        print(
            f"{p['phase']:16s} {p['wall_s']:8.1f} {p['cpu_s']:8.1f} {p['peak_rss_gb']:12.2f} {p['peak_pss_gb']:12.2f} "
            f"{p['max_processes']:10d}"
        )
    print(f"{'whole job':16s} {r['wall_s']:8.1f} {r['cpu_s']:8.1f} {r['peak_rss_gb']:12.2f} {r['peak_pss_gb']:12.2f}")
    print(
        f"first progress output after {r['first_output_s'] or float('nan'):.1f} s; exit code {r['returncode']}"
        + (f"; metrics equal {a.expect}: {r['metrics_equal_expected']}" if "metrics_equal_expected" in r else "")
    )
    if "log_tail" in r:
        print(r["log_tail"], file=sys.stderr)
    if a.json:
        a.json.write_text(json.dumps(r, indent=1) + "\n")
    return 0 if r["returncode"] == 0 and r.get("metrics_equal_expected", True) else 1


if __name__ == "__main__":
    sys.exit(main())

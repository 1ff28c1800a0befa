"""Whole-command timing of ``occbench evaluate --predictions DIR`` against the plain numpy script, side by side.

Builds SemanticKITTI-layout trees (``ROOT/sequences/08/{calib.txt,poses.txt,voxels/}`` + a submission
``SUB/sequences/08/predictions/``) with the real poses of sequence 08 (4,071 scans) and ground truth for the first
N labelled scans (every 5th: 0, 5, 10, ...). Frames are hard links to a few distinct frames (``--distinct``), so a
val-size tree takes little disk and the page cache holds it (timings are warm-cache). Two densities:

- ``real``: ``occbench.metrics.testing.synthetic_frame`` (SemanticKITTI-like: ground, walls, cars, vegetation;
  25-30 % invalid; the prediction is a noisy copy),
- ``dense``: 40 % of the voxels occupied (random boxes of random classes, 10 % invalid), prediction a noisy copy.

Then, for each tree, it runs as whole processes, interleaved, ``--runs`` times each:

- ``plain``: ``python benchmarks/plain_score.py ROOT SUB`` (read 3 files a frame, LUT, one bincount, one range),
- ``default``: ``occbench evaluate --dataset semantickitti --root ROOT --predictions SUB -q -o OUT`` (city map and
  temporal consistency on; default workers), run as ``python -m occbench.cli`` with this interpreter (what the
  ``occbench`` console script runs, without a version manager's shim in front: pyenv's adds about 0.05 s),
- ``ssc-only``: the same with ``--no-city --no-consistency``,

and, with ``--baseline CHECKOUT``, ``default@base`` and ``ssc-only@base``: the same commands with ``PYTHONPATH``
set to another checkout of occbench (the code before a change, timed side by side with it); with ``--skapi
SCRIPT``, ``skapi``: semantic-kitti-api's ``evaluate_completion.py --dataset ROOT --predictions SUB --split valid``
(run in the script's folder, which holds its ``config/``).

Before timing, it compiles the bytecode of each checkout's ``occbench`` (``python -m compileall``), as an install
does, so that a machine with ``PYTHONDONTWRITEBYTECODE`` set does not time the compilation of its modules.

It reports wall seconds (min and median), CPU seconds (user + system of the whole process tree, which is what a
busy machine distorts least), each variant's ratio to ``plain`` (min over min), the peak RSS of the whole process
tree (sum over the command's processes, sampled every 50 ms from /proc) and the largest single process's peak RSS
(``ru_maxrss`` of the waited-for children, what ``/usr/bin/time -v`` shows); at the end, one markdown table.

    python benchmarks/bench_evaluate_cli.py --work /tmp/occbench-bench [--poses-dir DIR] [--frames 40 815]
        [--density real dense] [--runs 3] [--baseline CHECKOUT] [--skapi SCRIPT] [--json out.json] [--no-warmup]

``--poses-dir`` holds ``poses.txt`` and ``calib.txt`` of sequence 08; default ``$OCCBENCH_KITTI_SEQ08``, else
``tests/data/kitti-odometry/sequences/08``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PLAIN = HERE / "plain_score.py"
VARIANTS = ("plain", "default", "ssc-only")
BASE_VARIANTS = ("default@base", "ssc-only@base")


def default_poses_dir() -> Path | None:
    env = os.environ.get("OCCBENCH_KITTI_SEQ08")
    if env:
        return Path(env)
    p = REPO / "tests" / "data" / "kitti-odometry" / "sequences" / "08"
    return p if (p / "poses.txt").is_file() else None


# ---------------------------------------------------------------- frames
def dense_frame(rng: np.random.Generator, occupancy: float = 0.4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pred, gt with 255 = ignore, invalid) with ``occupancy`` of the voxels occupied in the ground truth."""
    shape = (256, 256, 32)
    gt = np.zeros(shape, np.uint8)
    occ = 0
    while occ < occupancy * gt.size:
        c = rng.integers(0, [256, 256, 32])
        s = rng.integers([6, 6, 3], [40, 40, 16])
        sl = tuple(slice(int(a), int(a + b)) for a, b in zip(c, s))
        gt[sl] = rng.integers(1, 20)
        occ = int(np.count_nonzero(gt))
    invalid = rng.random(shape) < 0.02
    for _ in range(30):
        c = rng.integers(0, [256, 256, 32])
        invalid[c[0] : c[0] + 30, c[1] : c[1] + 30, c[2] : c[2] + 8] = True
    gt[rng.random(shape) < 0.002] = 255
    pred = np.where(gt == 255, 0, gt).astype(np.uint8)
    noisy = rng.random(shape) < 0.15
    pred[noisy] = rng.integers(0, 20, int(noisy.sum()))
    return pred, gt, invalid


def _frames(density: str, n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    from occbench.metrics.testing import synthetic_frame

    rng = np.random.default_rng(seed)
    return [synthetic_frame(rng) if density == "real" else dense_frame(rng) for _ in range(n)]


def build_tree(work: Path, poses_dir: Path, frames: int, density: str, distinct: int = 8) -> tuple[Path, Path, dict]:
    """``(ROOT, SUB, facts)``: a tree with ground truth for the first ``frames`` labelled scans of sequence 08 and a
    submission for exactly those scans; files are hard links to ``distinct`` frames written once per density."""
    from occbench.io.voxels import write_bits, write_label
    from occbench.labels import load_label_map

    lm = load_label_map("semantickitti")
    pool = work / f"pool-{density}-{distinct}"
    if not (pool / "done").is_file():
        shutil.rmtree(pool, ignore_errors=True)
        pool.mkdir(parents=True)
        occupied = []
        for i, (pred, gt, inv) in enumerate(_frames(density, distinct)):
            raw = lm.inv_lut[np.where(gt == 255, 0, gt)].astype(np.uint16)
            raw[gt == 255] = 52  # other-structure: ignore
            write_label(pool / f"{i}.gt.label", raw)
            write_bits(pool / f"{i}.invalid", inv)
            write_label(pool / f"{i}.pred.label", lm.inv_lut[pred].astype(np.uint16))
            occupied.append(float(((gt != 0) & (gt != 255)).mean()))
        (pool / "done").write_text(json.dumps({"occupied": occupied}))
    facts = json.loads((pool / "done").read_text())
    root = work / f"tree-{density}-{frames}"
    sub = work / f"sub-{density}-{frames}"
    if not (root / "done").is_file():
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(sub, ignore_errors=True)
        seq = root / "sequences" / "08"
        vox, pred_dir = seq / "voxels", sub / "sequences" / "08" / "predictions"
        vox.mkdir(parents=True)
        pred_dir.mkdir(parents=True)
        for f in ("poses.txt", "calib.txt"):
            shutil.copy(poses_dir / f, seq / f)
        n_scans = sum(1 for line in (poses_dir / "poses.txt").read_text().splitlines() if line.strip())
        scans = list(range(0, n_scans, 5))[:frames]
        if len(scans) < frames:
            raise SystemExit(
                f"{poses_dir / 'poses.txt'}: {n_scans} poses give {len(scans)} labelled scans, fewer than {frames}"
            )
        for i, t in enumerate(scans):
            k = i % distinct
            os.link(pool / f"{k}.gt.label", vox / f"{t:06d}.label")
            os.link(pool / f"{k}.invalid", vox / f"{t:06d}.invalid")
            os.link(pool / f"{k}.pred.label", pred_dir / f"{t:06d}.label")
        (root / "done").write_text("")
    return root, sub, {"occupied_fraction_mean": float(np.mean(facts["occupied"]))}


# ---------------------------------------------------------------- measuring
def _tree_rss_bytes(pid: int) -> int:
    """Sum of the resident set sizes of ``pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    total, todo, page = 0, [pid], os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_measured(cmd: list[str], env: dict[str, str], interval: float = 0.05, cwd: str | None = None) -> dict:
    """Run ``cmd``; return wall seconds, exit code, the process tree's peak summed RSS and the largest process's
    peak RSS."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = ru0.ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss_bytes(proc.pid))
            stop.wait(interval)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = ru1.ru_maxrss  # KiB; a max over all children so far
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{err[-3000:]}")
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "tree_peak_rss_mb": peak[0] / 2**20,
        "max_process_rss_mb": (after / 1024) if after > before else None,
        "stdout": out.strip()[-300:],
    }


def commands(root: Path, sub: Path, out: Path, skapi: Path | None = None) -> dict[str, list[str]]:
    occ = [
        sys.executable,  # the console script's code (occbench.cli.run), of this checkout or PYTHONPATH's
        "-m",
        "occbench.cli",
        "evaluate",
        "--dataset",
        "semantickitti",
        "--root",
        str(root),
        "--predictions",
        str(sub),
        "-q",
        "-o",
        str(out),
    ]  # the file is removed before each run (see bench)
    cmds = {
        "plain": [sys.executable, str(PLAIN), str(root), str(sub)],
        "default": occ,
        "ssc-only": occ + ["--no-city", "--no-consistency"],
    }
    cmds["default@base"], cmds["ssc-only@base"] = cmds["default"], cmds["ssc-only"]
    if skapi is not None:
        cmds["skapi"] = [
            sys.executable,
            str(skapi),
            "--dataset",
            str(root),
            "--predictions",
            str(sub),
            "--split",
            "valid",
        ]
    return cmds


def bench(
    work: Path,
    poses_dir: Path,
    frames: int,
    density: str,
    runs: int,
    variants: tuple[str, ...],
    log=print,
    baseline: Path | None = None,
    skapi: Path | None = None,
) -> dict:
    root, sub, facts = build_tree(work, poses_dir, frames, density)
    cmds = commands(root, sub, work / "results.json", skapi)
    env = dict(os.environ)
    base_env = dict(env, PYTHONPATH=str(baseline)) if baseline is not None else env
    rows: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(runs):
        for v in variants:
            (work / "results.json").unlink(missing_ok=True)  # each run writes a new file (old and new code alike)
            m = run_measured(
                cmds[v],
                base_env if v.endswith("@base") else env,
                # occbench's commands run in the work folder: `python -m` puts the current folder first on the
                # path, and in the repository that would shadow PYTHONPATH's baseline checkout
                cwd=str(skapi.parent) if v == "skapi" and skapi is not None else str(work),
            )
            rows[v].append(m)
            log(
                f"  {density} {frames} frames, run {r + 1}: {v:13s} "
                f"{m['wall_s']:7.2f} s wall, {m['cpu_s']:7.2f} s CPU, "
                f"tree peak RSS {m['tree_peak_rss_mb']:6.0f} MB, load {os.getloadavg()[0]:.1f}"
            )
    summary = {"frames": frames, "density": density, **facts, "commands": {v: " ".join(cmds[v]) for v in variants}}
    for v in variants:
        walls = [m["wall_s"] for m in rows[v]]
        cpus = [m["cpu_s"] for m in rows[v]]
        summary[v] = {
            "wall_s_min": min(walls),
            "wall_s_median": statistics.median(walls),
            "walls": walls,
            "cpu_s_min": min(cpus),
            "cpus": cpus,
            "tree_peak_rss_mb": max(m["tree_peak_rss_mb"] for m in rows[v]),
            "max_process_rss_mb": max((m["max_process_rss_mb"] or 0) for m in rows[v]) or None,
        }
    if "plain" in variants:
        for v in variants:
            if v != "plain":
                summary[v]["ratio_min_to_plain"] = summary[v]["wall_s_min"] / summary["plain"]["wall_s_min"]
                summary[v]["ratio_median_to_plain"] = summary[v]["wall_s_median"] / summary["plain"]["wall_s_median"]
                summary[v]["cpu_ratio_to_plain"] = summary[v]["cpu_s_min"] / summary["plain"]["cpu_s_min"]
    return summary


LABELS = {
    "plain": "plain numpy script (read, LUT, one `bincount`, one range)",
    "skapi": "semantic-kitti-api `evaluate_completion.py` (one range)",
    "ssc-only": "`occbench evaluate --no-city --no-consistency` (three ranges)",
    "default": "`occbench evaluate` (default: + city map + temporal consistency)",
    "ssc-only@base": "`--no-city --no-consistency`, baseline checkout",
    "default@base": "`occbench evaluate` default, baseline checkout",
}


def table(summaries: list[dict]) -> str:
    """The markdown table of the runs: per tree and variant, wall (min), CPU, ratios to the plain script (and to
    semantic-kitti-api when it ran), tree peak RSS."""
    lines = [
        "| frames | density | command | wall (min) | CPU | vs skapi "
        "| vs plain (wall) | vs plain (CPU) | tree peak RSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        order = [v for v in ("skapi", "plain", "ssc-only", "ssc-only@base", "default", "default@base") if v in s]
        for v in order:
            m = s[v]
            vs_sk = f"{m['wall_s_min'] / s['skapi']['wall_s_min']:.2f}x" if "skapi" in s else "-"
            vs_plain = f"{m['wall_s_min'] / s['plain']['wall_s_min']:.2f}x" if "plain" in s else "-"
            cpu_plain = f"{m['cpu_s_min'] / s['plain']['cpu_s_min']:.2f}x" if "plain" in s else "-"
            lines.append(
                f"| {s['frames']} | {s['density']} | {LABELS[v]} | {m['wall_s_min']:.2f} s | {m['cpu_s_min']:.2f} s | "
                f"{vs_sk} | {vs_plain} | {cpu_plain} | {m['tree_peak_rss_mb']:,.0f} MB |"
            )
    return "\n".join(lines)


def cpu_model() -> str:
    """The processor's name (Linux ``/proc/cpuinfo``): ratios to the plain script move with it, as their kernels
    differ (one ``bincount`` against compiled passes), so a table is only compared with one of the same machine."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown processor"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--work", type=Path, required=True, help="folder for the trees (hard links; about 70 MB per density)"
    )
    ap.add_argument(
        "--poses-dir", type=Path, default=default_poses_dir(), help="folder with poses.txt and calib.txt of sequence 08"
    )
    ap.add_argument("--frames", type=int, nargs="+", default=[40, 815])
    ap.add_argument("--density", nargs="+", default=["real", "dense"], choices=["real", "dense"])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--variants",
        nargs="+",
        default=None,
        choices=VARIANTS + BASE_VARIANTS + ("skapi",),
        help="default: plain, default, ssc-only (+ the baseline's two with --baseline, + skapi with --skapi)",
    )
    ap.add_argument(
        "--baseline", type=Path, default=None, help="another checkout of occbench, timed side by side (PYTHONPATH)"
    )
    ap.add_argument(
        "--skapi", type=Path, default=None, help="semantic-kitti-api's evaluate_completion.py, timed side by side"
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed first run that fills numba's cache")
    a = ap.parse_args(argv)
    if a.poses_dir is None or not (a.poses_dir / "poses.txt").is_file():
        ap.error(
            "no poses of sequence 08: pass --poses-dir DIR (with poses.txt and calib.txt) or set OCCBENCH_KITTI_SEQ08"
        )
    variants = (
        tuple(a.variants)
        if a.variants
        else (VARIANTS + (BASE_VARIANTS if a.baseline else ()) + (("skapi",) if a.skapi else ()))
    )
    if any(v.endswith("@base") for v in variants) and a.baseline is None:
        ap.error("the @base variants need --baseline CHECKOUT")
    if "skapi" in variants and a.skapi is None:
        ap.error("the skapi variant needs --skapi SCRIPT")
    a.work.mkdir(parents=True, exist_ok=True)
    cpu = cpu_model()
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs: {cpu}")
    # The modules' bytecode, as an installation compiles it (pip does for a regular install; an editable one writes
    # it on the first import) - unless PYTHONDONTWRITEBYTECODE is set, when every run would compile occbench's
    # modules from source (about 0.1 s that no installed copy pays). The plain script's numpy has its bytecode.
    for checkout in (REPO, a.baseline) if a.baseline is not None else (REPO,):
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(checkout / "occbench")], check=True)
    if not a.no_warmup:  # numba compiles the kernels into its cache on the first run of a fresh checkout: not timed
        root, sub, _ = build_tree(a.work, a.poses_dir, min(a.frames), a.density[0])
        cmds = commands(root, sub, a.work / "results.json")
        for v in ("default", "default@base"):
            if v in variants:
                (a.work / "results.json").unlink(missing_ok=True)  # the results file of the previous command
                run_measured(
                    cmds[v],
                    dict(os.environ, PYTHONPATH=str(a.baseline)) if v.endswith("@base") else dict(os.environ),
                    cwd=str(a.work),
                )
        print(f"warm-up done (one untimed default run per checkout, {min(a.frames)} frames)")
    out = []
    for density in a.density:
        for frames in a.frames:
            s = bench(a.work, a.poses_dir, frames, density, a.runs, variants, baseline=a.baseline, skapi=a.skapi)
            s["cpu"] = cpu
            out.append(s)
            print(json.dumps({k: v for k, v in s.items() if k != "commands"}, indent=None))
    print(f"load average {os.getloadavg()}")
    print(table(out))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

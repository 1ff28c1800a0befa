"""Small on-disk fixtures in the real layouts, for tests (occbench's and third parties')."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from occbench.io.kitti import Calibration, write_calib, write_poses, write_times
from occbench.io.predictions import PredictionStore
from occbench.io.voxels import write_bits, write_label
from occbench.labels import load_label_map

if TYPE_CHECKING:
    from occbench.synth.config import MiniConfig

# Real KITTI odometry calib of sequence 08 (P2 and Tr), enough for tests that need a camera.
P2_08 = np.array(
    [[707.0912, 0.0, 601.8873, 46.88783], [0.0, 707.0912, 183.1104, 0.1178601], [0.0, 0.0, 1.0, 0.006203223]]
)
TR_08 = np.array(
    [
        [-0.001857739385241, -0.9999659513510, -0.008039975204516, -0.004784029760483],
        [-0.006481465826011, 0.008051860151134, -0.9999466081774, -0.07337429464231],
        [0.9999773098147, -0.001805528627661, -0.006496203536139, -0.3339968064433],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def pico_mini_config() -> MiniConfig:
    """The smallest occbench-mini: 6 scans in each of train (00), val (08) and test (11), voxformer-sim only."""
    from occbench.synth.config import MiniConfig

    return MiniConfig(
        seed=5,
        scans={"00": 6, "08": 6, "11": 6},
        splits={"train": ("00",), "val": ("08",), "test": ("11",)},
        onboard=("voxformer-sim",),
        size="pico",
    )


def tiny_calibration() -> Calibration:
    P0 = P2_08.copy()
    P0[:, 3] = 0
    return Calibration(P={"P0": P0, "P1": P0.copy(), "P2": P2_08.copy(), "P3": P2_08.copy()}, Tr=TR_08.copy())


def straight_poses(n: int, speed: float = 1.0) -> np.ndarray:
    """LiDAR poses of a car driving straight along +x at ``speed`` metres per scan."""
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, 0, 3] = speed * np.arange(n)
    return T


def random_scene(rng: np.random.Generator, num_classes: int = 20) -> np.ndarray:
    """A blocky random scene of train ids (ground plane + boxes), (256,256,32) uint8."""
    g = np.zeros((256, 256, 32), np.uint8)
    g[:, :, :10] = 9  # road up to z = 0 m
    g[:, :100, :10] = 11
    for _ in range(20):
        x, y = rng.integers(0, 240, 2)
        w, d, h = rng.integers(4, 16, 3)
        g[x : x + w, y : y + d, 10 : 10 + h] = rng.integers(1, num_classes)
    return g


def make_semantickitti_tree(
    root: str | Path,
    sequences: dict[str, int],
    onboard: dict[str, float] | None = None,
    seed: int = 0,
    label_every: int = 5,
    compressed: bool = False,
    speed: float = 1.0,
) -> Path:
    """Write a tiny SemanticKITTI-layout tree: ``sequences`` maps name -> number of scans.

    Ground truth every ``label_every`` scans (random blocky scenes with a few ignore/invalid voxels);
    ``onboard`` maps a model name -> fraction of voxels corrupted in its predictions (every scan).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    lm = load_label_map("semantickitti")
    calib = tiny_calibration()
    for name, n in sequences.items():
        d = root / "sequences" / name
        d.mkdir(parents=True, exist_ok=True)
        write_calib(d / "calib.txt", calib)
        lidar = straight_poses(n, speed)
        write_poses(d / "poses.txt", calib.Tr @ lidar @ np.linalg.inv(calib.Tr))
        write_times(d / "times.txt", 0.1 * np.arange(n))
        scenes = {}
        for t in range(n):
            scenes[t] = random_scene(rng)
            if t % label_every == 0:
                raw = lm.to_raw(scenes[t])
                raw[rng.random(raw.shape) < 0.001] = 52  # other-structure -> ignore
                vox = d / "voxels"
                write_label(vox / f"{t:06d}.label", raw)
                write_bits(vox / f"{t:06d}.invalid", rng.random(raw.shape) < 0.05)
                write_bits(vox / f"{t:06d}.occluded", rng.random(raw.shape) < 0.2)
                write_bits(vox / f"{t:06d}.bin", scenes[t] > 0)
        for model, noise in (onboard or {}).items():
            write_noisy_predictions(
                PredictionStore(root / "predictions" / model, compressed=compressed), name, scenes, noise, rng, lm
            )
    return root


def write_noisy_predictions(
    store: PredictionStore, sequence: str, scenes: dict[int, np.ndarray], noise: float, rng: np.random.Generator, lm
) -> None:
    """Every scene (train ids) with a ``noise`` fraction of its voxels set to a random class, written as raw ids."""
    for t in range(len(scenes)):
        p = scenes[t].copy()
        m = rng.random(p.shape) < noise
        p[m] = rng.integers(0, lm.num_classes, int(m.sum()))
        store.write(sequence, t, lm.to_raw(p))


def make_sscbench_kitti360_tree(
    root: str | Path,
    drives: dict[str, int],
    onboard: dict[str, float] | None = None,
    seed: int = 0,
    label_every: int = 5,
    poses_numbering: str = "kitti360",
) -> Path:
    """Write a tiny SSCBench-KITTI360 tree: ``drives`` maps a drive name -> number of scans (poses for all).

    ``data_2d_raw/<drive>/voxels/NNNNNN.{label,invalid}`` every ``label_every`` scans (one-byte ``.invalid``; some
    invalid voxels are labelled, as in the release, which SSCBench's preprocessing clears), ``cam0_to_world.txt``, and
    ``predictions/<model>/sequences/<drive>/predictions/NNNNNN.label`` for every scan of each ``onboard`` model.
    ``poses_numbering``: ``kitti360`` (as KITTI-360 ships them: rows numbered by KITTI-360 frame through the release's
    frame map, with rows of KITTI-360 frames that are no SSCBench frame in between) or ``sscbench`` (row i = scan i).
    Scan t's camera sits 0.5 t m along its x axis either way.
    """
    from occbench.io.voxels import write_invalid_kitti360

    root = Path(root)
    rng = np.random.default_rng(seed)
    lm = load_label_map("kitti360")
    for name, n in drives.items():
        d = root / "data_2d_raw" / name
        vox = d / "voxels"
        vox.mkdir(parents=True, exist_ok=True)
        rows = np.array([[t, *np.eye(4).reshape(-1)] for t in range(n)])
        rows[:, 4] = 0.5 * np.arange(n)  # the camera moves along its x axis
        if poses_numbering == "kitti360":
            from occbench.datasets.kitti360_frames import release_frame_map

            ids = release_frame_map()[name][:n]
            rows[:, 0] = ids
            extra = np.setdiff1d(np.arange(ids[0], ids[-1] + 1), ids)[::2]  # KITTI-360 frames SSCBench left out
            if extra.size:
                more = np.array([[f, *np.eye(4).reshape(-1)] for f in extra])
                more[:, 4] = 1000.0 + extra  # far away: a pose looked up by the wrong number shows
                rows = np.r_[rows, more]
                rows = rows[np.argsort(rows[:, 0], kind="stable")]
        elif poses_numbering != "sscbench":
            raise ValueError(f"poses_numbering must be 'kitti360' or 'sscbench', not {poses_numbering!r}")
        np.savetxt(d / "cam0_to_world.txt", rows, fmt="%.10g")
        scenes = {t: random_scene(rng, lm.num_classes) for t in range(n)}
        for t in range(0, n, label_every):
            raw = lm.to_raw(scenes[t])
            raw[rng.random(raw.shape) < 0.001] = 71  # trunk -> ignore in KITTI-360
            write_label(vox / f"{t:06d}.label", raw)
            write_invalid_kitti360(vox / f"{t:06d}.invalid", rng.random(raw.shape) < 0.05)
            write_bits(vox / f"{t:06d}.bin", scenes[t] > 0)
        for model, noise in (onboard or {}).items():
            write_noisy_predictions(PredictionStore(root / "predictions" / model), name, scenes, noise, rng, lm)
    return root


def submission_from_onboard(tree: Path, onboard: str, dst: Path, every: int = 5) -> Path:
    """Copy the onboard model ``onboard`` of a tree made by :func:`make_semantickitti_tree` to ``dst`` as a
    submission: only the labelled scans (every ``every``-th) of each sequence. Returns ``dst``."""
    import shutil

    shutil.copytree(Path(tree) / "predictions" / onboard, dst)
    for f in Path(dst).glob("sequences/*/predictions/*"):
        if int(f.name[:6]) % every:
            f.unlink()
    return Path(dst)


def descendants(pid: int) -> set[int]:
    """The process ids below ``pid`` (children, their children, ...), read from ``/proc`` (Linux)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has exited: it waits for its parent to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def left_running(pids: set[int], within_s: float = 60.0) -> list[int]:
    """Those of ``pids`` still running after waiting up to ``within_s`` seconds for them to end (polled ten times a
    second, so the wait is as long as the slowest one takes, which a loaded machine stretches)."""
    import time

    deadline = time.monotonic() + within_s
    while True:
        left = sorted(k for k in pids if process_alive(k))
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def method_package_env(site: Path, module: str, source: str, name: str, cls: str) -> dict[str, str]:
    """The environment of a process that finds a method installed as an entry point: ``source`` written as
    ``site/<module>.py`` with a dist-info registering ``name = <module>:<cls>`` in ``occbench.methods``; ``site`` put
    first on ``PYTHONPATH`` (worker processes and Ray workers inherit it), one OpenMP thread."""
    import os

    (site / f"{module}.py").write_text(source)
    dist = site / f"{module}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[occbench.methods]\n{name} = {module}:{cls}\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    return env


def python_json(code: str, cwd: Path | None = None, timeout_s: float = 600, env: dict | None = None) -> Any:
    """The JSON that ``code``, run by a new interpreter (this one's executable) in ``cwd`` (with environment
    ``env``, default this process's), prints on its last line of standard output. A failed run is an
    ``AssertionError`` carrying the end of its standard error."""
    import json
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s, cwd=cwd, env=env
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.splitlines()[-1])

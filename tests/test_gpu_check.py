"""benchmarks/gpu_check.py: its CPU mode end to end at CI size (the logic a GPU run relies on), its report, its exit
codes, and that a disagreeing device or a failing phase fails the run."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod
    spec.loader.exec_module(mod)
    return mod


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """One run of the CPU mode; its data folder is reused by the in-process tests below."""
    base = tmp_path_factory.mktemp("gpu-check")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--data", str(base / "data"), "--out", str(base / "out")],
        cwd=base,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    report_path = base / "out" / "gpu-check.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else None
    return proc, report, base


def test_cpu_mode_runs_every_phase_and_passes(cpu_run):
    proc, report, base = cpu_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report is not None
    for key in (
        "schema",
        "command",
        "profile",
        "device",
        "versions",
        "settings",
        "checks",
        "phases",
        "skipped",
        "errors",
        "passed",
        "wall_s",
        "data",
        "voting",
        "stage1",
    ):
        assert key in report, key
    assert report["schema"] == "occbench-gpu-check/1"
    assert report["passed"] is True and report["errors"] == [] and report["skipped"] == []
    assert "--device cpu" in report["command"]
    assert report["versions"]["torch"] == torch.__version__
    assert report["device"]["name"] == "cpu" and report["profile"]["name"] == "ci"
    assert set(report["phases"]) == {"data", "voting", "stage1-agreement", "stage1-speed", "training-step"}
    # progress lines, one per phase at least
    for phase in report["phases"]:
        assert f"phase {phase} done" in proc.stdout

    checks = {c["name"]: c for c in report["checks"]}
    assert all(c["passed"] for c in checks.values())
    gating = {n for n, c in checks.items() if c["gating"]}
    assert {f"voting n={n}: device labels identical to the CPU engine's" for n in (1, 2)} <= gating
    for cfg in ("small", "paper"):
        assert f"stage1 {cfg} forward fp32: device argmax agrees with the CPU's" in gating
        assert f"stage1 {cfg} forward amp: device argmax agrees with the CPU's" in checks  # reported, not gating
        assert f"stage1 {cfg} training step: finite loss" in gating
    assert "stage1 small refine_sequence fp32: device labels agree with the CPU's" in gating

    # the data: the CI mini, val split, cropped grids
    assert report["data"]["scans"] == 6 and report["data"]["grid"] == [32, 32, 32]
    assert (base / "data" / report["data"]["root"].rsplit("/", 1)[-1] / "mini.json").is_file()

    # every number is there and positive
    assert [r["n"] for r in report["voting"]] == [1, 2]
    for r in report["voting"]:
        assert r["differing_voxels"] == 0 and r["voxels"] > 0
        assert r["cpu"]["backend"] in ("numba", "torch") and r["device"]["backend"] == "torch"
        for side in ("cpu", "device"):
            assert r[side]["targets_per_s"] > 0 and r[side]["first_target_s"] > 0
    s1 = report["stage1"]
    assert s1["paper"]["parameters"] == pytest.approx(4.50e6, rel=0.005)
    assert s1["small"]["parameters"] < s1["paper"]["parameters"]
    for cfg in ("small", "paper"):
        assert s1[cfg]["agreement_fp32"] == 1.0 and s1[cfg]["cpu_reference_s_per_window"] > 0
        for mode in ("fp32", "amp"):
            f = s1[cfg]["forward"][mode]
            assert f["windows_per_s"] > 0 and f["frames_per_s"] == pytest.approx(
                f["windows_per_s"] * f["window_frames"]
            )
            assert f["rounds"] >= 1 and f["peak_gpu_mib"] is None  # no GPU memory on the CPU
            rs = s1[cfg]["refine_sequence"][mode]
            assert rs["scans"] == 6 and rs["scans_per_s"] > 0
        t = s1[cfg]["train_step"]
        assert t["mean_s"] > 0 and t["steps_per_s"] > 0 and np.isfinite(t["last_loss"]) and t["labelled_outputs"] >= 1
    assert s1["small"]["refine_agreement"]["agreement_fp32"] == 1.0


def test_cuda_asked_without_cuda_exits_2(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cuda", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o")],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "--device cuda was asked" in proc.stderr and "--device cpu" in proc.stderr
    assert not (tmp_path / "d").exists() and not (tmp_path / "o").exists()


def test_report_folder_is_out_then_env_then_default():
    mod = _module()
    assert mod.out_folder("x", {"OUT": "/e"}) == Path("x")
    assert mod.out_folder(None, {"OUT": "/e"}) == Path("/e")
    assert mod.out_folder(None, {}) == Path("gpu-check-out")
    assert mod.parse([]).device == "cuda"  # the default is the GPU check


def _check(mod, base: Path, tmp_path: Path):
    args = mod.parse(["--device", "cpu", "--data", str(base / "data")])
    c = mod.GpuCheck(args, mod.PROFILES["ci"], tmp_path)
    c.phase("data", c.data)
    assert c.report["data"]["reused"] is True  # the fixture's run generated it
    return c


def test_a_device_engine_that_disagrees_fails_the_run(cpu_run, tmp_path, monkeypatch):
    mod = _module()
    c = _check(mod, cpu_run[2], tmp_path)
    from occbench_baselines.voting import VotingEngine

    vote = VotingEngine.vote

    def wrong(self, target, empty_policy=None):
        out = vote(self, target, empty_policy)
        if self.backend == "torch":
            out = out.copy()
            out.flat[0] = (int(out.flat[0]) + 1) % 20
        return out

    monkeypatch.setattr(VotingEngine, "vote", wrong)
    c.phase("voting", c.voting)
    failed = [x for x in c.report["checks"] if not x["passed"]]
    assert len(failed) == 2 and all(x["gating"] and x["value"] == 2 for x in failed)  # one voxel per target, 2 targets
    assert c.exit_code() == 1
    saved = json.loads((tmp_path / "gpu-check.json").read_text())
    assert saved["passed"] is False and saved["voting"][0]["differing_voxels"] == 2


def test_a_phase_that_raises_is_recorded_and_fails_the_run(cpu_run, tmp_path):
    mod = _module()
    c = _check(mod, cpu_run[2], tmp_path)

    def boom():
        raise RuntimeError("out of memory (simulated)")

    c.phase("voting", boom)
    saved = json.loads((tmp_path / "gpu-check.json").read_text())
    assert saved["passed"] is False and c.exit_code() == 1
    assert saved["errors"][0]["phase"] == "voting" and "simulated" in saved["errors"][0]["error"]
    assert saved["checks"][-1] == {
        "name": "voting: ran without error",
        "passed": False,
        "gating": True,
        "value": "RuntimeError: out of memory (simulated)",
        "threshold": None,
        "detail": "",
    }


def test_budget_spent_skips_measurements_not_checks(cpu_run, tmp_path):
    mod = _module()
    c = _check(mod, cpu_run[2], tmp_path)
    c.budget = 0.0
    assert c.may_measure("x") is False
    assert c.report["skipped"] == [{"what": "x", "why": "time budget of 0 s spent"}]

"""OccFiner on an accelerator: one command that checks the CUDA paths against the CPU and measures them.

    python benchmarks/gpu_check.py --device cuda          # on a GPU machine: well under 8 minutes
    python benchmarks/gpu_check.py --device cpu           # the same script end to end on the CPU, at CI size

What it does, phase by phase (progress lines on stdout, each with the elapsed time):

1. **data**: generates occbench-mini into ``--data`` (default ``./gpu-check-data``), or reuses what an earlier run
   generated there: the val split of the ``tiny`` size (40 scans, ``occbench synth --size tiny``), with the
   predictions of ``voxformer-sim`` only. ``--device cpu`` uses a 6-scan val sequence instead, and crops every
   grid to 32 x 32 x 32 (CI size).
2. **voting**: the stage-2 voting engine on the device (torch backend) against the CPU engine (numba, the CPU
   default) over the labelled targets of the val sequence, at n = 5, 10, 25 (CI: 1, 2): the labels must be
   identical. Targets/s of both engines (first target, which fills the window, and the rest).
3. **stage-1 agreement**: OccFiner stage 1 with the small configuration (the shipped ``voxformer-sim``
   checkpoint) and the paper configuration (4.50 M parameters, random initialisation, seed 0), on the same
   windows of the val sequence: the per-voxel argmax of the logits on the device, in fp32 (TF32 off), must
   agree with the CPU's on at least 99.9 % of the voxels; the agreement with mixed precision (AMP: bf16 where
   supported, else fp16) is reported, not gated. Then whole-sequence inference (``refine_sequence``, the code
   ``occbench evaluate`` runs) of the first scans with the shipped checkpoint, device against CPU, the same way.
4. **stage-1 speed**: windows/s and frames/s of a forward pass (every frame of a window is an output, so
   frames/s = T x windows/s), fp32 and AMP; scans/s of ``refine_sequence`` over the whole val sequence.
5. **training step**: forward + loss (weighted CE + exact Lovasz) + backward + Adam, the head run on the
   labelled scans only, as ``occbench occfiner-train`` does; AMP on CUDA.

Every measurement also records the peak GPU memory (``torch.cuda.max_memory_allocated``) of its phase. Each
timed measurement runs until a time cap or a number of rounds, and a measurement that would start after the
whole budget (``--budget``) is spent is skipped and listed as such, so a run stays under 8 minutes.

Output: one JSON file, ``gpu-check.json``, in ``--out`` if given, else in ``$OUT`` if that variable is set, else
in ``./gpu-check-out``; it is rewritten after every phase (an interrupted run leaves what it measured). It
holds torch / CUDA / cuDNN versions, the GPU's name, the command, every number, and every check with its pass
flag. Exit codes: 0 every gating check passed; 1 a gating check failed (or a phase raised); 2 usage error, or
``--device cuda`` without a CUDA device. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runs from a checkout without an install, given the dependencies
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

SCHEMA = "occbench-gpu-check/1"
REPORT_NAME = "gpu-check.json"
MODEL = "voxformer-sim"  # the onboard model of the shipped checkpoint used
AGREEMENT_MIN = 0.999  # fp32 argmax agreement, device vs CPU
AMP_REPORTED_MIN = 0.99  # AMP agreement: reported against this, never gating
EXIT_FAILED, EXIT_USAGE = 1, 2


@dataclass(frozen=True)
class Profile:
    """Sizes and caps of one run."""

    name: str
    mini: str  # "tiny" (occbench synth --size tiny, val split) or "ci" (6 scans)
    crop: int | None  # grids cropped to crop x crop x Z (None: the full 256 x 256 x 32)
    voting_n: tuple[int, ...]
    windows: int  # windows of the agreement check
    refine_targets: int  # refine_sequence agreement on scans 0 .. refine_targets - 1
    warmup: int  # untimed rounds before a timed measurement
    max_rounds: int
    measure_s: float  # time cap of one timed measurement (at least one round runs)
    budget_s: float  # no measurement starts after this (the correctness checks always run)


PROFILES = {
    "full": Profile(
        "full",
        mini="tiny",
        crop=None,
        voting_n=(5, 10, 25),
        windows=2,
        refine_targets=10,
        warmup=2,
        max_rounds=30,
        measure_s=8.0,
        budget_s=420.0,
    ),
    "ci": Profile(
        "ci",
        mini="ci",
        crop=32,
        voting_n=(1, 2),
        windows=1,
        refine_targets=4,
        warmup=0,
        max_rounds=1,
        measure_s=0.0,
        budget_s=300.0,
    ),
}


def mini_config(kind: str):
    from occbench.synth import MiniConfig, tiny_mini_config

    if kind == "tiny":
        return tiny_mini_config(0)
    return MiniConfig(seed=0, scans={"08": 6}, splits={"val": ("08",)}, onboard=(MODEL,), lookahead=5, size="custom")


class GpuCheck:
    def __init__(self, args: argparse.Namespace, profile: Profile, out_dir: Path):
        self.args = args
        self.p = profile
        self.dev = torch.device(args.device)
        self.cuda = self.dev.type == "cuda"
        self.out = out_dir / REPORT_NAME
        self.t0 = time.perf_counter()
        self.budget = float(args.budget if args.budget is not None else profile.budget_s)
        self.report: dict = {
            "schema": SCHEMA,
            "command": shlex.join([Path(sys.executable).name, *sys.argv]),
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "profile": dataclasses.asdict(profile),
            "device": self._device_info(),
            "versions": self._versions(),
            "settings": {
                "budget_s": self.budget,
                "agreement_min": AGREEMENT_MIN,
                "amp_reported_min": AMP_REPORTED_MIN,
                "torch_threads": torch.get_num_threads(),
            },
            "checks": [],
            "phases": {},
            "skipped": [],
            "errors": [],
            "passed": None,
            "peak_gpu_mib": None,
        }

    # -- bookkeeping -----------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def log(self, msg: str) -> None:
        print(f"[gpu-check {self.elapsed():6.1f} s] {msg}", flush=True)

    def save(self) -> None:
        from occbench.io.atomic import atomic_write_text

        self.report["wall_s"] = round(self.elapsed(), 2)
        gating = [c for c in self.report["checks"] if c["gating"]]
        self.report["passed"] = bool(gating) and all(c["passed"] for c in gating) and not self.report["errors"]
        self.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out, json.dumps(self.report, indent=1, default=_plain) + "\n")

    def check(self, name: str, passed: bool, value, threshold=None, gating: bool = True, detail: str = "") -> None:
        self.report["checks"].append(
            {
                "name": name,
                "passed": bool(passed),
                "gating": gating,
                "value": value,
                "threshold": threshold,
                "detail": detail,
            }
        )
        what = "check" if gating else "reported"
        self.log(
            f"{what} {name}: {'PASS' if passed else 'FAIL'} (value {value}"
            + (f", threshold {threshold}" if threshold is not None else "")
            + ")"
        )

    def phase(self, name: str, fn: Callable[[], None]) -> None:
        t = time.perf_counter()
        self.log(f"phase {name} ...")
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - recorded, the other phases still run
            self.report["errors"].append(
                {"phase": name, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=8)}
            )
            self.check(f"{name}: ran without error", False, f"{type(e).__name__}: {e}")
            if self.cuda:
                torch.cuda.empty_cache()
        self.peak_mib()
        self.report["phases"][name] = round(time.perf_counter() - t, 2)
        self.log(f"phase {name} done in {self.report['phases'][name]:.1f} s")
        self.save()

    def left(self) -> float:
        return self.budget - self.elapsed()

    def may_measure(self, what: str) -> bool:
        if self.left() > 0:
            return True
        self.report["skipped"].append({"what": what, "why": f"time budget of {self.budget:.0f} s spent"})
        self.log(f"skipped {what}: time budget spent")
        return False

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def peak_mib(self) -> float | None:
        """Peak GPU memory (MiB) since the last :meth:`reset_peak`; also kept in the report's overall peak."""
        if not self.cuda:
            return None
        mib = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        self.report["peak_gpu_mib"] = max(self.report.get("peak_gpu_mib") or 0.0, mib)
        return mib

    def timed(self, fn: Callable[[], object]) -> dict:
        """Warm-up rounds, then rounds until the time cap or ``max_rounds`` (at least one)."""
        self.reset_peak()
        for _ in range(self.p.warmup):
            fn()
            self.sync()
        times: list[float] = []
        start = time.perf_counter()
        cap = max(0.0, min(self.p.measure_s, self.left()))
        while not times or (len(times) < self.p.max_rounds and time.perf_counter() - start < cap):
            t = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - t)
        return {
            "rounds": len(times),
            "warmup": self.p.warmup,
            "mean_s": float(np.mean(times)),
            "median_s": float(np.median(times)),
            "min_s": float(np.min(times)),
            "peak_gpu_mib": self.peak_mib(),
        }

    def _device_info(self) -> dict:
        d: dict = {
            "requested": str(self.dev),
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
        }
        if self.cuda:
            prop = torch.cuda.get_device_properties(self.dev)
            d.update(
                name=torch.cuda.get_device_name(self.dev),
                capability=list(torch.cuda.get_device_capability(self.dev)),
                total_memory_mib=round(prop.total_memory / 2**20),
                multiprocessors=prop.multi_processor_count,
                bf16=torch.cuda.is_bf16_supported(),
            )
        else:
            d["name"] = "cpu"
        return d

    @staticmethod
    def _versions() -> dict:
        v = {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "numpy": np.__version__,
        }
        try:
            import numba

            v["numba"] = numba.__version__
        except ImportError:  # pragma: no cover - numba is a dependency
            v["numba"] = None
        try:
            from importlib.metadata import version

            v["occbench"] = version("occbench")
        except Exception:  # noqa: BLE001 - run from a checkout without an install
            v["occbench"] = None
        return v

    # -- data -----------------------------------------------------------------------------------------------
    def crop(self, a: np.ndarray) -> np.ndarray:
        s = self.p.crop
        return np.ascontiguousarray(a[:s, :s] if s else a)

    def data(self) -> None:
        from occbench.datasets import OccbenchMini
        from occbench.io.mini_manifest import generated, read_manifest
        from occbench.synth import GENERATOR_VERSION, generate_mini

        cfg = mini_config(self.p.mini)
        root = Path(self.args.data) / f"mini-v{GENERATOR_VERSION}-{self.p.mini}"
        reused = (root / "mini.json").is_file() and MODEL in generated(read_manifest(root)).get("val", [])
        t = time.perf_counter()
        if not reused:
            self.log(f"generating occbench-mini ({self.p.mini}, val split, {MODEL}) into {root} ...")
        workers = 1 if self.p.mini == "ci" else None
        generate_mini(root, cfg, progress=False, workers=workers, splits=["val"], onboard=[MODEL])
        gen_s = time.perf_counter() - t
        ds = OccbenchMini(root, split="val", onboard=MODEL, generate=False, progress=False)
        self.seq = seq = ds.sequences[0]
        self.poses = np.asarray(seq.poses, np.float64)
        self.n_scans = seq.num_scans
        t = time.perf_counter()
        self.frames = [self.crop(seq.prediction(i)) for i in range(self.n_scans)]
        read_s = time.perf_counter() - t
        self.labelled = list(seq.labelled_frames)
        self.report["data"] = {
            "root": str(root),
            "size": self.p.mini,
            "reused": reused,
            "scans": self.n_scans,
            "labelled": len(self.labelled),
            "grid": list(self.frames[0].shape),
            "generate_s": round(gen_s, 2),
            "read_s": round(read_s, 2),
        }
        self.log(
            f"data: {self.n_scans} scans ({'reused' if reused else f'generated in {gen_s:.1f} s'}), "
            f"grid {self.frames[0].shape}"
        )

    # -- stage 2: voting --------------------------------------------------------------------------------------
    def voting(self) -> None:
        from occbench_baselines.occfiner_voting import OccFinerVotingOptions, voting_config
        from occbench_baselines.voting import VotingEngine

        rows = []
        frames = self.frames.__getitem__
        for n in self.p.voting_n:
            cfg = voting_config(OccFinerVotingOptions(n=n), self.seq)
            if self.p.crop:
                cfg = dataclasses.replace(cfg, grid_shape=tuple(self.frames[0].shape))
            targets = self.labelled
            runs = {}
            for side, device, backend in (("cpu", "cpu", "auto"), ("device", str(self.dev), "torch")):
                self.reset_peak()
                eng = VotingEngine(frames, self.poses, self.seq.calib, cfg, device=device, backend=backend)
                labels, times = [], []
                for tg in targets:
                    t = time.perf_counter()
                    labels.append(eng.vote(tg))
                    times.append(time.perf_counter() - t)
                rest = sum(times[1:])
                runs[side] = {
                    "backend": eng.backend,
                    "device": str(eng.device),
                    "labels": labels,
                    "first_target_s": times[0],
                    "targets_per_s": (len(times) - 1) / rest if rest > 0 else 1 / times[0],
                    "peak_gpu_mib": self.peak_mib() if side == "device" else None,
                }
            diff = sum(int((a != b).sum()) for a, b in zip(runs["cpu"]["labels"], runs["device"]["labels"]))
            total = sum(a.size for a in runs["cpu"]["labels"])
            row = {
                "n": n,
                "targets": len(targets),
                "window_scans_mean": float(
                    np.mean([min(self.n_scans - 1, t + n) - max(0, t - n) + 1 for t in targets])
                ),
                "differing_voxels": diff,
                "voxels": total,
            }
            for side in ("cpu", "device"):
                r = runs[side]
                row[side] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "labels"}
            rows.append(row)
            self.check(
                f"voting n={n}: device labels identical to the CPU engine's",
                diff == 0,
                diff,
                0,
                detail=f"{len(targets)} targets, {total} voxels; device {runs['device']['backend']}, "
                f"cpu {runs['cpu']['backend']}",
            )
            self.log(
                f"voting n={n}: cpu {row['cpu']['targets_per_s']:.2f} targets/s, device "
                f"{row['device']['targets_per_s']:.2f} targets/s (first target {row['device']['first_target_s']:.2f} s)"
            )
        self.report["voting"] = rows

    # -- stage 1 ----------------------------------------------------------------------------------------------
    def models(self) -> dict:
        """name -> (CPU model fp32 in eval mode, description, window config)."""
        from occbench_baselines.occfiner.method import load_checkpoint, shipped_checkpoint
        from occbench_baselines.occfiner.model import OccFinerConfig, OccFinerNet
        from occbench_baselines.occfiner.windows import WindowConfig

        path = shipped_checkpoint(MODEL)
        small, extra = load_checkpoint(path, torch.device("cpu"))
        small = copy.deepcopy(small).eval()
        wcfg = WindowConfig(**extra["window_config"]) if extra.get("window_config") else WindowConfig()
        torch.manual_seed(0)
        paper = OccFinerNet(OccFinerConfig.paper()).eval()
        return {
            "small": (small, f"shipped checkpoint {path.name} (small configuration)", wcfg),
            "paper": (paper, "paper configuration, random initialisation (seed 0)", wcfg),
        }

    def window(self, pivot: int, wcfg) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        from occbench_baselines.occfiner.windows import window_indices

        idx = window_indices(pivot, self.n_scans, wcfg)
        pred = torch.from_numpy(np.stack([self.frames[i] for i in idx]))[None]
        tf = np.stack([np.linalg.inv(self.poses[pivot]) @ self.poses[i] for i in idx]).astype(np.float32)
        return pred, torch.from_numpy(tf)[None], idx

    def pivots(self) -> list[int]:
        lab = self.labelled
        mid = len(lab) // 2
        return (lab[mid:] + lab[:mid])[: self.p.windows]

    def device_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return copy.deepcopy(model).to(self.dev).eval()

    def amp(self) -> tuple[bool, torch.dtype]:
        from occbench_baselines.occfiner.train import amp_settings

        use, dtype, _ = amp_settings(self.dev, True)
        return use, dtype

    def stage1_agreement(self) -> None:
        from occbench_baselines.occfiner import model as model_module

        self.stage1 = {}
        self.nets = self.models()
        use_amp, amp_dtype = self.amp()
        for name, (cpu_model, desc, wcfg) in self.nets.items():
            dev_model = self.device_model(cpu_model)
            res: dict = {
                "source": desc,
                "parameters": cpu_model.num_parameters(),
                "window": dataclasses.asdict(wcfg),
                "windows": self.pivots(),
            }
            agree = {"fp32": [0, 0], "amp": [0, 0]}
            cpu_s = []
            for pv in self.pivots():
                pred, tf, idx = self.window(pv, wcfg)
                t = time.perf_counter()
                with torch.inference_mode():
                    ref = cpu_model(pred.long(), tf).argmax(2)
                cpu_s.append(time.perf_counter() - t)
                sparse = model_module.SPARSE_EMBEDDING_ON_CPU
                if not self.cuda:  # the CPU mode runs the device side on the dense embedding path, as CUDA does
                    model_module.SPARSE_EMBEDDING_ON_CPU = False
                try:
                    pd, td = pred.to(self.dev), tf.to(self.dev)
                    for mode in ("fp32", "amp"):
                        with (
                            torch.inference_mode(),
                            torch.autocast(self.dev.type, dtype=amp_dtype, enabled=use_amp and mode == "amp"),
                        ):
                            lab = dev_model(pd.long(), td).argmax(2).cpu()
                        agree[mode][0] += int((lab == ref).sum())
                        agree[mode][1] += ref.numel()
                finally:
                    model_module.SPARSE_EMBEDDING_ON_CPU = sparse
            res["cpu_reference_s_per_window"] = float(np.mean(cpu_s))
            for mode in ("fp32", "amp"):
                a = agree[mode][0] / agree[mode][1]
                res[f"agreement_{mode}"] = a
                gating = mode == "fp32"
                self.check(
                    f"stage1 {name} forward {mode}: device argmax agrees with the CPU's",
                    a >= (AGREEMENT_MIN if gating else AMP_REPORTED_MIN),
                    round(a, 6),
                    AGREEMENT_MIN if gating else AMP_REPORTED_MIN,
                    gating=gating,
                    detail=f"{agree[mode][1]} voxels in {len(self.pivots())} window(s) "
                    f"of T = {wcfg.local + wcfg.reference}"
                    + (
                        ""
                        if mode == "fp32"
                        else f"; autocast {str(amp_dtype).replace('torch.', '') if use_amp else 'off'}"
                    ),
                )
            self.stage1[name] = res
            del dev_model
        self.report["stage1"] = self.stage1
        self.refine_agreement()

    def refine_agreement(self) -> None:
        """``refine_sequence`` (what ``occbench evaluate`` runs) of the first scans, shipped checkpoint, device vs
        CPU."""
        from occbench_baselines.occfiner.infer import refine_sequence

        cpu_model, _, wcfg = self.nets["small"]
        targets = list(range(min(self.p.refine_targets, self.n_scans)))
        fr = self.frames.__getitem__
        t = time.perf_counter()
        ref = dict(
            refine_sequence(
                copy.deepcopy(cpu_model),
                fr,
                self.poses,
                self.n_scans,
                targets,
                wcfg,
                device="cpu",
                amp=False,
                progress=False,
            )
        )
        res = {"targets": len(targets), "cpu_s": time.perf_counter() - t}
        for mode in ("fp32", "amp"):
            out = dict(
                refine_sequence(
                    self.device_model(cpu_model),
                    fr,
                    self.poses,
                    self.n_scans,
                    targets,
                    wcfg,
                    device=self.dev,
                    amp=mode == "amp",
                    progress=False,
                )
            )
            same = sum(int((out[f] == ref[f]).sum()) for f in targets)
            total = sum(ref[f].size for f in targets)
            a = same / total
            res[f"agreement_{mode}"] = a
            gating = mode == "fp32"
            self.check(
                f"stage1 small refine_sequence {mode}: device labels agree with the CPU's",
                a >= (AGREEMENT_MIN if gating else AMP_REPORTED_MIN),
                round(a, 6),
                AGREEMENT_MIN if gating else AMP_REPORTED_MIN,
                gating=gating,
                detail=f"scans 0..{len(targets) - 1}, {total} voxels",
            )
        self.stage1["small"]["refine_agreement"] = res

    def stage1_speed(self) -> None:
        use_amp, amp_dtype = self.amp()
        for name, (cpu_model, _, wcfg) in self.nets.items():
            if not self.may_measure(f"stage1 {name} forward speed"):
                continue
            model = self.device_model(cpu_model)
            pred, tf, idx = self.window(self.pivots()[0], wcfg)
            pd, td = pred.to(self.dev).long(), tf.to(self.dev)
            T = len(idx)
            speed = {}
            for mode in ("fp32", "amp"):
                if not self.may_measure(f"stage1 {name} forward {mode}"):
                    continue

                def fwd(mode=mode):
                    with (
                        torch.inference_mode(),
                        torch.autocast(self.dev.type, dtype=amp_dtype, enabled=use_amp and mode == "amp"),
                    ):
                        return model(pd, td)

                r = self.timed(fwd)
                r.update(
                    windows_per_s=1 / r["mean_s"],
                    frames_per_s=T / r["mean_s"],
                    window_frames=T,
                    autocast=(str(amp_dtype).replace("torch.", "") if use_amp and mode == "amp" else "off"),
                )
                speed[mode] = r
                self.log(
                    f"stage1 {name} forward {mode}: {r['windows_per_s']:.2f} windows/s, "
                    f"{r['frames_per_s']:.1f} frames/s, "
                    f"peak {r['peak_gpu_mib']} MiB"
                )
            self.stage1[name]["forward"] = speed
            model = pd = td = None  # frees the GPU memory (the closure fwd holds these names, so no del)
            self.save()
        for name, (cpu_model, _, wcfg) in self.nets.items():
            self.refine_speed(name, cpu_model, wcfg)

    def refine_speed(self, name: str, cpu_model: torch.nn.Module, wcfg) -> None:
        from occbench_baselines.occfiner.infer import refine_sequence

        res = {}
        for mode in ("fp32", "amp"):
            if not self.may_measure(f"stage1 {name} refine_sequence {mode}"):
                continue
            model = self.device_model(cpu_model)

            def run(targets, model=model, amp=mode == "amp") -> int:
                return sum(
                    1
                    for _ in refine_sequence(
                        model,
                        self.frames.__getitem__,
                        self.poses,
                        self.n_scans,
                        targets,
                        wcfg,
                        device=self.dev,
                        amp=amp,
                        progress=False,
                    )
                )

            if self.p.warmup:
                run([0])  # the windows of scan 0, untimed
            self.reset_peak()
            t = time.perf_counter()
            n = run(None)
            self.sync()
            dt = time.perf_counter() - t
            res[mode] = {
                "scans": n,
                "seconds": dt,
                "scans_per_s": n / dt,
                "peak_gpu_mib": self.peak_mib(),
                "warmup": "the windows of scan 0" if self.p.warmup else "none",
                "note": "one timed pass over the whole val sequence",
            }
            self.log(f"stage1 {name} refine_sequence {mode}: {n / dt:.2f} scans/s")
            del model
        self.stage1[name]["refine_sequence"] = res

    def train_step(self) -> None:
        from occbench_baselines.occfiner.losses import SSCLoss
        from occbench_baselines.occfiner.model import class_weights_tensor
        from occbench_baselines.occfiner.train import amp_settings
        from occbench_baselines.occfiner.windows import WindowDataset

        use_amp, amp_dtype, use_scaler = amp_settings(self.dev, True)
        for name, (cpu_model, _, wcfg) in self.nets.items():
            if not self.may_measure(f"stage1 {name} training step"):
                continue
            ds = WindowDataset([self.seq], wcfg, pivots="labelled")
            item = ds[len(ds) // 2]
            s = self.p.crop
            pred = item["pred"][:, :s, :s] if s else item["pred"]
            gt = item["gt"][:, :s, :s] if s else item["gt"]
            pred, gt = pred[None].to(self.dev).long(), gt[None].to(self.dev)
            tf = item["transforms"][None].to(self.dev).float()
            outputs = (gt != 255).flatten(2).any(-1)
            gt_sel = gt[outputs]
            model = copy.deepcopy(cpu_model).to(self.dev).train()
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
            loss_fn = SSCLoss(class_weights_tensor().to(self.dev))
            losses: list[float] = []

            def step():
                with torch.autocast(self.dev.type, dtype=amp_dtype, enabled=use_amp):
                    logits = model(pred, tf, None, outputs)
                loss, _ = loss_fn(logits, gt_sel)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                losses.append(float(loss.detach()))

            r = self.timed(step)
            r.update(
                steps_per_s=1 / r["mean_s"],
                labelled_outputs=int(outputs.sum()),
                window_frames=pred.shape[1],
                autocast=str(amp_dtype).replace("torch.", "") if use_amp else "off",
                grad_scaler=use_scaler,
                lovasz="exact",
                first_loss=losses[0],
                last_loss=losses[-1],
            )
            self.check(
                f"stage1 {name} training step: finite loss", bool(np.isfinite(losses).all()), round(losses[-1], 4)
            )
            self.stage1[name]["train_step"] = r
            self.log(f"stage1 {name} training step: {r['mean_s']:.3f} s/step, peak {r['peak_gpu_mib']} MiB")
            model = opt = None  # frees the GPU memory (the closure step holds these names, so no del)

    # -- run ------------------------------------------------------------------------------------------------
    def run(self) -> int:
        if self.cuda:  # fp32 means fp32: TF32 off for the agreement checks and the fp32 timings
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        self.report["settings"]["tf32"] = False if self.cuda else None
        self.log(
            f"device {self.report['device']['name']}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
            f"profile {self.p.name}; report: {self.out}"
        )
        self.save()
        self.phase("data", self.data)
        if "data" in self.report:
            self.phase("voting", self.voting)
            self.phase("stage1-agreement", self.stage1_agreement)
            if hasattr(self, "nets"):
                self.phase("stage1-speed", self.stage1_speed)
                self.phase("training-step", self.train_step)
        self.save()
        failed = [c["name"] for c in self.report["checks"] if c["gating"] and not c["passed"]]
        self.log(
            f"{'PASSED' if self.report['passed'] else 'FAILED'}: "
            f"{sum(c['passed'] for c in self.report['checks'] if c['gating'])}"
            f"/{sum(c['gating'] for c in self.report['checks'])} gating checks passed"
            + (f"; failed: {'; '.join(failed)}" if failed else "")
            + f"; report: {self.out}"
        )
        return self.exit_code()

    def exit_code(self) -> int:
        return 0 if self.report["passed"] else EXIT_FAILED


def out_folder(out: str | None, env: dict | None = None) -> Path:
    """Where gpu-check.json goes: ``--out``, else ``$OUT``, else ``./gpu-check-out``."""
    env = os.environ if env is None else env
    return Path(out if out is not None else env.get("OUT") or "gpu-check-out")


def _plain(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    ap.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cuda (default): the GPU check; cpu: the same script on the CPU (CI size unless --profile full)",
    )
    ap.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default=None,
        help="sizes and caps: full (default with cuda) or ci (default with cpu: 32 x 32 x 32 grids, one window)",
    )
    ap.add_argument(
        "--data", default="gpu-check-data", help="folder for the generated occbench-mini (reused by later runs)"
    )
    ap.add_argument("--out", default=None, help="folder of gpu-check.json (default: $OUT if set, else ./gpu-check-out)")
    ap.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds after which no further measurement starts (full: 420, ci: 300)",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    profile = PROFILES[args.profile or ("full" if args.device == "cuda" else "ci")]
    out_dir = out_folder(args.out)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            f"gpu_check: --device cuda was asked, but torch {torch.__version__} sees no CUDA device "
            f"(built with CUDA {torch.version.cuda}). Install a CUDA build of torch on a GPU machine (README, "
            f"'GPU users'), or run the CPU mode: python benchmarks/gpu_check.py --device cpu",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return GpuCheck(args, profile, out_dir).run()


if __name__ == "__main__":
    sys.exit(main())

"""OccFiner stage-1 timings per window (T = 6, 256 x 256 x 32, B = 1).

    pytest benchmarks/bench_occfiner.py --benchmark-only

CPU: forward and training step (forward + CE/Lovász loss + backward + Adam) of the small and tiny
configurations, and forward of the paper configuration. Inputs look like real scenes (about 12 % of the
voxels occupied, the rest empty), so the embedding takes its sparse CPU path; training steps run the
segmentation head only on the scans with ground truth (``TrainConfig.head_on_labelled``, the default). On CUDA
(when available) the paper configuration with mixed precision: inference frames/s (= T / forward time) and training-step
time; skipped otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occbench_baselines.occfiner.losses import SSCLoss
from occbench_baselines.occfiner.model import OccFinerConfig, OccFinerNet, class_weights_tensor
from occbench_baselines.occfiner.train import amp_settings

T = 6


def _window(device: torch.device, seed: int = 0, gt_scans: int = 3, occupied: float = 0.12):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randint(1, 20, (1, T, 256, 256, 32), generator=g, dtype=torch.uint8)
    pred[torch.rand(pred.shape, generator=g) > occupied] = 0
    gt = pred.clone()
    gt[:, gt_scans:] = 255  # like a real window: only some scans have ground truth (every 5th scan is labelled)
    tf = torch.eye(4).repeat(1, T, 1, 1)
    tf[..., 0, 3] = torch.arange(T, dtype=torch.float32) * 0.8
    return pred.to(device), gt.to(device), tf.to(device)


def _step_fn(model: OccFinerNet, device: torch.device, gt_scans: int = 3, lovasz_max_voxels: int | None = None):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = SSCLoss(class_weights_tensor().to(device), lovasz_max_voxels=lovasz_max_voxels)
    use_amp, dtype, _ = amp_settings(device, True)
    pred, gt, tf = _window(device, gt_scans=gt_scans)

    outputs = (gt != 255).flatten(2).any(-1)  # head only on the scans with ground truth, as the training loop does
    gt_sel = gt[outputs]

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=use_amp):
            logits = model(pred.long(), tf, None, outputs)
        loss, _ = loss_fn(logits, gt_sel)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return float(loss)

    return step


def _fwd_fn(model: OccFinerNet, device: torch.device):
    use_amp, dtype, _ = amp_settings(device, True)
    pred, _, tf = _window(device)
    model.eval()

    @torch.no_grad()
    def fwd():
        with torch.autocast(device.type, dtype=dtype, enabled=use_amp):
            out = model(pred.long(), tf)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out.shape

    return fwd


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_cpu_small_forward(benchmark):
    torch.manual_seed(0)
    f = _fwd_fn(OccFinerNet(OccFinerConfig.small()), torch.device("cpu"))
    benchmark.extra_info.update(config="small", device="cpu", threads=1, window_frames=T)
    assert benchmark.pedantic(f, rounds=3, warmup_rounds=1) == (1, T, 20, 256, 256, 32)


@pytest.mark.parametrize(
    "config,gt_scans,lovasz_max_voxels",
    [("small", 1, None), ("small", 1, 2**17), ("small", 2, 2**17), ("tiny", 1, 2**17)],
    ids=["small-1gt-exact-lovasz", "small-1gt-lovasz-131k", "small-2gt-lovasz-131k", "tiny-1gt-lovasz-131k"],
)
def test_cpu_train_step(benchmark, config, gt_scans, lovasz_max_voxels):
    torch.manual_seed(0)
    f = _step_fn(OccFinerNet(OccFinerConfig.named(config)).train(), torch.device("cpu"), gt_scans, lovasz_max_voxels)
    benchmark.extra_info.update(
        config=config, device="cpu", threads=1, window_frames=T, gt_scans=gt_scans, lovasz_max_voxels=lovasz_max_voxels
    )
    assert np.isfinite(benchmark.pedantic(f, rounds=2, warmup_rounds=1))


def test_cpu_paper_forward(benchmark):
    torch.manual_seed(0)
    f = _fwd_fn(OccFinerNet(OccFinerConfig.paper()), torch.device("cpu"))
    benchmark.extra_info.update(config="paper", device="cpu", threads=1, window_frames=T)
    assert benchmark.pedantic(f, rounds=2, warmup_rounds=1) == (1, T, 20, 256, 256, 32)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@cuda
def test_cuda_paper_inference_fps(benchmark):
    dev = torch.device("cuda")
    torch.manual_seed(0)
    f = _fwd_fn(OccFinerNet(OccFinerConfig.paper()).to(dev), dev)
    benchmark.extra_info.update(
        config="paper", device=torch.cuda.get_device_name(), amp=str(amp_settings(dev, True)[1])
    )
    benchmark.pedantic(f, rounds=10, warmup_rounds=2)
    benchmark.extra_info["frames_per_second"] = T / benchmark.stats.stats.mean


@cuda
def test_cuda_paper_train_step(benchmark):
    dev = torch.device("cuda")
    torch.manual_seed(0)
    f = _step_fn(OccFinerNet(OccFinerConfig.paper()).to(dev).train(), dev)
    benchmark.extra_info.update(
        config="paper", device=torch.cuda.get_device_name(), amp=str(amp_settings(dev, True)[1])
    )
    assert np.isfinite(benchmark.pedantic(f, rounds=5, warmup_rounds=2))

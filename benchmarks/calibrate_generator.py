r"""Calibrate an onboard error model on a held-out **train** sequence (never val): onboard and Average Fusion gains.

    python benchmarks/calibrate_generator.py --root DIR [--generator 1.2] [--model voxformer-sim] \
        [--name CANDIDATE] [--set PARAMETER=VALUE ...] [--stage1 CHECKPOINT] [--json OUT.json] [--train-root DIR]

``--root DIR``: where the held-out sequence's ground truth lives; generated there on first use. The held-out
sequence is the last train sequence of the default mini (``01``, 200 scans; the same world and ground truth as in the
default mini of that generator). It must be left out of stage-1 training and of the voting selection
(``benchmarks/ablate_voting.py --split train`` on a root without it).

``--train-root DIR`` writes stage 1's training data instead: the ground truth of the other train sequences (``00``)
in ``DIR`` and the candidate's predictions of them in ``DIR/candidates/NAME``, and prints the
``occbench occfiner-train --root DIR --predictions-root DIR/candidates/NAME --sequence 00 ...`` command (the
shipped recipe) whose checkpoint ``--stage1`` then scores.

For one candidate parameter set (``--set``, the onboard model's parameters: for generator 1.2 those of
:class:`occbench.synth.onboard12.Spec12` and of the 1.1 ``ModelSpec``), the script writes the predictions of every
scan of the held-out sequence (in memory from the world, to ``DIR/candidates/NAME``), scores the onboard predictions
and Average Fusion (n = 25, unweighted, ``empty_policy=occupancy``, exact engine: the method's defaults) on its
labelled scans, and prints the relative mIoU gain over onboard at 12.8 / 25.6 / 51.2 m next to the paper's
(Table 5, VoxFormer on SemanticKITTI val: AF -4.3 % / -1.2 % / +8.9 %, stage 1 +5.2 % / +9.0 % / +8.9 %).
``--stage1 CHECKPOINT`` also scores OccFiner stage 1 (a checkpoint trained without the held-out sequence) on it.
Numbers are SYNTHETIC and on held-out train data; they are not leaderboard results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # ablate_voting, next to this file

from ablate_voting import RANGES, Split, scores  # noqa: E402

from occbench.metrics import FrameArrays, SSCMetric  # noqa: E402

HELD_OUT = "01"  # the last train sequence of the default mini
PAPER_GAINS = {  # relative mIoU gain over VoxFormer (%), OccFiner Table 5 (SemanticKITTI val), 12.8 / 25.6 / 51.2 m
    "average-fusion": (-4.3, -1.2, 8.9),
    "occfiner-stage1": (5.2, 9.0, 8.9),
}


def held_out_root(root: Path, generator: str) -> Path:
    """``root`` holding the ground truth of the held-out train sequence (generated on first use)."""
    return train_root(root, generator, (HELD_OUT,))


def fit_sequences(generator: str) -> tuple[str, ...]:
    """The train sequences of the default mini other than the held-out one: what stage 1 is trained on."""
    from occbench.synth import default_mini_config

    return tuple(s for s in default_mini_config(generator=generator).splits["train"] if s != HELD_OUT)


def train_root(root: Path, generator: str, seqs: tuple[str, ...]) -> Path:
    """``root`` holding the ground truth of the train sequences ``seqs`` (generated on first use), the same
    worlds and ground truth as in the default mini of ``generator``."""
    from occbench.synth import MiniConfig, default_mini_config, generate_mini

    d = default_mini_config(generator=generator)
    cfg = MiniConfig(
        seed=d.seed,
        scans={s: d.scans[s] for s in seqs},
        splits={"train": tuple(seqs)},
        onboard=d.onboard,
        generator=generator,
        size="custom",
    )
    generate_mini(root, cfg, progress=False, onboard=[])
    return root


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def gains(on: dict, other: dict) -> list[float]:
    return [100 * (other[r][1] - on[r][1]) / on[r][1] for r in RANGES]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--generator", default="1.2")
    ap.add_argument("--model", default="voxformer-sim")
    ap.add_argument("--name", default="default")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PARAMETER=VALUE",
        help="a parameter of the model (JSON value), e.g. depth_sigma=1.0 or inst_miss_class='{}'",
    )
    ap.add_argument("--split", default="train", choices=("train",), help="always train: calibration never looks at val")
    ap.add_argument("--max-targets", type=int, default=0, help="labelled scans scored (0: all 40)")
    ap.add_argument("--stage1", type=Path, default=None, help="also score this stage-1 checkpoint")
    ap.add_argument("--json", type=Path, default=None, help="append the candidate's row to this JSON-lines file")
    ap.add_argument(
        "--train-root",
        type=Path,
        default=None,
        help="only write the training data of stage 1: the ground truth of the train sequences other than the "
        "held-out one and the candidate's predictions of them (DIR/candidates/NAME), then print the training command",
    )
    a = ap.parse_args(argv)
    overrides = {}
    for s in a.set:
        k, sep, v = s.partition("=")
        if not sep:
            ap.error(f"--set expects PARAMETER=VALUE, got {s!r}")
        overrides[k] = _value(v)
    overrides = {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in overrides.items()}
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    from occbench.synth.calibrate import write_predictions

    if a.train_root is not None:
        seqs = fit_sequences(a.generator)
        train_root(a.train_root, a.generator, seqs)
        preds = a.train_root / "candidates" / a.name
        write_predictions(a.train_root, preds, [a.model], "train", {a.model: overrides})
        print(
            f"stage-1 training data of {a.name} ({a.model}, train sequences {', '.join(seqs)}) in "
            f"{time.perf_counter() - t0:.0f} s; train with\n  occbench occfiner-train --dataset mini --root "
            f"{a.train_root} --predictions-root {preds} --onboard {a.model} --split train "
            + " ".join(f"--sequence {s}" for s in seqs)
            + " --config small --input-skip 4 --epochs 12 --lr 2e-3 --threads 1 --output RUN",
            flush=True,
        )
        return {"train_root": str(a.train_root), "predictions": str(preds), "sequences": list(seqs)}
    root = held_out_root(a.root, a.generator)

    out = a.root / "candidates" / a.name
    write_predictions(root, out, [a.model], "train", {a.model: overrides})
    t_pred = time.perf_counter() - t0
    data = Split(root, "train", a.model, a.max_targets, out)
    seq = data.seqs[0]
    onboard, af = SSCMetric(), SSCMetric()
    from occbench_baselines.voting import SensorWeights, VotingConfig, make_engine

    cfg = VotingConfig(
        n=25, empty_policy="occupancy", weights=SensorWeights(kind="none"), num_classes=seq.label_map.num_classes
    )
    eng = make_engine("exact", seq.prediction, seq.poses, seq.calib, cfg, device="cpu")
    for t in data.targets[seq.name]:
        gt = data.gts[seq.name][t]
        onboard.update_frame(seq.prediction(t), FrameArrays(gt))
        af.update_frame(eng.vote(t), FrameArrays(gt))
    row = {
        "name": a.name,
        "generator": a.generator,
        "model": a.model,
        "sequence": HELD_OUT,
        "split": "train",
        "overrides": {str(k): v for k, v in overrides.items()},
        "targets": data.num_targets,
        "onboard": scores(onboard),
        "average-fusion": scores(af),
    }
    row["gain"] = {"average-fusion": gains(row["onboard"], row["average-fusion"])}
    if a.stage1 is not None:
        row["occfiner-stage1"] = stage1_scores(a.stage1, data)
        row["gain"]["occfiner-stage1"] = gains(row["onboard"], row["occfiner-stage1"])
    row["seconds"] = {"predictions": round(t_pred, 1), "total": round(time.perf_counter() - t0, 1)}
    fmt = lambda v: " / ".join(f"{x:.2f}" for x in v)  # noqa: E731
    print(
        f"{a.name} ({a.model}, generator {a.generator}, held-out train sequence {HELD_OUT}, SYNTHETIC): "
        f"{json.dumps(row['overrides'])}"
    )
    iou, miou = fmt([row["onboard"][r][0] for r in RANGES]), fmt([row["onboard"][r][1] for r in RANGES])
    print(f"  onboard IoU {iou}, mIoU {miou}")
    for m, g in row["gain"].items():
        print(
            f"  {m}: mIoU {fmt([row[m][r][1] for r in RANGES])}, gain {' / '.join(f'{x:+.1f} %' for x in g)} "
            f"(paper {' / '.join(f'{x:+.1f} %' for x in PAPER_GAINS[m])})"
        )
    print(f"  {row['seconds']['total']:.0f} s", flush=True)
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(row) + "\n")
    return row


def stage1_scores(checkpoint: Path, data: Split) -> dict:
    """Scores of OccFiner stage 1 (``checkpoint``) on the held-out sequence's labelled scans."""
    from occbench_baselines.occfiner.method import OccFinerStage1

    m = OccFinerStage1(checkpoint=str(checkpoint), device="cpu")
    seq = data.seqs[0]
    metric = SSCMetric()
    for t, grid in m.refine(seq, data.targets[seq.name]):
        metric.update_frame(grid, FrameArrays(data.gts[seq.name][t]))
    return scores(metric)


if __name__ == "__main__":
    main()

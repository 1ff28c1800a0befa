"""The pseudo-label curve: fixed-step training, the oracle row, top-1 from top-2 files, the curve's rows, table,
plot and page (``occbench autolabel --curve``, docs/autolabel.md "The curve")."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from occbench.autolabel.curve import curve_rows, curve_table, is_curve, worth
from occbench.autolabel.protocol import ProtocolConfig, SourceSpec, preset
from occbench.autolabel.runner import AutolabelData, curve_configs, run_curve
from occbench.autolabel.sources import generate_pseudo_labels
from occbench.autolabel.storage import PseudoLabelStore
from occbench.autolabel.train import SampleReader, TrainItem, train_student
from occbench.testing import make_semantickitti_tree

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    # train 00 (2 labelled scans), val 08 (3 labelled scans, with ground truth: the curve's pool in these tests)
    return make_semantickitti_tree(
        tmp_path_factory.mktemp("alc") / "kitti", {"00": 6, "08": 11}, onboard={"noisy": 0.2}, seed=5
    )


def _weights(ds):
    return ds.label_map.class_weights()


def test_fixed_steps_whatever_the_number_of_frames_and_resume_exact(tree, tmp_path):
    from occbench.datasets import SemanticKITTI

    ds = SemanticKITTI(tree, "val", sequences=["08"])
    frames = ds["08"].labelled_frames
    reader = SampleReader(ds, None, None)
    cfg = ProtocolConfig(width=4, crop=32, steps=5, epochs=1)
    infos = {}
    for n in (1, 2, 3):
        items = [TrainItem("gt", "08", f) for f in frames[:n]]
        _, info = train_student(cfg, 0, items, reader, 20, _weights(ds), tmp_path / f"n{n}", progress=False)
        infos[n] = info
    assert {n: i["steps"] for n, i in infos.items()} == {1: 5, 2: 5, 3: 5}
    assert {n: i["epochs"] for n, i in infos.items()} == {1: 5, 2: 3, 3: 2}  # ceil(5 / n) epochs, the last cut
    assert [len(i["epoch_losses_this_run"]) for i in infos.values()] == [5, 3, 2]
    # an interrupted fixed-step run resumes from its last finished epoch to the same weights
    items = [TrainItem("gt", "08", f) for f in frames[:2]]
    a, _ = train_student(cfg, 0, items, reader, 20, _weights(ds), tmp_path / "a", progress=False)
    short = dataclasses.replace(cfg, steps=2)  # exactly epoch 0 of the 5-step run
    train_student(short, 0, items, reader, 20, _weights(ds), tmp_path / "b", progress=False)
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert ck["epochs_done"] == 1
    ck["digest"] = cfg.digest()
    torch.save(ck, tmp_path / "b" / "checkpoint.pt")
    b, info = train_student(cfg, 0, items, reader, 20, _weights(ds), tmp_path / "b", progress=False)
    assert info["resumed_from_epoch"] == 1 and info["epochs_run_now"] == 2 and info["steps"] == 5
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_steps_zero_keeps_the_epoch_digests():
    """Fixed-step training is opt-in: epoch-based configurations keep the digest (run folders) they had."""
    full = preset("full")
    assert "steps" not in full.training_key() and full.steps == 0
    assert full.digest() == "71f0a6900ecc"  # the digest of the committed full-form results (mini-full.json)
    assert dataclasses.replace(full, steps=10).digest() != full.digest()
    with pytest.raises(ValueError, match="steps"):
        ProtocolConfig(steps=-1)


def test_curve_configs_order_and_errors():
    cfg = preset("curve-ci")
    plan = curve_configs(cfg, [3, 6], ("top1", "top2"))
    assert [(k, c.max_pl_frames, c.pl_format) for k, c in plan] == [
        ("gt", 0, "top1"),
        ("oracle", 3, "top1"),
        ("oracle", 6, "top1"),
        ("pl", 3, "top2"),
        ("pl", 3, "top1"),
        ("pl", 6, "top2"),
        ("pl", 6, "top1"),
    ]
    assert len({c.steps for _, c in plan}) == 1 and plan[0][1].steps == cfg.steps
    for bad in ([], [0, 2], [2, 2]):
        with pytest.raises(ValueError, match="amounts"):
            curve_configs(cfg, bad, ("top1",))
    data = AutolabelData("semantickitti", "/nonexistent")
    with pytest.raises(ValueError, match="steps"):
        run_curve(data, SourceSpec.parse("onboard:noisy"), dataclasses.replace(cfg, steps=0), [1], "/tmp/x")
    with pytest.raises(ValueError, match="pseudo-labels"):
        run_curve(data, SourceSpec.parse("oracle"), cfg, [1], "/tmp/x")


def test_oracle_reads_the_ground_truth_of_the_pool_frame(tree):
    from occbench.datasets import SemanticKITTI

    train = SemanticKITTI(tree, "train", sequences=["00"])
    pool = SemanticKITTI(tree, "val", sequences=["08"])
    f = pool["08"].labelled_frames[1]
    s = SampleReader(train, pool, None)(TrainItem("oracle", "08", f))
    fr = pool["08"].frame(f)
    assert np.array_equal(s.top1, fr.ground_truth()) and np.array_equal(s.occ, fr.input_occupancy())
    assert s.top2 is None and s.q1 is None
    assert (s.top1 == 255).any()  # ignore / invalid voxels stay unsupervised, as for the GT set
    spec = SourceSpec.parse("oracle")
    assert spec.is_oracle and not spec.has_pseudo_labels and spec.name == "oracle" and "oracle" in spec.label()


def test_top1_files_come_from_the_top2_files_of_the_same_source(tree, tmp_path, monkeypatch):
    """Top-1 of a source with scores is its top-2 files' top-1 plane: refine is not run again, same labels."""
    from occbench.datasets import SemanticKITTI
    from occbench.methods import load_method

    ds = SemanticKITTI(tree, "val", onboard="noisy", sequences=["08"])
    src = SourceSpec.parse("average-fusion:noisy:n=1")
    out = tmp_path / "pl" / src.slug
    cfg = ProtocolConfig(max_pl_frames=2)
    man2 = generate_pseudo_labels(ds, src, dataclasses.replace(cfg, pl_format="top2"), out / "top2", progress=False)
    assert man2["format"] == "top2"
    # the independent reference: the method's own refine labels
    method = load_method("average-fusion", n=1)
    want = dict(method.refine(ds["08"], [f for _, f in man2["frames"]]))
    cls = type(method)
    monkeypatch.setattr(cls, "refine", lambda *a, **k: (_ for _ in ()).throw(AssertionError("refine ran again")))
    man1 = generate_pseudo_labels(ds, src, dataclasses.replace(cfg, pl_format="top1"), out / "top1", progress=False)
    assert man1["format"] == "top1" and man1["frames"] == man2["frames"]
    s1, s2 = PseudoLabelStore(out / "top1"), PseudoLabelStore(out / "top2")
    for _, f in man1["frames"]:
        p1 = s1.read("08", f)
        assert p1.k == 1 and np.array_equal(p1.top1, want[f]) and np.array_equal(s2.read("08", f).top1, want[f])
    assert man1["quality"] == man2["quality"]


def test_worth_interpolates_the_gt_line():
    def row(kind, added, miou):
        return {"kind": kind, "gt_frames": 10, "added_frames": added, "miou_51.2": [miou]}

    rows = [row("gt", 0, 0.05), row("oracle", 10, 0.07), row("oracle", 30, 0.11)]
    assert worth(rows, 0.06, "miou_51.2") == "15"
    assert worth(rows, 0.09, "miou_51.2") == "30"  # 20 + (0.09 - 0.07) / (0.11 - 0.07) * 20
    assert worth(rows, 0.04, "miou_51.2") == "< 10"
    assert worth(rows, 0.2, "miou_51.2") == "> 40"
    flat = [row("gt", 0, 0.05), row("oracle", 10, 0.04)]
    assert "not monotone" in worth(flat, 0.045, "miou_51.2")


def test_pool_config_and_root(tmp_path, monkeypatch):
    from occbench.autolabel.pool import POOL_SCANS, pool_config, pool_root

    monkeypatch.setenv("OCCBENCH_DATA", str(tmp_path))
    c = pool_config(["12", "13"], ["voxformer-sim"], generator="1.1")
    assert dict(c.splits) == {"test": ("12", "13")} and c.scans == {"12": POOL_SCANS, "13": POOL_SCANS}
    assert c.onboard == ("voxformer-sim",) and c.seed == 0
    assert pool_root(c) == tmp_path / f"mini-v1.1-plpool-{c.digest()}"
    assert pool_root(pool_config(["12"], ["voxformer-sim"], generator="1.1")) != pool_root(c)
    with pytest.raises(ValueError):
        pool_config([], ["voxformer-sim"])


def test_curve_end_to_end_rows_table_plot_and_page(tree, tmp_path, monkeypatch):
    """The CI-sized curve on a small tree (pool: val 08, which has ground truth): every row, the same steps,
    resumable, tabulated, plotted and rendered as the auto-labeling page by occbench leaderboard."""
    cfg = dataclasses.replace(preset("curve-ci"), pl_split="val", max_train_frames=1, max_eval_frames=1)
    data = AutolabelData("semantickitti", str(tree), {}, {"train": ["00"], "val": ["08"]})
    src = SourceSpec.parse("average-fusion:noisy:n=1")
    out = tmp_path / "runs"
    res = run_curve(data, src, cfg, [1, 2], out, progress=False, command="occbench autolabel --curve 1,2")
    kinds = [(r["header"]["source"]["name"], r["header"]["training_frames"]) for r in res]
    assert kinds == [
        ("gt", {"gt": 1, "pl": 0}),
        ("oracle", {"gt": 1, "pl": 0, "oracle": 1}),
        ("oracle", {"gt": 1, "pl": 0, "oracle": 2}),
        (src.name, {"gt": 1, "pl": 1}),
        (src.name, {"gt": 1, "pl": 1}),
        (src.name, {"gt": 1, "pl": 2}),
        (src.name, {"gt": 1, "pl": 2}),
    ]
    assert {r["header"]["training"]["steps"] for r in res} == {cfg.steps}
    fmts = [(r["header"]["pseudo_labels"] or {}).get("format") for r in res]
    assert fmts == [None, None, None, "top2", "top1", "top2", "top1"]
    assert is_curve(res) and not is_curve([r for r in res if r["header"]["source"]["name"] != "oracle"])
    rows = curve_rows(res)
    assert [(r["kind"], r["format"], r["added_frames"]) for r in rows] == [
        ("gt", "–", 0),
        ("oracle", "–", 1),
        ("pl", "top1", 1),
        ("pl", "top2", 1),
        ("oracle", "–", 2),
        ("pl", "top1", 2),
        ("pl", "top2", 2),
    ]
    base = rows[0]["miou_51.2"][0]
    table = curve_table(rows)
    assert len(table) == 2 + len(rows) and "GT + oracle" in table[3] and "| top2 |" in table[5]
    row = rows[2]
    assert f"{100 * row['miou_51.2'][0]:.2f}" in table[4]
    assert f"{100 * (row['miou_51.2'][0] - base):+.2f}" in table[4]
    # resume: every row is read back, nothing trained again
    import occbench.autolabel.runner as runner

    monkeypatch.setattr(runner, "train_student", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    assert run_curve(data, src, cfg, [1, 2], out, progress=False) == res
    # the page and its plot, through occbench leaderboard
    from click.testing import CliRunner

    from occbench.cli.leaderboard import leaderboard

    lb = tmp_path / "lb"
    (lb / "results").mkdir(parents=True)
    (lb / "reported").mkdir()
    (lb / "autolabel").mkdir()
    (lb / "autolabel" / "tiny-curve.json").write_text(json.dumps(res))
    args = ["--results", str(lb / "results"), "--reported", str(lb / "reported"), "--output", str(lb)]
    r = CliRunner().invoke(leaderboard, args + ["--check"])
    assert r.exit_code != 0 and "autolabel-tiny.md" in r.output
    r = CliRunner().invoke(leaderboard, args)
    assert r.exit_code == 0, r.output
    page = (lb / "autolabel-tiny.md").read_text()
    assert "## Pseudo-label curve (`tiny-curve.json`)" in page and "(plots/autolabel-tiny-curve.png)" in page
    assert all(line in page for line in table)
    from occbench.render.figure import PNG_DATA_KEY, png_text

    assert PNG_DATA_KEY in png_text(lb / "plots" / "autolabel-tiny-curve.png")
    r = CliRunner().invoke(leaderboard, args + ["--check"])
    assert r.exit_code == 0, r.output


def test_held_out_train_frames_for_choosing_hyper_parameters(tree):
    """--eval-split train scores the labelled train frames that are not GT training frames (never a GT frame)."""
    from occbench.autolabel.runner import eval_targets
    from occbench.datasets import SemanticKITTI
    from occbench.errors import OccbenchError

    ds = SemanticKITTI(tree, "val", sequences=["08"])
    every = [("08", int(f)) for f in ds["08"].labelled_frames]
    assert len(every) == 3
    cfg = ProtocolConfig(train_split="val", eval_split="val")
    assert eval_targets(ds, cfg, every[:1]) == every[1:]
    assert eval_targets(ds, dataclasses.replace(cfg, max_eval_frames=1), [every[1]]) == [every[0]]
    # another eval split: nothing is removed (the GT frames are of another split)
    assert eval_targets(ds, dataclasses.replace(cfg, train_split="train"), every[:1]) == every
    with pytest.raises(OccbenchError, match="held-out"):
        eval_targets(ds, cfg, every)


def test_cli_eval_split_and_lr_reach_the_run(tree, tmp_path):
    from click.testing import CliRunner

    from occbench.cli.autolabel import autolabel

    base = ["--dataset", "semantickitti", "--root", str(tree), "--no-gt", "--source", "gt", "--preset", "curve-ci"]
    base += ["--train-sequence", "08", "--max-train-frames", "1", "--max-eval-frames", "0", "-q"]
    base += ["--out", str(tmp_path / "runs"), "--markdown", str(tmp_path / "t.md")]
    r = CliRunner().invoke(autolabel, [*base, "--eval-split", "train", "--lr", "0.005", "--json", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    (doc,) = json.loads((tmp_path / "a").read_text())
    hp = doc["header"]["autolabel"]["hyper_parameters"]
    assert hp["lr"] == 0.005 and hp["eval_split"] == "train" and hp["train_split"] == "train"
    assert doc["header"]["training_frames"]["gt"] == 1 and doc["header"]["eval_frames"] == 2  # 3 labelled - 1 GT
    r = CliRunner().invoke(autolabel, [*base, "--json", str(tmp_path / "b")])  # the preset's: val, lr 1e-3
    assert r.exit_code == 0, r.output
    (doc,) = json.loads((tmp_path / "b").read_text())
    hp = doc["header"]["autolabel"]["hyper_parameters"]
    assert hp["lr"] == 0.001 and hp["eval_split"] == "val"

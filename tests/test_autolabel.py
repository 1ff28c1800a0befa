"""Auto-labeling protocol: storage format, loss, student, sources, training determinism/resume, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from occbench.autolabel import storage
from occbench.autolabel.model import StudentConfig, StudentNet, soft_top2_loss
from occbench.autolabel.protocol import PRESETS, ProtocolConfig, SourceSpec, preset
from occbench.autolabel.sources import generate_pseudo_labels, scores_function, select_evenly
from occbench.autolabel.storage import PseudoLabel, PseudoLabelStore
from occbench.autolabel.train import SampleReader, TrainItem, epoch_plan, train_student
from occbench.errors import FormatError
from occbench.testing import make_semantickitti_tree
from occbench_baselines.voting.top2 import engine_top2

torch.set_num_threads(1)
GRID = (256, 256, 32)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    # train 00, val 08, unlabeled test 11: 2 labelled scans each
    return make_semantickitti_tree(
        tmp_path_factory.mktemp("al") / "kitti", {"00": 6, "08": 6, "11": 6}, onboard={"noisy": 0.2}, seed=3
    )


def _grid(rng, hi=20):
    return rng.integers(0, hi, GRID).astype(np.uint8)


# ---------------------------------------------------------------- storage
def test_storage_roundtrip_top1_top2_and_header(tmp_path):
    rng = np.random.default_rng(0)
    st = PseudoLabelStore(tmp_path)
    t1 = np.zeros(GRID, np.uint8)
    t1[10:20, 30:40, 3:5] = 9
    n1 = st.write("11", 5, PseudoLabel(t1))
    raw = st.path("11", 5).read_bytes()
    assert raw[:6] == b"OCCPL\0" and raw[6] == 1 and raw[7] == 1 and raw[8] == 20 and raw[9:16] == bytes(7)
    assert n1 == len(raw) < 20_000  # mostly empty grid compresses far below the 4 MiB .label
    back = st.read("11", 5)
    assert back.k == 1 and back.top2 is None and np.array_equal(back.top1, t1)

    a, b = _grid(rng), _grid(rng)
    conf = np.stack([storage.quantize(np.full(GRID, 0.75)), storage.quantize(np.full(GRID, 0.25))])
    st.write("11", 10, PseudoLabel(a, b, conf))
    r2 = st.read("11", 10)
    assert r2.k == 2 and np.array_equal(r2.top1, a) and np.array_equal(r2.top2, b) and np.array_equal(r2.conf, conf)
    assert conf[0, 0, 0, 0] == 191 and conf[1, 0, 0, 0] == 64
    np.testing.assert_allclose(r2.q1()[0, 0, 0], 191 / 255, rtol=1e-6)
    du = st.disk_usage()
    assert du["frames"] == 2 and du["bytes"] == sum(p.stat().st_size for p in st.files())


def test_storage_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        storage.encode(PseudoLabel(np.full(GRID, 20, np.uint8)))  # not a train id
    with pytest.raises(ValueError):
        storage.encode(PseudoLabel(np.zeros((2, 2, 2), np.uint8)))
    with pytest.raises(FormatError):
        storage.decode(b"NOTPL\0" + bytes(20))
    good = storage.encode(PseudoLabel(np.zeros(GRID, np.uint8)))
    with pytest.raises(FormatError):
        storage.decode(good[:-5])


# ---------------------------------------------------------------- loss and model
def test_loss_matches_weighted_cross_entropy_and_soft_target():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 20, 4, 8, 8, generator=g)
    t1 = torch.randint(0, 20, (2, 4, 8, 8), generator=g)
    t1[0, 0, :3] = 255
    t2 = torch.randint(0, 20, (2, 4, 8, 8), generator=g)
    w = torch.rand(20, generator=g) + 0.1
    ref = F.cross_entropy(logits, t1, weight=w, ignore_index=255)
    torch.testing.assert_close(soft_top2_loss(logits, t1, None, None, w), ref)
    torch.testing.assert_close(soft_top2_loss(logits, t1, t2, torch.ones(t1.shape), w), ref)
    # q1 = 0: the whole target mass on top-2 (weights still indexed by top-1)
    logp = F.log_softmax(logits, 1)
    valid = t1 != 255
    t1c = torch.where(valid, t1, 0)
    wt = w[t1c] * valid
    want = (wt * -logp.gather(1, t2[:, None])[:, 0]).sum() / wt.sum()
    torch.testing.assert_close(soft_top2_loss(logits, t1, t2, torch.zeros(t1.shape), w), want)


def test_student_shapes_and_predict():
    torch.manual_seed(0)
    net = StudentNet(StudentConfig(width=4))
    x = (torch.rand(1, 32, 24, 32) < 0.2).to(torch.uint8)
    out = net(x)
    assert out.shape == (1, 20, 32, 24, 32)
    torch.testing.assert_close(out.permute(0, 1, 4, 2, 3).contiguous(), net.forward_czxy(x))
    assert torch.equal(net.predict(x), out.argmax(1).to(torch.uint8))
    with pytest.raises(ValueError):
        net(torch.zeros(1, 30, 32, 32))


# ---------------------------------------------------------------- protocol definition
def test_source_spec_and_config():
    s = SourceSpec.parse("average-fusion:voxformer-sim:n=10,empty_policy=vote")
    assert (s.method, s.onboard, dict(s.options)) == (
        "average-fusion",
        "voxformer-sim",
        {"n": 10, "empty_policy": "vote"},
    )
    assert SourceSpec.parse(s.name) == s and "/" not in s.slug and ":" not in s.slug
    assert SourceSpec.parse("gt").is_gt and SourceSpec.parse("gt").label().startswith("GT-Train (")
    with pytest.raises(ValueError):
        SourceSpec.parse("onboard")
    c = preset("full")
    assert c == PRESETS["full"] and c.header()["id"] == "autolabel-v1"
    assert preset("full", epochs=2).digest() != c.digest()
    assert preset("full", seeds=[1, 2]).digest() == c.digest()  # seeds pick runs, they do not change one
    with pytest.raises(ValueError):
        ProtocolConfig(crop=100)
    with pytest.raises(ValueError):
        ProtocolConfig(pl_format="logits")


def test_select_evenly_and_epoch_plan():
    assert select_evenly(list(range(10)), 0) == list(range(10))
    assert select_evenly(list(range(10)), 3) == [0, 4, 9]
    assert select_evenly(list(range(4)), 9) == [0, 1, 2, 3]
    cfg = ProtocolConfig(crop=64)
    p0, p0b, p1 = epoch_plan(7, 0, 0, cfg), epoch_plan(7, 0, 0, cfg), epoch_plan(7, 0, 1, cfg)
    assert p0 == p0b and p0 != p1
    assert sorted(i for i, *_ in p0) == list(range(7))
    assert all(0 <= ox <= 192 and 0 <= oy <= 192 for *_, ox, oy in p0)


def test_voting_top2_math():
    """Top-2 of a voting source: its decision, the best other class, vote shares (engine faked)."""
    votes = torch.tensor([[3.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 2.0]])

    class Engine:
        def vote(self, t):
            return np.array([0, 0, 2], np.uint8)

        def votes(self, t):
            return votes

    ((t, l1, l2, p1, p2),) = list(engine_top2(Engine(), [4]))
    assert t == 4 and l1.tolist() == [0, 0, 2] and l2.tolist() == [1, 0, 0]
    np.testing.assert_allclose(p1, [0.75, 1.0, 0.5])
    np.testing.assert_allclose(p2, [0.25, 0.0, 0.25])


def test_scores_come_from_the_refine_top2_hook_only():
    """The voting methods give scores through their own ``refine_top2``; autolabel knows no method class."""
    from occbench.methods import OffboardMethod, load_method

    class Plain(OffboardMethod):
        name = "plain"

        def refine(self, sequence, targets):
            yield from ()

    class Scored(Plain):
        def refine_top2(self, sequence, targets):
            yield from ()

    assert scores_function(Plain()) is None
    s = Scored()
    assert scores_function(s) == s.refine_top2
    for name in ("average-fusion", "occfiner-voting"):
        m = load_method(name)
        assert scores_function(m) == m.refine_top2
    assert scores_function(load_method("onboard")) is None


# ---------------------------------------------------------------- sources
def test_pseudo_labels_of_onboard_equal_its_predictions_and_quality(tree, tmp_path):
    from occbench.datasets import SemanticKITTI
    from occbench.metrics import FrameArrays, SSCMetric

    ds = SemanticKITTI(tree, "val", onboard="noisy", sequences=["08"])  # a split with GT: quality is computed
    cfg = ProtocolConfig(pl_format="top2", max_pl_frames=0)
    man = generate_pseudo_labels(ds, SourceSpec.parse("onboard:noisy"), cfg, tmp_path / "pl", progress=False)
    assert man["format"] == "top1" and "no scores" in man["format_note"]  # onboard: labels only
    st = PseudoLabelStore(tmp_path / "pl")
    seq = ds["08"]
    m = SSCMetric("semantickitti-ssc")
    for f in seq.labelled_frames:
        assert np.array_equal(st.read("08", f).top1, seq.prediction(f))
        m.update_frame(seq.prediction(f), FrameArrays(seq.frame(f).ground_truth()))
    assert man["frames"] == [["08", f] for f in seq.labelled_frames]
    assert man["disk"]["frames"] == len(seq.labelled_frames) and man["disk"]["bytes"] > 0
    assert man["quality"]["51.2"]["miou"] == pytest.approx(m.compute()["51.2"]["miou"])
    before = {p: p.stat().st_mtime_ns for p in st.files()}
    generate_pseudo_labels(ds, SourceSpec.parse("onboard:noisy"), cfg, tmp_path / "pl", progress=False)
    assert {p: p.stat().st_mtime_ns for p in st.files()} == before  # resume: nothing rewritten


# ---------------------------------------------------------------- training
def test_training_is_deterministic_and_resume_exact(tree, tmp_path):
    from occbench.datasets import SemanticKITTI

    ds = SemanticKITTI(tree, "train", sequences=["00"])
    items = [TrainItem("gt", "00", f) for f in ds["00"].labelled_frames]
    reader = SampleReader(ds, None, None)
    w = ds.label_map.class_weights()
    cfg2 = ProtocolConfig(width=4, epochs=2, crop=32)
    a, _ = train_student(cfg2, 0, items, reader, 20, w, tmp_path / "a", progress=False)
    cfg1 = ProtocolConfig(width=4, epochs=1, crop=32)
    train_student(cfg1, 0, items, reader, 20, w, tmp_path / "b", progress=False)
    # pretend the 2-epoch run was interrupted after epoch 1: rewrite the checkpoint's digest
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    ck["digest"] = cfg2.digest()
    torch.save(ck, tmp_path / "b" / "checkpoint.pt")
    b, info = train_student(cfg2, 0, items, reader, 20, w, tmp_path / "b", progress=False)
    assert info["resumed_from_epoch"] == 1 and info["epochs_run_now"] == 1
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    c, _ = train_student(cfg2, 1, items, reader, 20, w, tmp_path / "c", progress=False)
    assert not torch.equal(next(iter(c.state_dict().values())), next(iter(a.state_dict().values())))


# ---------------------------------------------------------------- end to end (CLI)
def test_cli_end_to_end_ci_and_resume(tree, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from occbench.cli.autolabel import autolabel

    out, md, js = tmp_path / "runs", tmp_path / "autolabel-test.md", tmp_path / "all.json"
    args = [
        "--dataset",
        "semantickitti",
        "--root",
        str(tree),
        "--train-sequence",
        "00",
        "--eval-sequence",
        "08",
        "--pl-sequence",
        "11",
        "--source",
        "onboard:noisy",
        "--preset",
        "ci",
        "--max-eval-frames",
        "1",
        "--out",
        str(out),
        "--markdown",
        str(md),
        "--json",
        str(js),
        "--quiet",
    ]
    r = CliRunner().invoke(autolabel, args)
    assert r.exit_code == 0, r.output
    res = json.loads(js.read_text())
    assert [x["header"]["source"]["name"] for x in res] == ["gt", "onboard:noisy"]
    for x in res:
        assert x["schema"] == "occbench.results" and x["header"]["autolabel"]["id"] == "autolabel-v1"
        assert {"12.8", "25.6", "51.2"} <= set(x["metrics"]["ssc"]) and x["metrics"]["ssc"]["n_frames"] == 1
        assert 0.0 <= x["metrics"]["ssc"]["51.2"]["iou"] <= 1.0
        assert x["header"]["eval_frames"] == 1
    gt, pl = res
    assert gt["header"]["training_frames"] == {"gt": 2, "pl": 0} and gt["header"]["pseudo_labels"] is None
    assert pl["header"]["training_frames"] == {"gt": 2, "pl": 2}
    assert pl["header"]["pseudo_labels"]["format"] == "top1" and pl["header"]["pseudo_labels"]["disk"]["frames"] == 2
    text = md.read_text()
    assert "GT-Train (human labels)" in text and "GT-Train + PL-Test (onboard:noisy)" in text
    assert "## Reference: reported in the OccFiner paper (Table 6)" in text and "37.17" in text
    # second run: finished (source, seed) results are read back, nothing is trained again
    import occbench.autolabel.runner as runner

    monkeypatch.setattr(runner, "train_student", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    r2 = CliRunner().invoke(autolabel, args)
    assert r2.exit_code == 0, r2.output
    assert json.loads(js.read_text()) == res


def test_training_uses_top2_pseudo_labels(tree, tmp_path):
    """A pseudo-labelled item with top-2 labels trains through the soft target (different loss than top-1)."""
    from occbench.datasets import SemanticKITTI

    train = SemanticKITTI(tree, "train", sequences=["00"])
    test = SemanticKITTI(tree, "test", sequences=["11"])
    rng = np.random.default_rng(1)
    top1, top2 = _grid(rng), _grid(rng)
    conf = np.stack([np.full(GRID, 128, np.uint8), np.full(GRID, 127, np.uint8)])
    s1, s2 = PseudoLabelStore(tmp_path / "t1"), PseudoLabelStore(tmp_path / "t2")
    s1.write("11", 0, PseudoLabel(top1))
    s2.write("11", 0, PseudoLabel(top1, top2, conf))
    items = [TrainItem("pl", "11", 0)]
    cfg = ProtocolConfig(width=4, epochs=1, crop=32)
    w = train.label_map.class_weights()
    _, i1 = train_student(cfg, 0, items, SampleReader(train, test, s1), 20, w, tmp_path / "r1", progress=False)
    _, i2 = train_student(cfg, 0, items, SampleReader(train, test, s2), 20, w, tmp_path / "r2", progress=False)
    l1, l2 = i1["epoch_losses_this_run"][0], i2["epoch_losses_this_run"][0]
    assert np.isfinite(l1) and np.isfinite(l2) and l1 != l2
    sample = SampleReader(train, test, s2)(items[0])
    assert sample.top2 is not None and np.array_equal(sample.occ, test["11"].frame(0).input_occupancy())


def _changed_config(load):
    """A load_method whose methods report another configuration (as a new checkpoint or option would)."""

    def wrapped(*a, **k):
        m = load(*a, **k)
        config = m.config
        m.config = lambda onboard=None: {**config(onboard=onboard), "checkpoint_sha256": {"noisy": "0123456789abcdef"}}
        return m

    return wrapped


def test_resume_refuses_pseudo_labels_and_runs_of_another_method_configuration(tree, tmp_path, monkeypatch):
    from click.testing import CliRunner

    import occbench.autolabel.sources as sources
    import occbench.methods as methods
    from occbench.cli.autolabel import autolabel
    from occbench.datasets import SemanticKITTI
    from occbench.errors import OccbenchError

    ds = SemanticKITTI(tree, "val", onboard="noisy", sequences=["08"])
    src, cfg = SourceSpec.parse("onboard:noisy"), ProtocolConfig()
    man = generate_pseudo_labels(ds, src, cfg, tmp_path / "pl", progress=False)
    assert man["complete"] is True and man["method"]["name"] == "onboard"
    with monkeypatch.context() as mp:
        mp.setattr(sources, "load_method", _changed_config(sources.load_method))
        with pytest.raises(OccbenchError, match="another method configuration"):
            generate_pseudo_labels(ds, src, cfg, tmp_path / "pl", progress=False)
    # a finished protocol run is not read back for a source whose configuration changed since
    out = tmp_path / "runs"
    args = [
        "--dataset",
        "semantickitti",
        "--root",
        str(tree),
        "--train-sequence",
        "00",
        "--eval-sequence",
        "08",
        "--pl-sequence",
        "11",
        "--source",
        "onboard:noisy",
        "--no-gt",
        "--preset",
        "ci",
        "--max-eval-frames",
        "1",
        "--out",
        str(out),
        "--markdown",
        str(tmp_path / "t.md"),
        "--quiet",
    ]
    assert CliRunner().invoke(autolabel, args).exit_code == 0
    monkeypatch.setattr(methods, "load_method", _changed_config(methods.load_method))
    r = CliRunner().invoke(autolabel, args)
    assert r.exit_code == 1 and "another method configuration" in r.output and "delete" in r.output


def test_resume_reuses_pseudo_labels_of_the_same_configuration_with_tuple_options(tree, tmp_path):
    """occfiner-voting's options hold a tuple (``box``); read back from the manifest it is a list. The same
    configuration must be recognised, so a second seed reuses the pseudo-labels instead of refusing them."""
    from occbench.autolabel.sources import as_json
    from occbench.datasets import SemanticKITTI
    from occbench.methods import load_method

    src = SourceSpec.parse("occfiner-voting:noisy:sensor=lidar")
    cfg_mem = load_method(src.method, **dict(src.options)).config(onboard=src.onboard)
    assert isinstance(cfg_mem["options"]["box"], tuple)  # the case this test is about
    ds = SemanticKITTI(tree, "val", onboard="noisy", sequences=["08"])
    cfg = ProtocolConfig(max_pl_frames=1)
    first = generate_pseudo_labels(ds, src, cfg, tmp_path / "pl", progress=False)
    pl = next((tmp_path / "pl").rglob("*.pl"))
    mtime = pl.stat().st_mtime_ns
    again = generate_pseudo_labels(ds, src, cfg, tmp_path / "pl", progress=False)
    assert first["method"] == again["method"] == as_json(cfg_mem) and again["complete"] is True
    assert pl.stat().st_mtime_ns == mtime  # reused, not rewritten


def test_committed_autolabel_page_is_generated_from_its_committed_results():
    """leaderboards/autolabel-mini.md is what `occbench leaderboard` writes from leaderboards/autolabel/*.json (the
    curve, then the full form of mini-full.json), all rows of the full form from one run of the documented command on
    the current generator."""
    import json
    from pathlib import Path

    from occbench.autolabel.page import autolabel_pages
    from occbench.synth.config import GENERATOR_VERSION

    repo = Path(__file__).resolve().parents[1]
    results = json.loads((repo / "leaderboards" / "autolabel" / "mini-full.json").read_text())
    commands = {r["header"]["command"] for r in results}
    assert len(commands) == 1
    assert {r["header"]["dataset"]["train"]["generator"]["generator_version"] for r in results} == {GENERATOR_VERSION}
    page = (repo / "leaderboards" / "autolabel-mini.md").read_text()
    assert page == autolabel_pages(repo / "leaderboards" / "autolabel")["autolabel-mini.md"]
    assert commands.pop() in page  # the full form's command is shown with its rows

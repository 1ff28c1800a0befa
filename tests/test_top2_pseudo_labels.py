"""Top-2 pseudo-labels: storage round trip and quantisation, top-1/top-2 consistency of the voting helper (all
empty policies, random vote tensors), and OccFiner's ``refine_top2`` (stage 1 and stage 1 + 2) on a tiny tree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occbench.autolabel import storage
from occbench.autolabel.storage import PseudoLabel, PseudoLabelStore, top2_pseudo_label
from occbench.errors import FormatError
from occbench_baselines.voting.exact import decide_labels_torch
from occbench_baselines.voting.top2 import votes_top2

torch.set_num_threads(1)
GRID = (256, 256, 32)
EMPTY, CAR, ROAD = 0, 1, 9  # SemanticKITTI train ids


def _probs(rng):
    """Random (top1, top2, p1, p2) grids with p1 + p2 <= 1, p2 <= p1, plus a few exact extremes."""
    p1 = rng.uniform(0.05, 1.0, GRID)
    p2 = rng.uniform(0.0, 1.0, GRID) * np.minimum(p1, 1.0 - p1)
    p1.flat[:4], p2.flat[:4] = [1.0, 0.5, 0.0, 1 / 255], [0.0, 0.5, 0.0, 1 / 510]
    return (rng.integers(0, 20, GRID).astype(np.uint8), rng.integers(0, 20, GRID).astype(np.uint8), p1, p2)


def test_top2_storage_round_trip_and_quantisation_error(tmp_path):
    rng = np.random.default_rng(0)
    t1, t2, p1, p2 = _probs(rng)
    pl = top2_pseudo_label(t1, t2, p1, p2)
    st = PseudoLabelStore(tmp_path)
    n = st.write("11", 3, pl)
    back = st.read("11", 3)
    assert n == st.path("11", 3).stat().st_size
    assert back.k == 2 and np.array_equal(back.top1, t1) and np.array_equal(back.top2, t2)
    assert np.array_equal(back.conf, pl.conf) and back.conf.dtype == np.uint8
    # 1/255 steps, round to nearest: the error is at most half a step
    err1 = np.abs(back.conf[0] / 255.0 - p1).max()
    err2 = np.abs(back.conf[1] / 255.0 - p2).max()
    assert err1 <= 0.5 / 255 + 1e-12 and err2 <= 0.5 / 255 + 1e-12
    assert back.conf[0].flat[0] == 255 and back.conf[1].flat[0] == 0 and back.conf[0].flat[2] == 0
    assert np.all(back.conf[1] <= back.conf[0])
    q1 = back.q1()
    assert q1.dtype == np.float32 and np.all(q1 >= 0.5) and np.all(q1 <= 1.0)
    assert q1.flat[2] == 1.0  # both 0: the top-1 label alone


def test_top2_pseudo_label_caps_a_runner_up_above_the_label():
    t = np.zeros(GRID, np.uint8)
    p1, p2 = np.full(GRID, 2 / 7), np.full(GRID, 3 / 7)
    pl = top2_pseudo_label(t + CAR, t, p1, p2)
    assert np.all(pl.conf[0] == 73) and np.all(pl.conf[1] == 73)  # round(255 * 2/7) = 73, capped
    assert np.all(pl.q1() == 0.5)


def test_storage_refuses_and_rejects_inconsistent_top2(tmp_path):
    t = np.zeros(GRID, np.uint8)
    conf = np.stack([np.full(GRID, 100, np.uint8), np.full(GRID, 100, np.uint8)])
    conf[1, 5, 6, 7] = 101
    with pytest.raises(ValueError, match="c1 >= c2"):
        storage.encode(PseudoLabel(t, t, conf))
    # a file written by something else that breaks it is refused on read, naming the file
    import zlib

    body = b"".join(a.tobytes() for a in (t, t, conf[0], conf[1]))
    raw = storage.MAGIC + bytes([1, 2, 20]) + bytes(7) + zlib.compress(body, 6)
    with pytest.raises(FormatError, match="bad.pl"):
        storage.decode(raw, tmp_path / "bad.pl")
    conf[1, 5, 6, 7] = 100  # equal is consistent
    assert storage.decode(storage.encode(PseudoLabel(t, t, conf))).k == 2


def _check_votes(v: torch.Tensor, policy: str) -> int:
    """Check one vote tensor; returns the number of cells whose runner-up was capped."""
    label = decide_labels_torch(v, policy).long()
    l2, p1, p2 = votes_top2(v, label)
    tot = v.sum(1)
    has = tot > 0
    share = v / tot.clamp_min(1e-12)[:, None]
    # independent reference: the label's share, the best other share (lowest id on ties), capped at the label's
    ref1 = torch.where(has, share.gather(1, label[:, None])[:, 0], torch.ones_like(tot))
    other = share.clone()
    other[torch.arange(len(v)), label] = -1.0
    best, arg = other.max(1)
    ref2 = torch.where(has, torch.minimum(best.clamp_min(0), ref1), torch.zeros_like(tot))
    torch.testing.assert_close(p1, ref1, check_dtype=False)
    torch.testing.assert_close(p2, ref2, check_dtype=False)
    assert torch.all(p2 <= p1)
    assert torch.equal(l2, torch.where(ref2 > 0, arg, label))
    plural = has & (ref1 >= best)  # where the label is the plurality class nothing is capped
    torch.testing.assert_close(p2[plural], best.clamp_min(0)[plural], check_dtype=False)
    if policy == "vote" or (policy == "ignore" and not v[:, 0].any()):
        assert bool(plural[has].all())  # these policies decide the plurality class
    # stored: top-1 is the method's label and the most probable of the pair
    n = len(v)
    g = lambda a: a.numpy().reshape(-1)[:n]  # noqa: E731
    pad = lambda a, dt: np.resize(np.asarray(a, dt), int(np.prod(GRID))).reshape(GRID)  # noqa: E731
    pl = top2_pseudo_label(
        pad(g(label), np.uint8), pad(g(l2), np.uint8), pad(g(p1), np.float64), pad(g(p2), np.float64)
    )
    back = storage.decode(storage.encode(pl))
    assert np.array_equal(back.top1.reshape(-1)[:n], g(label).astype(np.uint8))
    assert np.all(back.conf[1] <= back.conf[0]) and np.all(back.q1() >= 0.5)
    return int((has & ~plural).sum())


@pytest.mark.parametrize("policy", ["vote", "occupancy", "ignore"])
def test_top1_and_top2_are_consistent_over_random_votes(policy):
    rng = np.random.default_rng({"vote": 1, "occupancy": 2, "ignore": 3}[policy])
    capped = 0
    for trial in range(20):
        rows = int(rng.integers(1, 400))
        v = rng.integers(0, 4, (rows, 20)) * (rng.random((rows, 20)) < rng.uniform(0.05, 0.6))
        if policy == "ignore" and trial % 2:
            v[:, 0] = 0  # no empty votes at all
        v[rng.random(rows) < 0.1] = 0  # cells without votes
        capped += _check_votes(torch.from_numpy(v.astype(np.float64)), policy)
    assert (capped > 0) == (policy != "vote")  # occupancy (and ignore beside empty votes) decide non-plurality labels


def test_the_occupancy_counterexample_is_stored_consistently():
    """Votes empty 3, car 2, road 2: the occupancy policy says car; the stored pair must not say empty is likelier."""
    v = torch.zeros(1, 20, dtype=torch.float64)
    v[0, EMPTY], v[0, CAR], v[0, ROAD] = 3, 2, 2
    label = decide_labels_torch(v, "occupancy").long()
    assert label.tolist() == [CAR]
    l2, p1, p2 = votes_top2(v, label)
    assert l2.tolist() == [EMPTY]
    assert p1.item() == pytest.approx(2 / 7) and p2.item() == pytest.approx(2 / 7)
    _check_votes(v, "occupancy")
    # the vote policy picks empty, the plurality: nothing capped
    l2v, p1v, p2v = votes_top2(v, decide_labels_torch(v, "vote").long())
    assert l2v.tolist() == [CAR] and p1v.item() == pytest.approx(3 / 7) and p2v.item() == pytest.approx(2 / 7)


# ---------------------------------------------------------------- OccFiner on a tiny tree, shipped checkpoint
@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from occbench.datasets.semantickitti import SemanticKITTI
    from occbench.testing import make_semantickitti_tree

    root = make_semantickitti_tree(
        tmp_path_factory.mktemp("top2") / "kitti", {"08": 6}, onboard={"voxformer-sim": 0.2}, seed=5
    )
    return SemanticKITTI(root, split="val", onboard="voxformer-sim", sensor="lidar")


@pytest.fixture(scope="module")
def seq(dataset):
    return dataset["08"]


def test_occfiner_stage1_refine_top2_matches_refine_and_its_softmax(seq):
    from occbench_baselines.occfiner.infer import refine_sequence
    from occbench_baselines.occfiner.method import OccFinerStage1, load_checkpoint, shipped_checkpoint

    m = OccFinerStage1(threads=1, device="cpu")
    assert m.config(onboard="voxformer-sim")["checkpoint_sha256"]["voxformer-sim"] != "missing"  # the shipped one
    labels = dict(m.refine(seq, [5, 0]))
    top2 = {t: rest for t, *rest in m.refine_top2(seq, [0, 5])}
    assert sorted(top2) == [0, 5]
    model, _ = load_checkpoint(shipped_checkpoint("voxformer-sim"), torch.device("cpu"))
    _, wcfg = m._model(seq)
    probs = dict(
        refine_sequence(
            model,
            seq.prediction,
            seq.poses,
            seq.num_scans,
            [0, 5],
            wcfg,
            return_probs=True,
            progress=False,
            device="cpu",
        )
    )
    for t, (l1, l2, p1, p2) in top2.items():
        np.testing.assert_array_equal(l1, labels[t])  # top-1 is refine's output, bit for bit
        assert l1.dtype == l2.dtype == np.uint8 and p1.dtype == p2.dtype == np.float32
        assert np.all(p2 <= p1) and np.all(l2 != l1) and np.all(p1 + p2 <= 1 + 1e-5)
        pr = probs[t]  # (C, X, Y, Z) averaged softmax
        np.testing.assert_allclose(p1, np.take_along_axis(pr, l1[None].astype(np.int64), 0)[0], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(p2, np.take_along_axis(pr, l2[None].astype(np.int64), 0)[0], rtol=1e-5, atol=1e-7)
        srt = np.sort(pr, axis=0)
        np.testing.assert_allclose(p1, srt[-1], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(p2, srt[-2], rtol=1e-5, atol=1e-7)
        assert top2_pseudo_label(l1, l2, p1, p2).conf[1].max() > 0


def test_occfiner_refine_top2_matches_refine_and_autolabel_stores_it(dataset, seq, tmp_path):
    """Stage 1 + 2: through the auto-labeling source (which calls ``refine_top2``), top-1 equals ``refine``."""
    from occbench.autolabel.protocol import ProtocolConfig, SourceSpec
    from occbench.autolabel.sources import generate_pseudo_labels, scores_function
    from occbench.methods import load_method
    from occbench_baselines.occfiner.method import OccFiner

    for name in ("occfiner", "occfiner-stage1"):
        m = load_method(name)
        assert scores_function(m) == m.refine_top2
    opts = {"n": 2, "sensor": "lidar", "threads": 1, "device": "cpu"}
    labels = dict(OccFiner(**opts).refine(seq, [0, 5]))
    src = SourceSpec("occfiner", "voxformer-sim", tuple(sorted(opts.items())))
    man = generate_pseudo_labels(dataset, src, ProtocolConfig(pl_format="top2"), tmp_path / "pl", progress=False)
    assert man["format"] == "top2" and man["disk"]["frames"] == 2
    store = PseudoLabelStore(tmp_path / "pl")
    for t in (0, 5):
        back = store.read(seq.name, t)
        np.testing.assert_array_equal(back.top1, labels[t])
        c1, c2 = back.conf.astype(int)
        assert np.all(c2 <= c1) and np.all(c1 + c2 <= 256) and np.all(c1 > 0)
        assert np.any(c1 < 255) and np.any(back.top1 > 0)  # stage 2 voted: shares, not certainties
        assert np.all((back.top2 != back.top1) | (c2 == 0))

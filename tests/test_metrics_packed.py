"""The bit-packed ``.invalid`` path: the kernels read the mask packed (as on disk), the states must equal the
unpacked path's exactly, for both kernels, both protocols, train and raw ids; and scoring from files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from occbench.errors import FormatError
from occbench.io.voxels import (
    map_label,
    read_bits_packed,
    read_invalid_as_stored,
    write_bits,
    write_invalid_kitti360,
    write_label,
)
from occbench.labels import load_label_map
from occbench.metrics import PROTOCOLS, FrameArrays, SSCMetric, _kernel, ssc_scores

SHAPE = (256, 256, 32)


def _random_frame(rng: np.random.Generator, C: int, density: float):
    """Train ids with empty space, ignore (255) and random invalid; some fully empty columns."""
    gt = np.where(rng.random(SHAPE) < density, rng.integers(1, C, SHAPE), 0).astype(np.uint8)
    gt[rng.random(SHAPE) < 0.05] = 255
    gt[:, :, :2] = rng.integers(0, C, (256, 256, 2))  # a "ground" layer in most columns
    gt[40:80] = 0  # whole empty columns
    pred = np.where(rng.random(SHAPE) < 0.8, np.where(gt == 255, 0, gt), rng.integers(0, C, SHAPE)).astype(np.uint8)
    pred[40:60] = 0
    inv = rng.random(SHAPE) < 0.3
    inv[100:110] = True  # fully invalid columns
    return pred, gt, inv


def _raw(lm, pred, gt, rng):
    pr = lm.inv_lut[pred].astype(np.uint16)
    gr = lm.inv_lut[np.where(gt == 255, 0, gt)].astype(np.uint16)
    gr[gt == 255] = rng.choice([52, 99, 1], size=int((gt == 255).sum()))  # raw ids that map to ignore
    return pr, gr


def test_packed_bit_order_is_packbits_msb_first():
    """Voxel i is bit 7 - (i & 7) of byte i >> 3, as np.packbits / write_bits store it."""
    packed = np.packbits(np.eye(8, dtype=bool)[3])  # voxel 3 only
    assert packed[0] == 1 << (7 - 3)
    for i in (0, 5, 31, 32, 777, 2_097_151):  # one invalid voxel anywhere: the same state as the unpacked mask
        inv = np.zeros(SHAPE, bool)
        inv.reshape(-1)[i] = True
        gt = np.zeros(SHAPE, np.uint8)
        gt.reshape(-1)[i] = 3
        a, b = SSCMetric(), SSCMetric()
        a.update_frame(gt, FrameArrays(gt, np.packbits(inv.reshape(-1))))
        b.update_frame(gt, FrameArrays(gt, inv))
        assert np.array_equal(a._counts, b._counts) and a.confusion()[3, 3] == 0, i


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("proto", ["semantickitti-ssc", "sscbench-kitti360-ssc"])
def test_packed_equals_unpacked_train_ids(proto, compiled):
    C = PROTOCOLS[proto].num_classes
    rng = np.random.default_rng(11)
    packed_m, bytes_m, bool_m = SSCMetric(proto), SSCMetric(proto), SSCMetric(proto)
    for m in (packed_m, bytes_m, bool_m):
        m.use_compiled = compiled
    for density in (0.05, 0.5):
        p, g, inv = _random_frame(rng, C, density)
        packed_m.update_frame(p, FrameArrays(g, np.packbits(inv.reshape(-1))))
        bytes_m.update_frame(p, FrameArrays(g, inv.reshape(-1).astype(np.uint8)))  # flat one flag per voxel
        bool_m.update_frame(p, FrameArrays(g, inv))
    assert np.array_equal(packed_m._counts, bool_m._counts) and np.array_equal(bytes_m._counts, bool_m._counts)
    assert packed_m.n_frames == bool_m.n_frames == 2


@pytest.mark.parametrize("compiled", [True, False])
def test_packed_equals_unpacked_raw_ids_and_batches(compiled):
    lm = load_label_map()
    rng = np.random.default_rng(12)
    frames = [_random_frame(rng, 20, d) for d in (0.03, 0.3)]
    raws = [_raw(lm, p, g, rng) for p, g, _ in frames]
    packed = [np.packbits(inv.reshape(-1)) for _, _, inv in frames]
    a, b = SSCMetric(), SSCMetric()
    for m in (a, b):
        m.use_compiled = compiled
    for (pr, gr), pk, (_, _, inv) in zip(raws, packed, frames):
        a.update_frame(pr, FrameArrays(gr, pk, labels="raw"))
        b.update_frame(pr, FrameArrays(gr, inv, labels="raw"))
    assert np.array_equal(a._counts, b._counts) and a.n_frames == 2


def test_compiled_equals_numpy_packed_both_protocols():
    lm = load_label_map()
    rng = np.random.default_rng(13)
    p, g, inv = _random_frame(rng, 20, 0.2)
    pr, gr = _raw(lm, p, g, rng)
    pk = np.packbits(inv.reshape(-1))
    for proto in ("semantickitti-ssc", "sscbench-kitti360-ssc"):
        C = PROTOCOLS[proto].num_classes
        pc, gc = np.minimum(p, C - 1), np.where(g == 255, 255, np.minimum(g, C - 1)).astype(np.uint8)
        fast, slow = SSCMetric(proto), SSCMetric(proto)
        slow.use_compiled = False
        for m in (fast, slow):
            m.update_frame(pc, FrameArrays(gc, pk))
            if proto == "semantickitti-ssc":
                m.update_frame(pr, FrameArrays(gr, pk, labels="raw"))
        assert np.array_equal(fast._counts, slow._counts)


def test_wrong_packed_length_raises_clear_error():
    p = np.zeros(SHAPE, np.uint8)
    for bad in (np.zeros(262_143, np.uint8), np.zeros(262_145, np.uint8), np.zeros(1000, np.uint8)):
        for compiled in (True, False):
            m = SSCMetric()
            m.use_compiled = compiled
            with pytest.raises(
                FormatError, match=r"262,144 uint8 bytes.*found " + f"{bad.size:,}" + " values of dtype uint8"
            ):
                m.update_frame(p, FrameArrays(p, bad, name="000000.invalid"))
            with pytest.raises(FormatError, match="262,144"):
                m.update_frame(p.astype(np.uint16), FrameArrays(p.astype(np.uint16), bad, labels="raw"))
            assert m.n_frames == 0 and not m._counts.any()
    with pytest.raises(FormatError, match=r"for 2 frames"):  # batch of packed masks of the wrong length
        ssc_scores(np.stack([p, p]), np.stack([p, p]), invalid=np.zeros((2, 1000), np.uint8))


@pytest.mark.parametrize("compiled", [True, False])
def test_errors_with_packed_mask_leave_state_untouched(compiled):
    lm = load_label_map()
    rng = np.random.default_rng(14)
    p, g, inv = _random_frame(rng, 20, 0.1)
    pk = np.packbits(inv.reshape(-1))
    m = SSCMetric()
    m.use_compiled = compiled
    m.update_frame(p, FrameArrays(g, pk))
    before = m._counts.copy()
    evaluated = np.flatnonzero((g.reshape(-1) != 255) & ~inv.reshape(-1))
    bad = p.copy()
    bad.reshape(-1)[evaluated[:3]] = 20
    bad.reshape(-1)[np.flatnonzero(inv.reshape(-1))[:5]] = 21  # not evaluated: no error
    with pytest.raises(FormatError, match=r"values \[20\] at 3 evaluated voxels"):
        m.update_frame(bad, FrameArrays(g, pk))
    wide = p.astype(np.int32)  # out of byte range: the error path unpacks the mask to find evaluated voxels
    wide.reshape(-1)[evaluated[:2]] = 300
    with pytest.raises(FormatError, match=r"values \[300\] at 2 evaluated voxels"):
        m.update_frame(wide, FrameArrays(g, pk))
    pr, gr = _raw(lm, p, g, rng)
    pr.reshape(-1)[evaluated[:4]] = 52  # raw id mapping to ignore at evaluated voxels
    with pytest.raises(FormatError, match=r"raw ids \[52\] .* at 4 evaluated voxels"):
        m.update_frame(pr, FrameArrays(gr, pk, labels="raw"))
    gr2 = gr.copy()
    gr2.reshape(-1)[7] = 60000  # beyond the LUT
    with pytest.raises(FormatError, match="60000"):
        m.update_frame(lm.inv_lut[p].astype(np.uint16), FrameArrays(gr2, pk, labels="raw"))
    assert np.array_equal(m._counts, before) and m.n_frames == 1


def test_arrays_of_the_files_equal_arrays_and_sizes_are_checked(tmp_path):
    """What the evaluation hands the metric from a frame's files (memory-mapped raw ``.label`` ids, the ``.invalid``
    bytes as stored) counts as the arrays do; the readers refuse files of the wrong size, naming them."""
    lm = load_label_map()
    rng = np.random.default_rng(15)
    p, g, inv = _random_frame(rng, 20, 0.1)
    pr, gr = _raw(lm, p, g, rng)
    write_label(tmp_path / "p.label", pr)
    write_label(tmp_path / "g.label", gr)
    write_bits(tmp_path / "g.invalid", inv)
    write_invalid_kitti360(tmp_path / "k.invalid", inv)
    assert np.array_equal(read_bits_packed(tmp_path / "g.invalid"), np.packbits(inv.reshape(-1)))
    assert np.array_equal(read_invalid_as_stored(tmp_path / "k.invalid"), inv.reshape(-1))
    mm = map_label(tmp_path / "g.label")
    assert not mm.flags.writeable and np.array_equal(mm, gr)
    ref = SSCMetric()
    ref.update_frame(pr, FrameArrays(gr, inv, labels="raw"))
    for inv_file in ("g.invalid", "k.invalid"):
        m = SSCMetric()
        arrays = FrameArrays(map_label(tmp_path / "g.label"), read_invalid_as_stored(tmp_path / inv_file), labels="raw")
        m.update_frame(map_label(tmp_path / "p.label"), arrays)
        assert np.array_equal(m._counts, ref._counts)
    (tmp_path / "short.invalid").write_bytes(b"\0" * 1000)
    with pytest.raises(FormatError, match=r"short\.invalid.*262,144 bytes.*found 1,000 bytes"):
        read_invalid_as_stored(tmp_path / "short.invalid")
    (tmp_path / "short.label").write_bytes(b"\0" * 10)
    with pytest.raises(FormatError, match=r"short\.label"):
        map_label(tmp_path / "short.label")
    del mm


def test_state_pickles_without_scratch():
    rng = np.random.default_rng(16)
    p, g, inv = _random_frame(rng, 20, 0.1)
    m = SSCMetric()
    m.update_frame(p, FrameArrays(g, np.packbits(inv.reshape(-1))))
    m2 = pickle.loads(pickle.dumps(m))
    assert "_fresh" not in m2.__dict__ and np.array_equal(m2._counts, m._counts)
    m2.update_frame(p, FrameArrays(g, inv))
    m.update_frame(p, FrameArrays(g, inv))
    assert np.array_equal(m2._counts, m._counts)


def test_kernels_are_called_read_only():
    a = np.zeros(8, np.uint8)
    v = _kernel.readonly(a)
    assert not v.flags.writeable and a.flags.writeable and v.base is a


@pytest.mark.parametrize("compressed", [False, True])
def test_evaluate_scores_submitted_predictions_from_files_identically(tmp_path, compressed):
    """run_job's files path (predictions, SSC only) gives the counts of update(prediction, ground_truth)."""
    from occbench.evaluation.run import DatasetSpec, Job, JobRequest, run_job
    from occbench.testing import make_semantickitti_tree

    root = make_semantickitti_tree(tmp_path, {"08": 11}, onboard={"noisy": 0.2}, compressed=compressed)
    dspec = DatasetSpec("semantickitti", str(root), "val", "noisy")
    ds = dspec.open()
    seq = ds["08"]
    targets = tuple(seq.labelled_frames)
    assert seq.scored_from_raw_files(PROTOCOLS[ds.protocol])  # the files path is the one taken
    out = run_job(JobRequest(dspec, None, Job("08", targets)))
    ref = SSCMetric()
    for t in targets:
        ref.update_frame(seq.prediction(t), FrameArrays(seq.frame(t).ground_truth()))
    assert out.ssc.n_frames == len(targets) == 3 and out.sequence == "08" and out.problems == ()
    assert np.array_equal(out.ssc._counts, ref._counts)

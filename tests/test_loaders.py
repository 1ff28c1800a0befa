"""A tiny on-disk SemanticKITTI-layout tree loads through the public API; bad input gets clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from occbench.datasets import SemanticKITTI, SSCBenchKITTI360, open_dataset
from occbench.errors import FormatError, MissingDataError
from occbench.io.voxels import write_invalid_kitti360, write_label
from occbench.labels import load_label_map
from occbench.testing import make_semantickitti_tree
from occbench_baselines.occfiner.windows import WindowConfig, WindowDataset, flip_matrix, window_indices


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("sk")
    return make_semantickitti_tree(root, {"08": 11}, onboard={"noisy": 0.1}, compressed=True)


def test_tree_loads(tree):
    ds = SemanticKITTI(tree, split="val", onboard="noisy")
    assert ds.sequence_names == ["08"]
    seq = ds["08"]
    assert seq.num_scans == 11 and seq.labelled_frames == [0, 5, 10]
    f = seq.frames()[1]
    gt = f.ground_truth()
    inv = f.invalid()
    raw = np.asarray(f.label_raw())
    lm = load_label_map()
    assert gt.dtype == np.uint8 and gt.shape == (256, 256, 32)
    assert np.all(gt[inv == 1] == 255)
    keep = inv == 0
    assert np.array_equal(gt[keep], lm.lut[raw][keep])
    assert np.all(gt[(raw == 52) & keep] == 255)
    pred = f.prediction()
    assert pred.dtype == np.uint8 and pred.max() < 20
    assert f.input_occupancy().shape == (256, 256, 32)
    # poses: LiDAR frames of a car driving +1 m per scan along x
    assert np.allclose(seq.relative_transform(5, 0)[:3, 3], [5, 0, 0], atol=1e-6)


def test_a_frame_names_the_files_it_reads(tree):
    f = SemanticKITTI(tree, split="val", onboard="noisy")["08"].frame(5)
    gt_dir = tree / "sequences" / "08" / "voxels"
    assert f.ground_truth_files() == [gt_dir / "000005.label", gt_dir / "000005.invalid"]
    assert (
        f.prediction_file() == tree / "predictions" / "noisy" / "sequences" / "08" / "predictions" / "000005.label.gz"
    )
    assert SemanticKITTI(tree, split="val", onboard=None)["08"].frame(5).prediction_file() is None


def test_opening_reads_no_voxel_file(tree, monkeypatch):
    import occbench.io.voxels as vox

    calls = []
    for fn in ("read_bits", "read_label"):
        orig = getattr(vox, fn)
        monkeypatch.setattr(vox, fn, lambda *a, _o=orig, **k: calls.append(a) or _o(*a, **k))
    ds = SemanticKITTI(tree, split="val", onboard="noisy")
    _ = [len(s) for s in ds]
    _ = list(ds.frames())
    assert calls == []


def test_missing_root_and_model_errors(tmp_path, tree):
    with pytest.raises(MissingDataError) as e:
        SemanticKITTI(tmp_path / "nowhere")
    assert "nowhere/sequences" in str(e.value) and "semantic-kitti.org" in str(e.value)
    with pytest.raises(MissingDataError, match="models found under .*noisy"):
        SemanticKITTI(tree, onboard="voxformer")
    with pytest.raises(ValueError, match="unknown split"):
        SemanticKITTI(tree, split="dev")


def test_missing_frame_and_bad_prediction(tmp_path, tree):
    root = tmp_path / "copy"
    shutil.copytree(tree, root)
    ds = SemanticKITTI(root, split="val", onboard="noisy")
    (root / "sequences/08/voxels/000005.invalid").unlink()
    with pytest.raises(MissingDataError, match="000005.invalid"):
        ds["08"].frame(5).ground_truth()
    (root / "predictions/noisy/sequences/08/predictions/000003.label.gz").unlink()
    with pytest.raises(MissingDataError, match="000003.label"):
        ds["08"].prediction(3)
    bad = np.full((256, 256, 32), 400, np.uint16)
    write_label(root / "predictions/noisy/sequences/08/predictions/000004.label", bad)
    (root / "predictions/noisy/sequences/08/predictions/000004.label.gz").unlink()
    with pytest.raises(FormatError) as e:
        ds["08"].prediction(4)
    assert "000004.label" in str(e.value) and "[400]" in str(e.value)


def test_test_split_has_no_ground_truth(tmp_path):
    root = make_semantickitti_tree(tmp_path, {"11": 6})
    ds = SemanticKITTI(root, split="test", sequences=["11"])
    f = ds["11"].frames()[0]
    assert not f.has_ground_truth
    with pytest.raises(MissingDataError, match="hidden test split"):
        f.ground_truth()


def test_windows(tree):
    cfg = WindowConfig(local=4, reference=2, reference_radius=10)
    assert cfg.local_offsets() == [-2, -1, 0, 1]
    assert window_indices(5, 11, cfg) == [3, 4, 5, 6, 0, 10]  # references clamped to the ends
    assert window_indices(0, 11, cfg)[:4] == [0, 0, 0, 1]
    ds = SemanticKITTI(tree, split="val", onboard="noisy")
    w = WindowDataset(ds.sequences, cfg, with_coords=True)
    assert len(w) == 3
    item = w[1]
    assert item["pred"].shape == (6, 256, 256, 32) and item["gt"].shape == (6, 256, 256, 32)
    assert item["frames"].tolist() == [3, 4, 5, 6, 0, 10]
    assert bool((item["gt"][0] == 255).all())  # scan 3 has no ground truth
    assert not bool((item["gt"][2] == 255).all())  # scan 5 does
    tf = item["transforms"].numpy()
    assert np.allclose(tf[2], np.eye(4), atol=1e-6)
    assert np.allclose(tf[0][:3, 3], [-2, 0, 0], atol=1e-5)  # scan 3 is 2 m behind scan 5
    assert np.allclose(item["coords"][0, 0, 0, 0].numpy(), [0.1 - 2, -25.5, -1.9], atol=1e-5)


def test_flip_keeps_geometry_consistent():
    """Flipping every grid and conjugating transforms by the reflection maps voxel centres consistently."""
    from occbench.geometry import transform_points, voxel_centres

    M = flip_matrix([0, 1])
    idx = np.array([[3, 7, 5]])
    flipped_idx = np.array([[252, 248, 5]])
    assert np.allclose(transform_points(M, voxel_centres(idx)), voxel_centres(flipped_idx))


def test_window_flip_moves_coordinates_with_predictions_and_transforms(tree):
    """``flip=True`` with ``with_coords=True``: the coordinate volumes are those of the returned (flipped) transforms,
    and equal the unflipped volumes reflected and flipped along the same axes as the predictions."""
    from occbench_baselines.occfiner.windows import relative_coordinates

    ds = SemanticKITTI(tree, split="val", onboard="noisy")
    cfg = WindowConfig(local=2, reference=0)
    plain = WindowDataset(ds.sequences, cfg, with_coords=True, with_gt=False)[1]
    seen = set()
    for seed in range(8):
        item = WindowDataset(ds.sequences, cfg, with_coords=True, with_gt=False, flip=True, seed=seed)[1]
        flip = _flip_axes(item, plain)  # axes of the (T, X, Y, Z) stack
        seen.add(flip)
        M = flip_matrix([a - 1 for a in flip])
        tf = item["transforms"].numpy().astype(np.float64)
        np.testing.assert_allclose(tf, M @ plain["transforms"].numpy().astype(np.float64) @ M, atol=1e-5)
        for f in range(len(tf)):
            coords = item["coords"][f].numpy()
            np.testing.assert_allclose(coords, relative_coordinates(tf[f]), atol=1e-5)
            moved = plain["coords"][f].numpy() @ M[:3, :3].T + M[:3, 3]  # each voxel's coordinate, reflected ...
            np.testing.assert_allclose(coords, np.flip(moved, [a - 1 for a in flip]) if flip else moved, atol=1e-4)
    assert {(), (1,), (2,), (1, 2)} <= seen  # every flip drawn at least once over the seeds


def _flip_axes(item, plain) -> tuple[int, ...]:
    """The axes (1 = x, 2 = y of the (T, X, Y, Z) stack) along which ``item``'s predictions are ``plain``'s flipped."""
    for axes in ((), (1,), (2,), (1, 2)):
        p = plain["pred"].numpy()
        if np.array_equal(item["pred"].numpy(), np.flip(p, axes) if axes else p):
            return axes
    raise AssertionError("predictions are not a flip of the unflipped window")


def test_sscbench_kitti360_tree(tmp_path):
    drive = "2013_05_28_drive_0006_sync"
    vox = tmp_path / "data_2d_raw" / drive / "voxels"
    vox.mkdir(parents=True)
    lab = np.zeros((256, 256, 32), np.uint16)
    lab[:, :, :5] = 40  # road -> 7
    lab[10, 10, 10] = 52  # other-structure -> 17
    lab[11, 11, 11] = 71  # trunk -> ignore in KITTI-360
    inv = np.zeros((256, 256, 32), np.uint8)
    inv[0, 0, 0] = 1  # labelled (road) -> cleared
    inv[0, 0, 20] = 1  # empty -> stays invalid
    for f in (0, 5):
        write_label(vox / f"{f:06d}.label", lab)
        write_invalid_kitti360(vox / f"{f:06d}.invalid", inv)
    rows = np.array([[f, *np.eye(4).reshape(-1)] for f in range(0, 7)])
    rows[:, 4] = np.arange(7) * 0.5  # x translation of the camera
    np.savetxt(tmp_path / "data_2d_raw" / drive / "cam0_to_world.txt", rows)
    ds = SSCBenchKITTI360(tmp_path, split="val", frame_map="identity")  # this poses file is numbered by SSCBench frame
    seq = ds[drive]
    assert seq.labelled_frames == [0, 5]
    gt = seq.frame(5).ground_truth()
    assert gt[0, 0, 0] == 7 and gt[0, 0, 20] == 255 and gt[10, 10, 10] == 17 and gt[11, 11, 11] == 255
    assert np.allclose(seq.relative_transform(5, 0)[:3, :3], np.eye(3), atol=1e-9)
    assert ds.protocol == "sscbench-kitti360-ssc"


def test_open_dataset_requires_root():
    with pytest.raises(ValueError, match="--root is required"):
        open_dataset("semantickitti")


def test_errors_survive_pickling_into_the_parent_process():
    """Worker processes (evaluate -j, synth workers) send exceptions back pickled: nothing may be lost."""
    import pickle

    for e in (
        FormatError("/data/x.label", "4194304 bytes", "12 bytes"),
        FormatError(None, "a", "b"),
        MissingDataError("/data/poses.txt", "poses file", "run occbench synth first"),
        MissingDataError("/data/calib.txt", "calib.txt"),
    ):
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and str(back) == str(e) and back.path == e.path

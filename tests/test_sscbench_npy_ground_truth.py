"""SSCBench-KITTI360's two ground-truth forms score alike.

The forms: .label + .invalid, and SSCBench's preprocess/labels/*_1_1.npy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from occbench.datasets import SSCBenchKITTI360
from occbench.errors import MissingDataError
from occbench.evaluation.run import DatasetSpec, EvalConfig, MethodSpec, evaluate
from occbench.labels import load_label_map
from occbench.testing import make_sscbench_kitti360_tree

DRIVE = "2013_05_28_drive_0006_sync"


def sscbench_preprocess(root: Path, drive: str) -> None:
    """ai4ce/SSCBench ``method/MonoScene/monoscene/data/kitti_360/preprocess.py`` (its ``_1_1`` save block), ported:
    read ``.label`` / ``.invalid`` as float32, clear invalid where labelled, remap with ``get_remap_lut``, 255 where
    invalid, reshape, ``np.save``."""
    learning_map = load_label_map("kitti360").learning_map  # = kitti_360.yaml learning_map
    maxkey = max(learning_map.keys())
    remap_lut = np.zeros((maxkey + 100), dtype=np.int32)
    remap_lut[list(learning_map.keys())] = list(learning_map.values())
    remap_lut[remap_lut == 0] = 255
    remap_lut[0] = 0
    out_dir = root / "preprocess" / "labels" / drive
    out_dir.mkdir(parents=True, exist_ok=True)
    vox = root / "data_2d_raw" / drive / "voxels"
    for label_path in sorted(vox.glob("*.label")):
        frame_id = label_path.stem
        LABEL = np.fromfile(label_path, dtype=np.uint16).astype(np.float32)
        INVALID = np.fromfile(vox / f"{frame_id}.invalid", dtype=np.uint8).astype(np.float32)
        nonzero_idx = np.nonzero(LABEL)
        INVALID[nonzero_idx] = 0
        LABEL = remap_lut[LABEL.astype(np.uint16)].astype(np.float32)
        LABEL[np.isclose(INVALID, 1)] = 255
        LABEL = LABEL.reshape([256, 256, 32])
        np.save(out_dir / f"{frame_id}_1_1.npy", LABEL)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = make_sscbench_kitti360_tree(tmp_path_factory.mktemp("k360"), {DRIVE: 16}, onboard={"noisy": 0.2})
    sscbench_preprocess(root, DRIVE)
    return root


def run(tree, gt, **kw):
    return evaluate(
        EvalConfig(
            dataset=DatasetSpec("sscbench-kitti360", str(tree), "val", "noisy", {"ground_truth": gt}),
            method=MethodSpec("onboard"),
            workers=1,
            **kw,
        )
    ).to_dict()


def test_both_ground_truth_forms_give_identical_scores(tree):
    a, b = run(tree, "voxels", fingerprint_content=True), run(tree, "sscbench-npy", fingerprint_content=True)
    assert a["metrics"] == b["metrics"]  # SSC at every range, city map, temporal consistency
    assert a["header"]["frames"] == b["header"]["frames"] == 4
    fa, fb = a["header"]["dataset"]["fingerprint"], b["header"]["dataset"]["fingerprint"]
    assert fa["content"] == fb["content"]  # the same labels ...
    assert fa["files"] != fb["files"]  # ... from different files
    assert (a["header"]["dataset"]["ground_truth"], b["header"]["dataset"]["ground_truth"]) == (
        "voxels",
        "sscbench-npy",
    )
    ds_v = SSCBenchKITTI360(tree, "val", ground_truth="voxels")
    ds_n = SSCBenchKITTI360(tree, "val", ground_truth="sscbench-npy")
    for fv, fn in zip(ds_v.frames(), ds_n.frames()):
        np.testing.assert_array_equal(fv.ground_truth(), fn.ground_truth())


def test_auto_detection_and_errors(tree, tmp_path):
    assert SSCBenchKITTI360(tree, "val").ground_truth == "voxels"  # both present: occbench's own preprocessing
    only_npy = tmp_path / "only-npy"
    shutil.copytree(tree / "preprocess", only_npy / "preprocess")
    shutil.copy(tree / "data_2d_raw" / DRIVE / "cam0_to_world.txt", tmp_path / "poses.txt")
    (only_npy / "data_poses" / DRIVE).mkdir(parents=True)
    shutil.copy(tmp_path / "poses.txt", only_npy / "data_poses" / DRIVE / "cam0_to_world.txt")
    ds = SSCBenchKITTI360(only_npy, "val")
    assert ds.ground_truth == "sscbench-npy" and ds[DRIVE].labelled_frames == [0, 5, 10, 15]
    with pytest.raises(MissingDataError, match="voxels of drive"):
        SSCBenchKITTI360(only_npy, "val", ground_truth="voxels")
    with pytest.raises(MissingDataError, match="NNNNNN_1_1.npy"):
        SSCBenchKITTI360(tmp_path / "nothing", "val")
    with pytest.raises(MissingDataError, match="train ids only"):
        ds[DRIVE].frame(5).invalid()
    bad = only_npy / "preprocess" / "labels" / DRIVE / "000005_1_1.npy"
    arr = np.load(bad)
    arr[0, 0, 0] = 19.0  # KITTI-360 has train ids 0..18
    arr[0, 0, 1] = 2.5
    np.save(bad, arr)
    with pytest.raises(
        ValueError,
        match=r"000005_1_1.npy: expected kitti360 train ids 0..18 or 255 \(unknown\), "
        r"found values \[2.5, 19.0\]",
    ):
        ds[DRIVE].frame(5).ground_truth()

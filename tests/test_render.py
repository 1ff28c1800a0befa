from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from occbench.cli import main
from occbench.labels import load_label_map
from occbench.metrics import CityMapMetric, FrameArrays
from occbench.render import bev_image, city_map_images, decode_world_keys, error_image, top_labels
from occbench.testing import make_semantickitti_tree


def test_top_labels_and_orientation():
    g = np.zeros((256, 256, 32), np.uint8)
    g[10, 200, 3] = 9  # road low
    g[10, 200, 20] = 13  # building above it: visible from the top
    g[10, 200, 31] = 255  # ignore never colours a pixel
    top = top_labels(g)
    assert top[10, 200] == 13 and top[0, 0] == 0
    img = bev_image(g, load_label_map())
    # x forward -> up (row 255 - x), y left -> left (col 255 - y)
    assert tuple(img[255 - 10, 255 - 200]) == tuple(load_label_map().colors[13])
    assert tuple(img[0, 0]) == (255, 255, 255)


def test_error_image():
    gt = np.zeros((256, 256, 32), np.uint8)
    gt[0, 0, :] = 9
    gt[1, 1, :] = 255
    pred = gt.copy()
    pred[0, 0, :16] = 0  # half of the column wrong
    img = error_image(pred, gt)
    assert tuple(img[255, 255]) == (255, 127, 127)
    assert tuple(img[254, 254]) == (200, 200, 200)  # nothing evaluated


def test_world_key_decoding_roundtrip():
    from occbench.metrics.citymap import world_keys

    pose = np.eye(4)
    pose[:3, 3] = [100.0, -40.0, 3.0]
    idx = np.array([0, 8192 * 5 + 32 * 7 + 3])
    keys = world_keys(idx, pose, 0.2) >> np.uint64(8)
    ijk = decode_world_keys(keys)
    expect = np.floor((np.array([[0.1, -25.5, -1.9], [1.1, -24.1, -1.3]]) + pose[:3, 3]) / 0.2).astype(int)
    assert np.array_equal(ijk, expect)


def test_city_map_images_and_cli(tmp_path):
    root = make_semantickitti_tree(tmp_path / "d", {"08": 6}, onboard={"noisy": 0.1})
    from occbench.datasets import SemanticKITTI

    ds = SemanticKITTI(root, "val", onboard="noisy")
    seq = ds["08"]
    city = CityMapMetric()
    for f in seq.frames():
        city.update_frame(f.prediction(), FrameArrays(f.ground_truth(), pose=f.pose))
    g, p = city_map_images(city, ds.label_map)
    assert g.shape == p.shape and g.shape[2] == 3 and (g != 255).any()
    r = CliRunner().invoke(
        main,
        [
            "render",
            "frame",
            "--dataset",
            "semantickitti",
            "--root",
            str(root),
            "--onboard",
            "noisy",
            "--method",
            "onboard",
            "-o",
            str(tmp_path / "f.png"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from occbench.evaluation.run import DatasetSpec, EvalConfig, MethodSpec, evaluate

    config = EvalConfig(
        dataset=DatasetSpec("semantickitti", str(root), "val", "noisy"), method=MethodSpec("onboard"), metrics=()
    )
    evaluate(config).write(tmp_path / "r.json")
    r = CliRunner().invoke(main, ["render", "distance", str(tmp_path / "r.json"), "-o", str(tmp_path / "d.png")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    r = CliRunner().invoke(
        main,
        [
            "render",
            "citymap",
            "--dataset",
            "semantickitti",
            "--root",
            str(root),
            "--onboard",
            "noisy",
            "-o",
            str(tmp_path / "c.png"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "c.png").stat().st_size > 1000

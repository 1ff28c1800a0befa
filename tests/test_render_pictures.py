"""Pictures: the 3D voxel view puts voxels where they belong, legends list the classes shown, renders from a folder
equal renders from the method's output, city maps are bounded and oriented, sizes are as asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from occbench.cli import main
from occbench.labels import load_label_map
from occbench.render.bev import ERR_CORRECT, ERR_HALLUCINATED, ERR_MISSED, ERR_WRONG, error_labels, top_labels
from occbench.render.voxels3d import Camera, projection_for, render_voxels
from occbench.testing import make_semantickitti_tree

LM = load_label_map()


def _scene(seed: int = 0) -> np.ndarray:
    """A small street: road, a building block, a car and a pole, plus ignored voxels that must never show."""
    g = np.zeros((40, 30, 12), np.uint8)
    g[:, :, 1] = 9  # road everywhere
    g[5:15, 2:8, 2:10] = 13  # building
    g[25:30, 18:21, 2:4] = 1  # car
    g[33, 25, 2:11] = 18  # pole
    g[0:3, 0:3, 5] = 255  # ignored: never drawn
    return g


def test_top_down_3d_view_matches_the_birds_eye_labels():
    """Looking straight down (elevation 90), the pixel at the centre of each column shows, unshaded, the colour of
    the column's highest voxel, with x up and y left as in the bird's-eye view."""
    g = _scene()
    cam = Camera(azimuth=0.0, elevation=90.0, px=6)
    img, shown, proj = render_voxels(g, LM.colors, cam, edges=False)
    top = top_labels(g)
    X, Y, Z = g.shape
    centres = np.array([[i + 0.5, j + 0.5, Z] for i in range(X) for j in range(Y)], float)
    cr = np.floor(proj.pixel(centres)).astype(int)
    got = img[cr[:, 1], cr[:, 0]]
    want = LM.colors[top.reshape(-1)]
    want[top.reshape(-1) == 0] = 255  # empty columns: background
    assert np.array_equal(got, want)
    # orientation: larger x is higher in the image (smaller row), larger y further left (smaller column)
    a, b = proj.pixel(np.array([[10.5, 5.5, Z], [20.5, 5.5, Z]]))
    assert b[1] < a[1] and abs(b[0] - a[0]) < 1e-6
    a, b = proj.pixel(np.array([[10.5, 5.5, Z], [10.5, 15.5, Z]]))
    assert b[0] < a[0] and abs(b[1] - a[1]) < 1e-6


def test_oblique_view_shows_each_voxel_at_its_projection_and_hides_occluded_ones():
    g = np.zeros((32, 32, 16), np.uint8)
    pts = [(3, 4, 2, 1), (20, 7, 9, 13), (11, 25, 5, 15), (28, 28, 14, 18)]
    for i, j, k, c in pts:
        g[i, j, k] = c
    cam = Camera(azimuth=-35.0, elevation=40.0, px=5)
    img, shown, proj = render_voxels(g, LM.colors, cam)
    for i, j, k, c in pts:
        col, row = np.rint(proj.pixel(np.array([[i + 0.5, j + 0.5, k + 0.5]]))[0]).astype(int)
        assert shown[row, col] == np.ravel_multi_index((i, j, k), g.shape)
        # the voxel covers only a few pixels around its centre (a cube of 5 px edges)
        rr, cc = np.nonzero(shown == np.ravel_multi_index((i, j, k), g.shape))
        assert 10 < rr.size < 120 and np.abs(rr - row).max() <= 8 and np.abs(cc - col).max() <= 8
    assert set(np.unique(shown)) == {-1} | {int(np.ravel_multi_index(p[:3], g.shape)) for p in pts}
    assert (img[shown == -1] == 255).all()
    # a voxel right behind another along the viewing direction is hidden by it
    cam0 = Camera(azimuth=0.0, elevation=45.0, px=5)
    h = np.zeros((16, 16, 16), np.uint8)
    h[6, 8, 8] = 1  # nearer the camera (which looks along +x and down)
    h[7, 8, 7] = 13  # one step further along (1, 0, -1): the same place in the image
    _, shown, proj = render_voxels(h, LM.colors, cam0)
    col, row = np.rint(proj.pixel(np.array([[6.5, 8.5, 8.5]]))[0]).astype(int)
    assert shown[row, col] == np.ravel_multi_index((6, 8, 8), h.shape)


def test_same_camera_same_frame_for_every_grid():
    cam = Camera(px=3)
    a, b = projection_for((256, 256, 32), cam), projection_for((256, 256, 32), cam)
    assert a == b
    img1, _, _ = render_voxels(_scene(), LM.colors, cam)
    img2, _, _ = render_voxels(np.zeros_like(_scene()), LM.colors, cam)
    assert img1.shape == img2.shape and (img2 == 255).all()


def test_error_categories():
    gt = np.array([0, 9, 9, 9, 0, 255, 13], np.uint8).reshape(1, 1, 7)
    pr = np.array([0, 9, 13, 0, 9, 9, 13], np.uint8).reshape(1, 1, 7)
    assert error_labels(pr, gt).reshape(-1).tolist() == [
        0,
        ERR_CORRECT,
        ERR_WRONG,
        ERR_MISSED,
        ERR_HALLUCINATED,
        0,
        ERR_CORRECT,
    ]


def test_frame_figure_legend_lists_the_classes_shown_and_size(tmp_path):
    from occbench.render.frame import frame_figure

    gt = np.zeros((256, 256, 32), np.uint8)
    gt[:, :, 2] = 9
    gt[100:120, 100:110, 3:8] = 1
    gt[:, :20, :] = 255  # not evaluated
    pred = gt.copy()
    pred[pred == 255] = 0
    pred[100:120, 100:110, 3:8] = 10  # a car predicted as... class 10 (parking)
    pred[200:210, 10:12, 3:20] = 16  # a trunk outside the evaluated area: shown in the prediction column
    pic = frame_figure(gt, [("p", pred)], LM, tmp_path / "f.png", views=("bev",), width=3.4, dpi=100, title=None)
    want = {1, 9, 10, 16}
    assert set(pic.classes) == want
    assert pic.legend == [LM.class_names[i] for i in sorted(want)]
    with Image.open(pic.path) as im:
        assert im.size[0] == 340 and im.size == pic.size_px
    # the ignored columns of the ground truth never contribute a class; a 3D view adds what it shows
    pic = frame_figure(gt, [], LM, tmp_path / "g.png", views=("3d",), width=2.0, dpi=100)
    assert set(pic.classes) == {1, 9}


def test_render_from_folder_equals_render_from_method(tmp_path):
    root = make_semantickitti_tree(tmp_path / "d", {"08": 11}, onboard={"noisy": 0.1})
    base = ["--dataset", "semantickitti", "--root", str(root), "--onboard", "noisy"]
    run = CliRunner().invoke
    r = run(main, ["refine", *base, "--method", "average-fusion", "-j", "1", "-q", "-o", str(tmp_path / "refined")])
    assert r.exit_code == 0, r.output
    args = ["render", "frame", *base, "--frame", "5", "--width", "3", "--dpi", "80", "--views", "bev,error"]
    r1 = run(main, [*args, "--predictions", f"average-fusion={tmp_path / 'refined'}", "-o", str(tmp_path / "a.png")])
    r2 = run(
        main,
        [
            *args,
            "--method",
            "average-fusion",
            "-j",
            "1",
            "--save-predictions",
            str(tmp_path / "saved"),
            "-o",
            str(tmp_path / "b.png"),
        ],
    )
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "saved" / "average-fusion" / "sequences" / "08" / "predictions" / "000005.label.gz").is_file()
    # a folder that is not a predictions folder is named
    r = run(main, [*args, "--predictions", f"x={tmp_path / 'nowhere'}", "-o", str(tmp_path / "c.png")])
    assert r.exit_code == 1 and "nowhere" in r.output
    r = run(main, ["render", "frame", *base, "--frame", "3", "-o", str(tmp_path / "d.png")])
    assert r.exit_code == 1 and "scan 3 of sequence 08 has no ground truth" in r.output
    # city maps too: from the folder, and from the method
    c = ["render", "citymap", *base, "--colour", "error"]
    r1 = run(main, [*c, "--predictions", f"average-fusion={tmp_path / 'refined'}", "-o", str(tmp_path / "m1.png")])
    r2 = run(main, [*c, "--method", "average-fusion", "-j", "1", "-o", str(tmp_path / "m2.png")])
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    assert (tmp_path / "m1.png").read_bytes() == (tmp_path / "m2.png").read_bytes()


def test_city_canvas_places_columns_with_the_pose_and_votes():
    from occbench.render.citymap import CityCanvas, error_map, static_top

    static_ids = np.asarray(LM.static_ids)
    gt = np.zeros((256, 256, 32), np.uint8)
    gt[:, :, 0] = 9  # road
    gt[50, 128, 0:5] = 13  # a building column at x = 10.1 m, y = 0.1 m
    gt[:, 200:, :] = 255  # not evaluated
    g, ev = static_top(gt, gt, static_ids)
    assert ev.sum() == 256 * 200 and g[50, 128] == list(static_ids).index(13) + 1
    canvas = CityCanvas(len(static_ids) + 1, resolution=0.2)
    pose = np.eye(4)
    pose[:2, 3] = [100.0, -40.0]  # the car 100 m east, 40 m south of the origin
    canvas.add(g, np.zeros_like(g), ev, pose)
    gm, pm, n, (x0, y0) = canvas.maps()
    assert n.sum() == 256 * 200  # one vote per evaluated column
    # the building column's centre: world (110.1, -39.9) -> map pixel (550, -200)
    assert gm[550 - x0, -200 - y0] == list(static_ids).index(13) + 1
    assert pm[550 - x0, -200 - y0] == 0 and (gm != 255).sum() == (n > 0).sum()
    err = error_map(gm, pm)
    assert err[550 - x0, -200 - y0] == ERR_MISSED
    # memory is per tile touched, not per frame: adding the same frame again allocates nothing
    before = canvas.nbytes
    canvas.add(g, g, ev, pose)
    assert canvas.nbytes == before and canvas.n_frames == 2


def test_city_figure_scale_legend_and_size(tmp_path):
    root = make_semantickitti_tree(tmp_path / "d", {"08": 6}, onboard={"noisy": 0.1})
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
            "--colour",
            "class",
            "-o",
            str(tmp_path / "c.png"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "0.2 m per pixel" in r.output
    with Image.open(tmp_path / "c.png") as im:
        w, h = im.size
    # native resolution: two maps side by side, each at least the 256 columns (51.2 m) of one grid wide
    assert w >= 2 * 256 and h >= 256 and (tmp_path / "c.png").stat().st_size < 1_000_000


def test_committed_pictures_and_plots_are_modest():
    lb = Path(__file__).resolve().parents[1] / "leaderboards"
    pngs = sorted(lb.glob("pictures/*.png")) + sorted(lb.glob("plots/*.png"))
    assert pngs
    for p in pngs:
        assert p.stat().st_size < 1_000_000, p

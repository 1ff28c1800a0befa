from __future__ import annotations

import numpy as np

from occbench.geometry import relative_transform, transform_points, voxel_centres, voxelize
from occbench.io.kitti import check_rigid, read_calib, read_poses
from occbench_baselines.occfiner.windows import relative_coordinates


def test_real_seq08_lidar_poses_rigid_and_compose(real_data):
    d = real_data / "kitti-odometry" / "sequences" / "08"
    calib = read_calib(d / "calib.txt")
    T = read_poses(d / "poses.txt", calib)
    assert T.shape == (4071, 4, 4)
    check_rigid(T, d / "poses.txt", "LiDAR poses")  # raises if not rigid
    cam = read_poses(d / "poses.txt")
    assert np.allclose(T, np.linalg.inv(calib.Tr) @ cam @ calib.Tr)
    rng = np.random.default_rng(0)
    for a, b, c in rng.integers(0, 4071, (50, 3)):
        T_ab = relative_transform(T, b, a)  # b -> a
        T_bc = relative_transform(T, c, b)  # c -> b
        T_ac = relative_transform(T, c, a)  # c -> a
        assert np.abs(T_ab @ T_bc - T_ac).max() < 1e-9


def test_lidar_pose_z_up_forward_motion(real_data):
    """In LiDAR poses the car moves along its own +x (forward) and the world z stays ~constant per step."""
    d = real_data / "kitti-odometry" / "sequences" / "08"
    calib = read_calib(d / "calib.txt")
    T = read_poses(d / "poses.txt", calib)
    step = np.linalg.inv(T[100]) @ T[101]
    assert step[0, 3] > 0.3 and abs(step[1, 3]) < 0.1 and abs(step[2, 3]) < 0.1


def test_voxelize_centres_roundtrip():
    idx = np.array([[0, 0, 0], [255, 255, 31], [10, 128, 10]])
    c = voxel_centres(idx)
    assert np.allclose(c[0], [0.1, -25.5, -1.9])
    back, inside = voxelize(c)
    assert inside.all() and np.array_equal(back, idx)
    _, inside = voxelize(np.array([[-0.01, 0, 0], [51.2, 0, 0], [1, 25.6, 0], [1, 0, 4.4]]))
    assert not inside.any()


def test_relative_coordinates_identity_and_translation():
    c = relative_coordinates(np.eye(4))
    assert c.shape == (256, 256, 32, 3)
    assert np.allclose(c[0, 0, 0], [0.1, -25.5, -1.9])
    T = np.eye(4)
    T[0, 3] = 2.0
    assert np.allclose(relative_coordinates(T)[5, 6, 7], c[5, 6, 7] + [2.0, 0, 0], atol=1e-5)
    R = np.eye(4)
    R[:2, :2] = [[0, -1], [1, 0]]
    pts = transform_points(R, np.array([[1.0, 0, 0]]))
    assert np.allclose(pts, [[0, 1, 0]])

"""Round trips and bit/axis order of every on-disk format, against hand-built cases."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from occbench.errors import FormatError, MissingDataError
from occbench.io.kitti import read_calib, read_poses, read_times, write_calib, write_poses, write_times
from occbench.io.predictions import PredictionStore, convert_store, read_prediction_file
from occbench.io.voxels import (
    read_bits,
    read_invalid_kitti360,
    read_label,
    write_bits,
    write_invalid_kitti360,
    write_label,
)
from occbench.labels import load_label_map


def test_bits_msb_first_and_c_order(tmp_path):
    g = np.zeros((256, 256, 32), np.uint8)
    g[0, 0, 0] = 1  # flat 0 -> byte 0, bit 7 (MSB)
    g[0, 0, 7] = 1  # flat 7 -> byte 0, bit 0
    g[0, 1, 0] = 1  # flat 32 -> byte 4, MSB   (y stride 32)
    g[1, 0, 0] = 1  # flat 8192 -> byte 1024   (x stride 256*32)
    p = tmp_path / "a.invalid"
    write_bits(p, g)
    raw = np.fromfile(p, np.uint8)
    assert raw.size == 262144
    assert raw[0] == 0b10000001 and raw[4] == 0b10000000 and raw[1024] == 0b10000000
    assert raw.sum() == 0b10000001 + 2 * 0b10000000
    assert np.array_equal(read_bits(p), g)


def test_bits_match_semantic_kitti_api_unpack(tmp_path, real_data):
    # The API's unpack: uncompressed[::8] = c >> 7 & 1, ... [7::8] = c & 1 (semantic-kitti-api evaluate_completion.py)
    c = np.fromfile(real_data / "semantickitti-sample" / "voxel_label_kitti_odometry_08_001000.invalid", np.uint8)
    api = np.zeros(c.size * 8, np.uint8)
    for b in range(8):
        api[b::8] = (c >> (7 - b)) & 1
    got = read_bits(real_data / "semantickitti-sample" / "voxel_label_kitti_odometry_08_001000.invalid")
    assert np.array_equal(got.reshape(-1), api)
    assert int(got.sum()) == 507368  # documented count of the real file
    write_bits(tmp_path / "x.invalid", got)
    assert (tmp_path / "x.invalid").read_bytes() == c.tobytes()  # byte-exact round trip


def test_real_sample_voxelizes_with_v11_origin_after_shift(real_data):
    """The v1.0 sample, shifted back by one flat index, equals the voxelized raw scan with origin (0,-25.6,-2)."""
    from occbench.geometry import voxelize

    d = real_data / "semantickitti-sample"
    occ = read_bits(d / "voxel_label_kitti_odometry_08_001000.bin").reshape(-1)
    fixed = np.zeros_like(occ)
    fixed[:-1] = occ[1:]
    pts = np.fromfile(d / "velodyne_kitti_odometry_08_001000.bin", np.float32).reshape(-1, 4)[:, :3]
    labels = np.fromfile(d / "semantic_label_kitti_odometry_08_001000.label", np.uint32) & 0xFFFF
    idx, inside = voxelize(pts.astype(np.float64))
    idx, labels = idx[inside], labels[inside]
    flat = np.ravel_multi_index(idx.T, (256, 256, 32))
    # occupied iff the majority raw label of its points is > 0; voxels with any labelled point cover the set
    occupied_any = np.zeros(occ.size, bool)
    occupied_any[flat[labels > 0]] = True
    assert int(fixed.sum()) == 16150
    assert np.all(occupied_any[fixed.astype(bool)])
    unshifted_match = int((occupied_any & occ.astype(bool)).sum())
    assert unshifted_match < 16150 // 2  # the v1.0 position is off by one voxel in z


def test_label_roundtrip_and_dtype(tmp_path):
    rng = np.random.default_rng(0)
    lab = rng.choice([0, 10, 40, 48, 70, 252, 259], size=(256, 256, 32)).astype(np.uint16)
    write_label(tmp_path / "a.label", lab)
    b = (tmp_path / "a.label").read_bytes()
    assert len(b) == 4194304
    assert b[:2] == int(lab[0, 0, 0]).to_bytes(2, "little")
    assert np.array_equal(read_label(tmp_path / "a.label"), lab)
    assert np.array_equal(np.asarray(read_label(tmp_path / "a.label", mmap=True)), lab)
    with pytest.raises(FormatError, match="integer raw label ids"):
        write_label(tmp_path / "b.label", lab.astype(np.float32))
    with pytest.raises(FormatError, match="0..65535"):
        write_label(tmp_path / "b.label", np.full(4, 70000))


@pytest.mark.parametrize("nbytes", [262143, 262145, 0])
def test_truncated_or_oversized_bits_file(tmp_path, nbytes):
    p = tmp_path / "000000.invalid"
    p.write_bytes(b"\0" * nbytes)
    with pytest.raises(FormatError) as e:
        read_bits(p)
    assert str(p) in str(e.value) and "262,144 bytes" in str(e.value) and f"{nbytes:,} bytes" in str(e.value)


def test_wrong_size_label(tmp_path):
    p = tmp_path / "000000.label"
    p.write_bytes(b"\0" * (4194304 - 2))
    with pytest.raises(FormatError, match="4,194,302 bytes"):
        read_label(p)
    with pytest.raises(MissingDataError, match="000001.label"):
        read_label(tmp_path / "000001.label")


def test_kitti360_invalid_one_byte(tmp_path):
    rng = np.random.default_rng(1)
    inv = (rng.random((256, 256, 32)) < 0.3).astype(np.uint8)
    write_invalid_kitti360(tmp_path / "a.invalid", inv)
    assert (tmp_path / "a.invalid").stat().st_size == 2097152
    assert np.array_equal(read_invalid_kitti360(tmp_path / "a.invalid"), inv)
    (tmp_path / "b.invalid").write_bytes(bytes([2]) * 2097152)
    with pytest.raises(FormatError, match="0/1"):
        read_invalid_kitti360(tmp_path / "b.invalid")


def test_label_maps():
    sk = load_label_map("semantickitti")
    assert sk.num_classes == 20 and len(sk.class_names) == 20 and sk.class_names[9] == "road"
    # official LUT: raw 0 -> 0 (empty); 1, 52, 99 -> 255 (ignore); moving classes map to their static class
    assert sk.lut[[0, 1, 52, 99, 10, 252, 253, 254, 60]].tolist() == [0, 255, 255, 255, 1, 1, 7, 6, 9]
    assert sk.lut.size == 359
    train = np.arange(20, dtype=np.uint8)
    assert np.array_equal(sk.to_train(sk.to_raw(train)), train)
    with pytest.raises(FormatError, match="ids \\[400\\]"):
        sk.to_train(np.array([400], np.uint16), "x.label")
    k3 = load_label_map("kitti360")
    assert k3.num_classes == 19 and k3.lut[[52, 99, 71, 31]].tolist() == [17, 18, 255, 255]
    assert np.array_equal(k3.to_train(k3.to_raw(np.arange(19))), np.arange(19))
    w = sk.class_weights()
    assert np.isclose(w[0], 1 / np.log(5.41773033e09 + 0.001))
    assert sk.static_classes == (
        "road",
        "parking",
        "sidewalk",
        "other-ground",
        "building",
        "fence",
        "vegetation",
        "trunk",
        "terrain",
        "pole",
        "traffic-sign",
    )


def test_calib_poses_times_roundtrip(tmp_path, real_data):
    src = real_data / "kitti-odometry" / "sequences" / "08"
    c = read_calib(src / "calib.txt")
    write_calib(tmp_path / "calib.txt", c)
    c2 = read_calib(tmp_path / "calib.txt")
    for k in c.P:
        assert np.array_equal(c.P[k], c2.P[k])
    assert np.array_equal(c.Tr, c2.Tr)
    cam = read_poses(src / "poses.txt")
    write_poses(tmp_path / "poses.txt", cam)
    assert np.array_equal(read_poses(tmp_path / "poses.txt"), cam)
    t = read_times(src / "times.txt")
    assert t.shape == (4071,)
    write_times(tmp_path / "times.txt", t)
    assert np.allclose(read_times(tmp_path / "times.txt"), t, rtol=1e-6)


def test_calib_without_tr(tmp_path, real_data):
    lines = (real_data / "kitti-odometry" / "sequences" / "08" / "calib.txt").read_text().splitlines()
    p = tmp_path / "calib.txt"
    p.write_text("\n".join(line for line in lines if not line.startswith("Tr")) + "\n")
    with pytest.raises(FormatError) as e:
        read_calib(p)
    assert str(p) in str(e.value) and "'Tr:'" in str(e.value) and "['P0', 'P1', 'P2', 'P3']" in str(e.value)


def test_non_rigid_pose(tmp_path):
    rows = np.tile(np.eye(4)[:3].reshape(-1), (3, 1))
    rows[1, 0] = 1.5  # scaled x axis on line 2
    np.savetxt(tmp_path / "poses.txt", rows)
    with pytest.raises(FormatError) as e:
        read_poses(tmp_path / "poses.txt")
    assert "poses.txt" in str(e.value) and "line 2" in str(e.value) and "rigid" in str(e.value)
    (tmp_path / "p2.txt").write_text("1 0 0 0 0 1 0 0 0 0 1\n")
    with pytest.raises(FormatError, match="11 per line"):
        read_poses(tmp_path / "p2.txt")


def test_prediction_store_variants_and_converter(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.choice([0, 40, 70], size=(256, 256, 32)).astype(np.uint16)
    plain = PredictionStore(tmp_path / "plain")
    p = plain.write("08", 5, a)
    assert p.name == "000005.label" and p.stat().st_size == 4194304
    assert np.array_equal(plain.read("08", 5), a)
    n = convert_store(tmp_path / "plain", tmp_path / "gz", compressed=True)
    assert n == 1
    gzp = tmp_path / "gz" / "sequences" / "08" / "predictions" / "000005.label.gz"
    assert gzip.decompress(gzp.read_bytes()) == p.read_bytes()  # byte-exact content
    assert convert_store(tmp_path / "plain", tmp_path / "gz", compressed=True) == 0  # resumable: nothing rewritten
    convert_store(tmp_path / "gz", tmp_path / "back", compressed=False)
    assert (tmp_path / "back" / "sequences" / "08" / "predictions" / "000005.label").read_bytes() == p.read_bytes()
    assert PredictionStore(tmp_path / "gz").frames("08") == [5]
    # both variants at once is ambiguous
    (tmp_path / "plain" / "sequences" / "08" / "predictions" / "000005.label.gz").write_bytes(gzp.read_bytes())
    with pytest.raises(FormatError, match="not both"):
        plain.read("08", 5)
    bad = tmp_path / "bad.label.gz"
    bad.write_bytes(gzip.compress(b"\0" * 100))
    with pytest.raises(FormatError, match="100 bytes"):
        read_prediction_file(bad)


def test_atomic_write_permissions_and_no_leftovers(tmp_path):
    import os

    from occbench.io.atomic import atomic_write_bytes

    p = tmp_path / "a.bin"
    atomic_write_bytes(p, b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~mask)
    assert [q.name for q in tmp_path.iterdir()] == ["a.bin"]

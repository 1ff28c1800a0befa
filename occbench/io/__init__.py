"""Readers and writers of the on-disk formats (voxel files, KITTI text files, prediction stores)."""

from occbench.io.atomic import atomic_write_bytes
from occbench.io.kitti import read_calib, read_poses, read_times, write_calib, write_poses, write_times
from occbench.io.voxels import (
    NUM_VOXELS,
    read_bits,
    read_invalid_kitti360,
    read_label,
    write_bits,
    write_invalid_kitti360,
    write_label,
)

__all__ = [
    "NUM_VOXELS",
    "read_bits",
    "write_bits",
    "read_label",
    "write_label",
    "read_invalid_kitti360",
    "write_invalid_kitti360",
    "read_calib",
    "write_calib",
    "read_poses",
    "write_poses",
    "read_times",
    "write_times",
    "atomic_write_bytes",
]

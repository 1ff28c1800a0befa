"""The voxel grid of a dataset, defined once: shape, voxel size, origin and the range crops by name.

Every other module asks a :class:`Grid` (the dataset's, carried by its :class:`~occbench.metrics.EvalProtocol`)
instead of repeating its numbers. ``KITTI`` is the SemanticKITTI v1.1 / SSCBench-KITTI360 / VoxFormer grid:
256 x 256 x 32 voxels of 0.2 m in the scan's LiDAR frame, origin ``(0, -25.6, -2)``, x forward, y left, z up;
range crops 12.8 / 25.6 / 51.2 m ahead.

A range crop of ``r`` metres keeps the columns whose x lies in ``[0, r)`` (``crop="ahead"``: the sensor at the
grid's back edge, as on KITTI) or in ``[-r/2, r/2)`` (``crop="around"``: an ego-centred grid, as Occ3D's), and
whose y lies in ``[-r/2, r/2)``; all heights. Its key in results files is ``"%.1f" % r``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Crop = Literal["ahead", "around"]


@dataclass(frozen=True)
class Grid:
    """A voxel grid: ``shape`` (x, y, z) voxels of ``voxel_size`` metres from ``origin`` (the corner of voxel
    (0, 0, 0), metres in the sensor frame); ``ranges``: the range crops (metres, increasing); ``crop``: how a
    crop sits around the sensor (module docstring)."""

    name: str
    shape: tuple[int, int, int]
    voxel_size: float
    origin: tuple[float, float, float]
    ranges: tuple[float, ...]
    crop: Crop = "ahead"

    def __post_init__(self) -> None:
        if self.crop not in ("ahead", "around"):
            raise ValueError(f"grid {self.name}: crop must be 'ahead' or 'around', got {self.crop!r}")
        self.check_ranges(self.ranges)

    @property
    def num_voxels(self) -> int:
        return int(np.prod(self.shape))

    @property
    def num_columns(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def range_keys(self) -> tuple[str, ...]:
        """The keys of the range crops in results files, smallest first: ``("12.8", "25.6", "51.2")`` on KITTI."""
        return tuple(range_key(r) for r in self.ranges)

    @property
    def full_range_key(self) -> str:
        """The key of the largest crop (the headline range)."""
        return self.range_keys[-1]

    @property
    def max_range(self) -> float:
        """The largest crop the grid holds (metres)."""
        return min(self.shape[0] * self.voxel_size, self.shape[1] * self.voxel_size)

    def check_ranges(self, ranges: tuple[float, ...] | list[float]) -> tuple[float, ...]:
        """Range crops as floats: strictly increasing, within the grid, whole voxels on each side of the sensor."""
        rs = tuple(float(r) for r in ranges)
        if not rs:
            raise ValueError("at least one range is required")
        step, top = 2 * self.voxel_size, self.max_range
        for r in rs:
            half = r / step
            if not (0 < r <= top + 1e-9) or abs(half - round(half)) > 1e-6:
                raise ValueError(f"range {r} m: expected a multiple of {step:g} m in (0, {top:g}]")
        if any(b <= a for a, b in zip(rs, rs[1:])):
            raise ValueError(f"ranges must be strictly increasing, got {rs}")
        return rs

    def range_slices(self, r: float) -> tuple[slice, slice]:
        """Index slices ``(x, y)`` of the columns within range ``r`` (all z)."""
        x_lo = 0.0 if self.crop == "ahead" else -r / 2
        return (self._index_slice(0, x_lo, x_lo + r), self._index_slice(1, -r / 2, r / 2))

    def _index_slice(self, axis: int, lo: float, hi: float) -> slice:
        o, v = self.origin[axis], self.voxel_size
        return slice(int(round((lo - o) / v)), int(round((hi - o) / v)))

    def range_definition(self) -> str:
        """The range crops in words, in voxel indices (what results headers write as ``range_definition``). On
        KITTI: ``i < r/0.2`` and ``|j - 128| < r/0.4``."""
        v, h = self.voxel_size, 2 * self.voxel_size
        cj = int(round(-self.origin[1] / v))  # index of the first column at y >= 0: the sensor's
        if self.crop == "ahead":
            i0 = int(round(-self.origin[0] / v))
            i = f"i < r/{v:g}" if i0 == 0 else f"{i0} <= i < {i0} + r/{v:g}"
        else:
            ci = int(round(-self.origin[0] / v))
            i = f"|i - {ci}| < r/{h:g} (i in [{ci} - r/{h:g}, {ci} + r/{h:g}))"
        j = f"|j - {cj}| < r/{h:g} (j in [{cj} - r/{h:g}, {cj} + r/{h:g}))"
        return f"box crop: voxel (i, j, k) is within range r iff {i} and {j}, all k"

    def column_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """x centres (X, 1) and y centres (1, Y) of the columns, metres in the sensor frame."""
        i = np.arange(self.shape[0])[:, None]
        j = np.arange(self.shape[1])[None, :]
        return self.origin[0] + self.voxel_size * (i + 0.5), self.origin[1] + self.voxel_size * (j + 0.5)

    def range_levels(self, ranges: tuple[float, ...] | None = None) -> np.ndarray:
        """(X, Y) int64: index of the smallest crop holding each column, ``len(ranges)`` where none does."""
        rs = self.ranges if ranges is None else self.check_ranges(ranges)
        level = np.full(self.shape[:2], len(rs), np.int64)
        for li in range(len(rs) - 1, -1, -1):
            sx, sy = self.range_slices(rs[li])
            level[sx, sy] = li
        return level


def range_key(r: float) -> str:
    """The dict key of a range: ``12.8 -> "12.8"``."""
    return f"{float(r):.1f}"


KITTI = Grid(name="kitti", shape=(256, 256, 32), voxel_size=0.2, origin=(0.0, -25.6, -2.0), ranges=(12.8, 25.6, 51.2))

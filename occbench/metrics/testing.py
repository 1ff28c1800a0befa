"""Seeded synthetic SSC frames with SemanticKITTI-like structure, for metric tests and benchmarks.

Not a dataset: a fixed, documented generator so that golden numbers and timings are reproducible.
A frame has a ground layer (road / sidewalk / terrain / parking), building walls, vegetation blobs, cars,
poles and trunks, a few ignore (255) blobs and an invalid mask (below ground and shadow boxes), about
6 % occupied and 25-30 % invalid voxels, like real SemanticKITTI frames. The prediction copies the ground
truth with class confusions, one-voxel surface shifts, missed objects and spurious blobs.
"""

from __future__ import annotations

import numpy as np

from occbench.grid import KITTI

# SemanticKITTI train ids
_ROAD, _PARKING, _SIDEWALK, _BUILDING, _FENCE, _VEG, _TRUNK, _TERRAIN, _POLE, _SIGN, _CAR = (
    9,
    10,
    11,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    1,
)


def synthetic_frame(rng: np.random.Generator, num_classes: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame ``(pred uint8, gt uint8 with 255 ignore, invalid bool)``, all ``(256, 256, 32)``.

    Class ids are SemanticKITTI train ids, folded into ``1..num_classes-1`` when ``num_classes < 20``.
    """
    X, Y, Z = KITTI.shape
    gt = np.zeros(KITTI.shape, np.uint8)
    i = np.arange(X)[:, None]
    j = np.arange(Y)[None, :]
    # ground height varies slowly
    ground = (1 + (rng.random() < 0.5) + np.round(np.sin(i / 40.0 + rng.random() * 6) * 0.6)).astype(np.int64)
    ground = np.broadcast_to(ground, (X, Y))
    half = int(rng.integers(25, 45))  # road half width in voxels
    side = half + int(rng.integers(10, 20))
    cls = np.full((X, Y), _TERRAIN, np.uint8)
    dy = np.abs(j - 128 - int(rng.integers(-10, 10)))
    cls = np.where(dy < side, _SIDEWALK, cls)
    cls = np.where(dy < half, _ROAD, cls)
    park = (dy >= half - 8) & (dy < half) & (np.sin(i / 9.0) > 0.3)
    cls = np.where(park, _PARKING, cls)
    ii, jj = np.nonzero(np.ones((X, Y), bool))
    gt[ii, jj, ground[ii, jj]] = cls[ii, jj]
    invalid = np.zeros(KITTI.shape, bool)
    kk = np.arange(Z)[None, None, :]
    invalid |= kk < ground[:, :, None]
    # building walls beyond the sidewalks, with shadows behind them
    for sgn in (-1, 1):
        wall = 128 + sgn * (side + int(rng.integers(3, 12)))
        x0 = int(rng.integers(0, 80))
        x1 = int(rng.integers(150, 256))
        h = int(rng.integers(12, 28))
        lo, hi = sorted((wall, wall + sgn * 4))
        lo, hi = max(lo, 0), min(hi, Y)
        gt[x0:x1, lo:hi, 2:h] = _BUILDING
        s_lo, s_hi = (0, lo) if sgn < 0 else (hi, Y)
        invalid[x0:x1, s_lo:s_hi, :] = True
        fence_y = 128 + sgn * (side + 1)
        gt[0:x0, fence_y, 2:7] = _FENCE
    # vegetation blobs, cars, poles, trunks
    for _ in range(int(rng.integers(8, 16))):
        c = rng.integers([0, 0, 4], [X, Y, 14])
        r = rng.integers(4, 12)
        sl = tuple(slice(max(int(c[d] - r), 0), min(int(c[d] + r), KITTI.shape[d])) for d in range(3))
        sub = np.ogrid[sl]
        ball = sum(((s - c[d]) / r) ** 2 for d, s in enumerate(sub)) < 1
        region = gt[sl]
        region[ball & (region == 0)] = _VEG
    for _ in range(int(rng.integers(5, 12))):
        x = int(rng.integers(0, X - 20))
        y = 128 + int(rng.integers(-half + 6, half - 6))
        gt[x : x + 20, y - 5 : y + 5, 2:9] = _CAR
        invalid[x + 20 : min(x + 60, X), y - 5 : y + 5, 2:9] = True  # shadow behind the car
    for _ in range(int(rng.integers(6, 14))):
        x = int(rng.integers(0, X - 2))
        y = 128 + int(rng.choice([-1, 1]) * (half + int(rng.integers(1, 8))))
        top = int(rng.integers(12, 30))
        gt[x : x + 2, y : y + 2, 2:top] = _POLE if rng.random() < 0.6 else _TRUNK
        if rng.random() < 0.4:
            gt[x : x + 2, y : y + 4, top - 3 : top] = _SIGN
    for _ in range(int(rng.integers(2, 6))):  # unlabeled / outlier points -> ignore
        c = rng.integers([0, 0, 2], [X - 6, Y - 6, 20])
        gt[c[0] : c[0] + 6, c[1] : c[1] + 6, c[2] : c[2] + 4] = 255
    invalid &= gt == 0  # labelled voxels are observed
    invalid |= rng.random(KITTI.shape) < 0.002  # scattered
    if num_classes < 20:
        occ = (gt != 0) & (gt != 255)
        gt[occ] = (gt[occ] - 1) % (num_classes - 1) + 1
    pred = _noisy_prediction(rng, gt, num_classes)
    return pred, gt, invalid


def _noisy_prediction(rng: np.random.Generator, gt: np.ndarray, C: int) -> np.ndarray:
    pred = np.where(gt == 255, 0, gt).astype(np.uint8)
    occ = pred != 0
    # one-voxel vertical shift of part of the surfaces
    shift = occ & (rng.random(gt.shape) < 0.15)
    up = np.zeros_like(shift)
    up[:, :, 1:] = shift[:, :, :-1]
    pred[up & (pred == 0)] = np.roll(pred, 1, axis=2)[up & (pred == 0)]
    pred[shift & (rng.random(gt.shape) < 0.5)] = 0
    # class confusions
    conf = occ & (rng.random(gt.shape) < 0.12)
    pred[conf] = rng.integers(1, C, int(conf.sum()))
    # spurious blobs
    for _ in range(int(rng.integers(5, 15))):
        c = rng.integers([0, 0, 0], [250, 250, 28])
        pred[c[0] : c[0] + 6, c[1] : c[1] + 6, c[2] : c[2] + 4] = rng.integers(1, C)
    # far field blurred: drop a share of the occupied voxels beyond 35 m
    far = np.zeros(gt.shape, bool)
    far[175:] = True
    pred[far & (rng.random(gt.shape) < 0.3)] = 0
    return pred

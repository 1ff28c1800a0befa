"""Golden numbers on a fixed generated case. If a number changes on purpose, regenerate with
``python tests/test_metrics_golden.py --write``, bump ``GOLDEN_VERSION`` and add a changelog entry to
docs/metrics-changelog.md (``## Golden version N``) saying why."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from occbench.io.kitti import read_calib, read_poses
from occbench.metrics import CityMapMetric, FrameArrays, SSCMetric, TemporalConsistency
from occbench.metrics.testing import synthetic_frame

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden" / "metrics_golden.json"
CHANGELOG = HERE.parent / "docs" / "metrics-changelog.md"
SEQ08 = HERE / "data" / "kitti-odometry" / "sequences" / "08"  # real files, tests/data/README.md
GOLDEN_VERSION = 1
SEED = 20240611


def compute_golden() -> dict:
    rng = np.random.default_rng(SEED)
    frames = [synthetic_frame(rng) for _ in range(3)]
    ssc = SSCMetric("semantickitti-ssc")
    for pred, gt, inv in frames:
        ssc.update_frame(pred, FrameArrays(gt, inv))
    rng360 = np.random.default_rng(SEED + 1)
    ssc360 = SSCMetric("sscbench-kitti360-ssc")
    for _ in range(2):
        pred, gt, inv = synthetic_frame(rng360, num_classes=19)
        ssc360.update_frame(pred, FrameArrays(gt, inv))
    poses = read_poses(SEQ08 / "poses.txt", read_calib(SEQ08 / "calib.txt"))
    city, tc = CityMapMetric("semantickitti-ssc"), TemporalConsistency("semantickitti-ssc")
    for (pred, gt, inv), f in zip(frames, (0, 5, 10)):
        city.update_frame(pred, FrameArrays(gt, inv, pose=poses[f]))
        tc.update_frame(pred, FrameArrays(gt, inv, pose=poses[f]))
    curve = ssc.distance_curve()
    return {
        "semantickitti-ssc": ssc.compute(),
        "semantickitti-ssc-distance-miou": curve["miou"],
        "sscbench-kitti360-ssc": ssc360.compute(),
        "city_map": {k: v for k, v in city.compute().items() if k not in ("labelling_rule",)},
        "temporal_consistency": tc.compute(),
    }


def _flatten(d, prefix=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _flatten(v, f"{prefix}/{k}")
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from _flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix, d


def _json_ready(d):
    return json.loads(json.dumps(d, allow_nan=True))


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


def test_golden_numbers_unchanged(golden):
    assert golden["version"] == GOLDEN_VERSION, "bump GOLDEN_VERSION together with the golden file"
    got = dict(_flatten(_json_ready(compute_golden())))
    want = dict(_flatten(golden["numbers"]))
    assert got.keys() == want.keys()
    diffs = []
    for k, w in want.items():
        g = got[k]
        if isinstance(w, float) or isinstance(g, float):
            same = (
                (math.isnan(w) and math.isnan(g))
                if isinstance(w, float) and math.isnan(w)
                else g == pytest.approx(w, rel=1e-12, abs=1e-15)
            )
        else:
            same = g == w
        if not same:
            diffs.append(f"{k}: golden {w!r}, computed {g!r}")
    assert not diffs, "golden numbers changed (regenerate, bump the version, write a changelog entry):\n" + "\n".join(
        diffs[:20]
    )


def test_changelog_has_entry_for_golden_version(golden):
    text = CHANGELOG.read_text()
    versions = [int(v) for v in re.findall(r"^## Golden version (\d+)\b", text, flags=re.M)]
    assert golden["version"] in versions, f"{CHANGELOG} has no '## Golden version {golden['version']}' entry"
    entry = text.split(f"## Golden version {golden['version']}", 1)[1].split("\n## ", 1)[0]
    assert len(entry.strip()) > 40, "the changelog entry must say what changed and why"


if __name__ == "__main__":
    if "--write" in sys.argv:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "version": GOLDEN_VERSION,
            "seed": SEED,
            "generator": "tests/test_metrics_golden.py::compute_golden",
            "numbers": _json_ready(compute_golden()),
        }
        GOLDEN.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN}")

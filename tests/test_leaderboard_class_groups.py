"""Static- and dynamic-class mIoU columns of the leaderboard pages (from the per-class IoUs of a results file)."""

from __future__ import annotations

import json
from pathlib import Path

from occbench.leaderboard import _class_group_miou, _static_dynamic_table

RESULTS = Path(__file__).resolve().parents[1] / "leaderboards" / "results"


def _fake(per_class: dict, static: list[str]) -> dict:
    return {
        "protocol": {"static_classes": static},
        "metrics": {"ssc": {r: {"per_class_iou": per_class} for r in ("12.8", "25.6", "51.2")}},
        "header": {"method": {"name": "m"}},
    }


def test_group_means_by_hand() -> None:
    d = _fake(
        {"empty": 0.9, "car": 0.2, "person": 0.0, "road": 0.5, "building": 0.3, "pole": None},
        ["road", "building", "pole"],
    )
    assert abs(_class_group_miou(d, "12.8", True) - 0.4) < 1e-12  # (0.5 + 0.3) / 2, pole has no value
    assert abs(_class_group_miou(d, "12.8", False) - 0.1) < 1e-12  # (0.2 + 0.0) / 2, empty is not a class of the mean
    assert _class_group_miou(_fake({"car": 0.2}, []), "12.8", True) is None
    assert _static_dynamic_table([(Path("x.json"), _fake({"car": 0.2}, []))]) == []


def test_committed_average_fusion_near_the_car() -> None:
    """The committed numbers the docs quote: near the car Average Fusion raises the static classes and lowers the
    dynamic ones (voxformer-sim, 12.8 m: static 22.1 -> 24.7, dynamic 12.4 -> 9.4, car 42.6 -> 28.6)."""
    on = json.loads((RESULTS / "mini-val-voxformer-sim-onboard.json").read_text())
    af = json.loads((RESULTS / "mini-val-voxformer-sim-average-fusion.json").read_text())
    static = [round(100 * _class_group_miou(d, "12.8", True), 1) for d in (on, af)]
    dynamic = [round(100 * _class_group_miou(d, "12.8", False), 1) for d in (on, af)]
    car = [round(100 * d["metrics"]["ssc"]["12.8"]["per_class_iou"]["car"], 1) for d in (on, af)]
    assert static == [22.1, 24.7] and dynamic == [12.4, 9.4] and car == [42.6, 28.6]

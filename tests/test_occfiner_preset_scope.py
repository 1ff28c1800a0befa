"""``-O preset=paper`` of ``occfiner`` records in the results header that stage 1 is not the paper's."""

from __future__ import annotations

import json


def test_occfiner_paper_preset_header_says_stage1_is_not_the_papers() -> None:
    from occbench_baselines.occfiner.method import OccFiner

    paper = OccFiner(preset="paper").config(onboard="voxformer-sim")
    assert "stage 2" in json.dumps(paper) and "not the paper's" in json.dumps(paper)
    assert "preset_scope" not in json.dumps(OccFiner().config(onboard="voxformer-sim"))  # default results unchanged

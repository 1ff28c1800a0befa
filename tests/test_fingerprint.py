"""Dataset fingerprints in results headers and on leaderboards."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from occbench.autolabel.page import autolabel_pages
from occbench.evaluation.run import DatasetSpec, EvalConfig, MethodSpec, evaluate
from occbench.leaderboard import render_pages, stale_pages
from occbench.testing import make_semantickitti_tree

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def tree(tmp_path):
    return make_semantickitti_tree(tmp_path / "data", {"08": 16}, onboard={"noisy": 0.2})


def run(tree, method="onboard", **kw):
    return evaluate(
        EvalConfig(
            dataset=DatasetSpec("semantickitti", str(tree), "val", "noisy"),
            method=MethodSpec(method),
            workers=1,
            metrics=(),
            command=f"occbench evaluate --method {method}",
            **kw,
        )
    )


def fp(results):
    return results["header"]["dataset"]["fingerprint"]


def test_results_header_fingerprint_follows_the_scored_ground_truth(tree):
    a = fp(run(tree).to_dict())
    assert set(a) == {"version", "files", "sequences", "frames", "content"} and a["content"] is None
    assert a["frames"] == {"08": 4} and len(a["files"]) == 64 and set(a["sequences"]) == {"08"}
    assert fp(run(tree).to_dict()) == a  # deterministic
    with_content = fp(run(tree, fingerprint_content=True).to_dict())
    assert with_content["files"] == a["files"] and len(with_content["content"]) == 64
    vox = tree / "sequences" / "08" / "voxels"
    # same names and sizes, other labels: only the content hash sees it
    lab = np.fromfile(vox / "000005.label", np.uint16)
    lab[:1000] = 40
    lab.tofile(vox / "000005.label")
    changed = fp(run(tree, fingerprint_content=True).to_dict())
    assert changed["files"] == a["files"] and changed["content"] != with_content["content"]
    # a frame fewer (as when a release drops frames): the cheap hash changes. The scored frames are the ground-truth
    # files present (as the official evaluate_completion.py scores the files it finds)
    for ext in ("label", "invalid", "occluded", "bin"):
        (vox / f"000015.{ext}").unlink()
    short = fp(run(tree).to_dict())
    assert short["frames"] == {"08": 3} and short["files"] != a["files"]


def test_leaderboard_shows_fingerprints_and_flags_rows_on_different_data(tree, tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    run(tree).write(res / "onboard.json")
    run(tree, "average-fusion").write(res / "fusion.json")
    page = render_pages(res, REPO / "leaderboards" / "reported")["semantickitti-val.md"]
    key = fp(json.loads((res / "onboard.json").read_text()))["files"][:12]
    assert re.search(r"\| rel\. mIoU gain \(51\.2 m\) +\| data +\|", page)
    assert len(re.findall(rf"\| `{key}` +\|\n", page)) == 2
    assert "Rows scored on different data" not in page and "unknown" not in page
    # the fusion row scored on a different set of frames: flagged, and no gain against the onboard row
    d = json.loads((res / "fusion.json").read_text())
    d["header"]["dataset"]["fingerprint"]["files"] = "f" * 64
    (res / "fusion.json").write_text(json.dumps(d))
    # and a row written before fingerprints existed
    legacy = json.loads((res / "onboard.json").read_text())
    del legacy["header"]["dataset"]["fingerprint"]
    legacy["header"]["method"]["name"] = "legacy"
    (res / "legacy.json").write_text(json.dumps(legacy))
    page = render_pages(res, REPO / "leaderboards" / "reported")["semantickitti-val.md"]
    assert (
        "Rows scored on different data" in page
        and f"`{key}`: onboard" in page
        and "`ffffffffffff`: average-fusion" in page
    )
    fusion_row = next(line for line in page.splitlines() if line.startswith("| [average-fusion]"))
    assert "| – " in fusion_row and "ffffffffffff" in fusion_row and "%" not in fusion_row
    assert "Data `unknown`: results files written before" in page
    # the same content read from other files (content hashes equal) is the same data
    d["header"]["dataset"]["fingerprint"]["content"] = "c" * 64
    (res / "fusion.json").write_text(json.dumps(d))
    on = json.loads((res / "onboard.json").read_text())
    on["header"]["dataset"]["fingerprint"]["content"] = "c" * 64
    (res / "onboard.json").write_text(json.dumps(on))
    same_content = render_pages(res, REPO / "leaderboards" / "reported")["semantickitti-val.md"]
    assert "Rows scored on different data" not in same_content


def test_committed_pages_without_fingerprints_render_unchanged(tmp_path):
    """Results files that predate fingerprints render without a data column or note; the committed pages are
    exactly what the committed results render to."""
    lb = REPO / "leaderboards"
    pages = render_pages(lb / "results", lb / "reported", Path("results"), lb / "plots")
    pages |= autolabel_pages(lb / "autolabel")  # the auto-labeling pages, as `occbench leaderboard` writes them
    assert stale_pages(pages, lb) == []
    old = tmp_path / "results"
    old.mkdir()
    for p in sorted((lb / "results").glob("*.json")):
        d = json.loads(p.read_text())
        d["header"]["dataset"].pop("fingerprint", None)
        (old / p.name).write_text(json.dumps(d))
    page = render_pages(old, lb / "reported", Path("results"), lb / "plots")["occbench-mini-val.md"]
    assert "| data " not in page and "unknown" not in page

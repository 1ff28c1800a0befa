"""`occbench leaderboard` draws the pages' plots; --check compares the numbers they show, not their bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner
from PIL import Image, PngImagePlugin

from occbench.cli import main
from occbench.render.figure import PNG_DATA_KEY, png_text

REPO = Path(__file__).resolve().parents[1]


def _tree(tmp: Path) -> Path:
    lb = tmp / "lb"
    for sub in ("results", "reported", "autolabel"):
        shutil.copytree(REPO / "leaderboards" / sub, lb / sub)
    # two onboard models are enough: keep the voxformer-sim rows
    for p in (lb / "results").glob("*sscnet-sim*.json"):
        p.unlink()
    return lb


def _lb(lb: Path, *extra: str):
    return CliRunner().invoke(
        main,
        [
            "leaderboard",
            "--results",
            str(lb / "results"),
            "--reported",
            str(lb / "reported"),
            "--output",
            str(lb),
            *extra,
        ],
    )


def test_plots_written_linked_checked_and_deterministic(tmp_path):
    lb = _tree(tmp_path)
    r = _lb(lb)
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (lb / "plots").glob("*.png"))
    assert names == [
        "autolabel-mini-curve.png",
        "autolabel-mini-full.png",
        "occbench-mini-val-classes-voxformer-sim.png",
        "occbench-mini-val-distance-voxformer-sim.png",
    ]
    page = (lb / "occbench-mini-val.md").read_text()
    for n in names[1:]:
        assert f"(plots/{n})" in page
    assert "(plots/autolabel-mini-curve.png)" in (lb / "autolabel-mini.md").read_text()  # the curve's own page
    assert _lb(lb, "--check").exit_code == 0
    # the same numbers give the same bytes
    first = {n: (lb / "plots" / n).read_bytes() for n in names}
    shutil.rmtree(lb / "plots")
    assert _lb(lb).exit_code == 0
    assert {n: (lb / "plots" / n).read_bytes() for n in names} == first
    assert all(PNG_DATA_KEY in png_text(lb / "plots" / n) for n in names)
    for n in names:
        with Image.open(lb / "plots" / n) as im:
            assert im.size[0] == 1400  # 7 inches at 200 dpi

    # other bytes, same numbers (another matplotlib or encoder): still up to date
    p = lb / "plots" / names[2]
    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_DATA_KEY, png_text(p)[PNG_DATA_KEY])
    with Image.open(p) as im:
        im.convert("RGB").save(p, pnginfo=info, compress_level=1)
    assert p.read_bytes() != first[names[2]]
    assert _lb(lb, "--check").exit_code == 0

    # a number the distance plot shows changes (no table shows it): only that plot is stale
    f = lb / "results" / "mini-val-voxformer-sim-onboard.json"
    d = json.loads(f.read_text())
    d["metrics"]["distance"]["iou"][3] = 0.5
    f.write_text(json.dumps(d))
    r = _lb(lb, "--check")
    assert r.exit_code == 4 and "plots/occbench-mini-val-distance-voxformer-sim.png" in r.output
    assert "occbench-mini-val.md" not in r.output
    assert _lb(lb).exit_code == 0 and _lb(lb, "--check").exit_code == 0

    # a missing plot, or a generated plot no page shows, is stale
    (lb / "plots" / names[0]).unlink()
    r = _lb(lb, "--check")
    assert r.exit_code == 4 and names[0] in r.output
    assert _lb(lb).exit_code == 0
    shutil.copy(lb / "plots" / names[2], lb / "plots" / "occbench-mini-val-distance-gone.png")
    r = _lb(lb, "--check")
    assert r.exit_code == 4 and "occbench-mini-val-distance-gone.png" in r.output
    assert _lb(lb).exit_code == 0 and not (lb / "plots" / "occbench-mini-val-distance-gone.png").exists()
    # a hand-made picture in the plots folder (no digest) is left alone
    Image.new("RGB", (4, 4)).save(lb / "plots" / "hand-made.png")
    assert _lb(lb, "--check").exit_code == 0


def test_committed_plots_are_up_to_date():
    r = CliRunner().invoke(
        main,
        [
            "leaderboard",
            "--results",
            str(REPO / "leaderboards" / "results"),
            "--reported",
            str(REPO / "leaderboards" / "reported"),
            "--output",
            str(REPO / "leaderboards"),
            "--check",
        ],
    )
    assert r.exit_code == 0, r.output

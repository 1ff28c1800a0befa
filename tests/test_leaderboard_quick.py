"""docs/leaderboards.md, "A quick private leaderboard": its commands, taken from the page, run in order. The first
(generating a tiny occbench-mini, about a minute) is checked to be what the page says and replaced by an even smaller
mini generated into the same folder; the evaluate and leaderboard commands run as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "leaderboards.md"


def test_the_quick_leaderboard_commands_run(tmp_path):
    from occbench.synth import generate_mini
    from occbench.testing import pico_mini_config

    block = re.search(r"<!-- quick-leaderboard -->\n```bash\n(.*?)```", DOC.read_text(), re.S)
    assert block is not None, "docs/leaderboards.md: the quick-leaderboard block"
    lines = block.group(1).strip().splitlines()
    assert lines[0] == "occbench synth -o tiny-mini --size tiny --onboard voxformer-sim"
    cfg = pico_mini_config()
    generate_mini(tmp_path / "tiny-mini", cfg, progress=False, workers=1, splits=["val"])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ),
        "OMP_NUM_THREADS": "1",
    }
    r = subprocess.run(
        ["bash", "-e", "-c", "\n".join(lines[1:])],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    files = sorted((tmp_path / "tiny-results").glob("*.json"))
    methods = {json.loads(f.read_text())["header"]["method"]["name"]: f for f in files}
    assert set(methods) == {"onboard", "average-fusion"}
    page = (tmp_path / "tiny-pages" / "occbench-mini-val.md").read_text()
    for name, f in methods.items():  # each row links its results file and shows its 51.2 m mIoU
        miou = json.loads(f.read_text())["metrics"]["ssc"]["51.2"]["miou"]
        row = next(x for x in page.splitlines() if x.startswith(f"| [{name}](../tiny-results/{f.name})"))
        assert f"{100 * miou:.2f}" in row, row

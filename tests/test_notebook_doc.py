"""docs/notebook.md runs: its cells, taken from the page, executed in order in one interpreter whose ``__main__``
has no file behind it (as a Jupyter kernel's), on a small generated occbench-mini in the data cache."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from occbench.testing import pico_mini_config

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "notebook.md"
CELL = re.compile(r"<!-- notebook-cell -->\n```python\n(.*?)```", re.S)

# runs each cell as a kernel does: compiled from text, in __main__'s namespace, one after the other
KERNEL = """
import json, sys
cells = json.loads(sys.stdin.read())
for i, cell in enumerate(cells):
    print(f"--- cell {i + 1}", flush=True)
    exec(compile(cell, f"<cell {i + 1}>", "exec"), globals())
"""


def notebook_cells() -> list[str]:
    return CELL.findall(DOC.read_text())


def test_the_cells_are_found():
    cells = notebook_cells()
    assert len(cells) == 4 and DOC.read_text().count("<!-- notebook-cell -->") == 4
    assert "register_method(" in cells[1] and "results.report()" in cells[2]
    headless = re.search(r"## Running it headless.*?```python\n(.*?)```", DOC.read_text(), re.S)
    assert headless is not None
    compile(headless.group(1), "headless", "exec")  # it needs nbclient, not installed here: at least it parses


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory) -> Path:
    """A data cache whose default mini is a pico one (val, voxformer-sim)."""
    from occbench.synth import generate_mini
    from occbench.synth.config import GENERATOR_VERSION

    cache = tmp_path_factory.mktemp("data")
    cfg = pico_mini_config()
    generate_mini(cache / f"mini-v{GENERATOR_VERSION}", cfg, progress=False, workers=1, splits=["val"])
    return cache


def test_the_notebook_cells_run(tmp_path, data_cache):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ),
        "OCCBENCH_DATA": str(data_cache),
        "OMP_NUM_THREADS": "1",
    }
    r = subprocess.run(
        [sys.executable, "-c", KERNEL],
        input=json.dumps(notebook_cells()),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout.split("--- cell ")
    # cell 1: the sequence and a frame's arrays and classes
    assert "08 6 scans; labelled: [0, 5] ..." in out[1]
    assert "ground truth (256, 256, 32) uint8 prediction (256, 256, 32) uint8" in out[1]
    assert "'empty':" in out[1]
    # cell 3: the partial run's tables
    assert "past-fusion on occbench-mini val (onboard: voxformer-sim) [SYNTHETIC mini data]" in out[3]
    assert "PARTIAL" not in out[3]  # pico val has 2 labelled frames: max_frames=2 covers the split
    assert "| 51.2 m" in out[3]
    # cell 4: the file it wrote holds the method's scores, as recorded by the notebook's own class
    written = tmp_path / "notebook-results" / "past-fusion-k2.json"
    doc = json.loads(written.read_text())
    assert doc["header"]["method"]["name"] == "past-fusion" and doc["header"]["method"]["options"] == {"k": 2}
    assert doc["header"]["method"]["source"] == {"registered": "in-process", "object": "__main__:PastFusion"}
    s = doc["metrics"]["ssc"]["51.2"]
    assert f"IoU {100 * s['iou']:.2f}  mIoU {100 * s['miou']:.2f} at 51.2 m over 2 frames" in out[4]

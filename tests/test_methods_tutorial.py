"""docs/methods.md runs: its files and commands, taken from the page itself, on a small generated occbench-mini.

Blocks are marked in the page: ``<!-- tutorial-file: PATH -->`` (a file of the tutorial, written to PATH),
``<!-- tutorial-install -->`` (installing the package: done here with ``pip install --no-deps --no-build-isolation
--target``, which leaves the shared environment alone) and ``<!-- tutorial-run -->`` (shell commands, run in order
with ``bash -e``). The data cache (``$OCCBENCH_DATA``) holds a pico occbench-mini generated here, so the page's
commands run unchanged on it; ``$OCCBENCH_SRC`` is this repository (the shipped results files).
"""

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
DOC = REPO / "docs" / "methods.md"
BLOCK = re.compile(r"<!-- (tutorial-file|tutorial-install|tutorial-run)(?:: (\S+))? -->\n```[a-z]*\n(.*?)```", re.S)


def tutorial_blocks() -> list[tuple[str, str | None, str]]:
    return [(m.group(1), m.group(2), m.group(3)) for m in BLOCK.finditer(DOC.read_text())]


def test_the_tutorial_blocks_are_found():
    blocks = tutorial_blocks()
    files = [p for kind, p, _ in blocks if kind == "tutorial-file"]
    assert files == [
        "window-majority/pyproject.toml",
        "window-majority/window_majority/__init__.py",
        "window-majority/window_majority/method.py",
        "window-majority/window_majority/train.py",
        "try_window.py",
    ]
    assert [k for k, _, _ in blocks].count("tutorial-install") == 1
    runs = [b for k, _, b in blocks if k == "tutorial-run"]
    assert any("occbench methods" in r for r in runs) and any("occbench leaderboard" in r for r in runs)
    assert DOC.read_text().count("<!-- tutorial-") == len(blocks)  # every marker is followed by its block


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory) -> Path:
    """A data cache whose default mini is a pico one (train and val, voxformer-sim)."""
    from occbench.synth import generate_mini
    from occbench.synth.config import GENERATOR_VERSION

    cache = tmp_path_factory.mktemp("data")
    cfg = pico_mini_config()
    generate_mini(cache / f"mini-v{GENERATOR_VERSION}", cfg, progress=False, workers=1, splits=["train", "val"])
    return cache


def test_the_methods_tutorial_runs(tmp_path, data_cache):
    work, site = tmp_path / "work", tmp_path / "site"
    blocks = tutorial_blocks()
    for kind, path, body in blocks:
        if kind == "tutorial-file":
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_text(body)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-cache-dir",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(work / "window-majority"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (site / "window_majority" / "method.py").is_file()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
        "OCCBENCH_DATA": str(data_cache),
        "OCCBENCH_SRC": str(REPO),
        "OMP_NUM_THREADS": "1",
    }
    out = []
    for kind, _, body in blocks:
        if kind != "tutorial-run":
            continue
        r = subprocess.run(["bash", "-e", "-c", body], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"{body}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"
        out.append(r.stdout)
    methods, script = out[0], out[1]
    # occbench methods: both methods with their options, found through the installed package's entry points
    assert "window-majority" in methods and "window-vote" in methods
    assert re.search(r"\bn\b.*\bint\b.*\b2\b", methods) and "stride" in methods and "window-vote.json" in methods
    # the top-level script ran: the window's scans and the two accuracies
    assert "scans [3, 4, 5]" in script and "window-majority:" in script and "onboard:" in script
    # the training command wrote its weights: one per window position, shares of voxels in [0, 1]
    learned = json.loads((work / "window-vote.json").read_text())
    assert learned["n"] == 2 and len(learned["weights"]) == 5 and all(0 < w <= 1 for w in learned["weights"])
    assert learned["targets"] == 2 and learned["split"] == "train"
    # results files of both methods, with their options and the learned weights in the header
    found = {}
    for p in (work / "my-results").glob("*.json"):
        d = json.loads(p.read_text())
        found[d["header"]["method"]["name"]] = d
    assert {"window-majority", "window-vote", "onboard", "average-fusion", "occfiner"} <= set(found)
    assert found["window-majority"]["header"]["method"]["options"] == {"n": 2, "stride": 1}
    assert found["window-vote"]["header"]["method"]["learned"]["weights"] == learned["weights"]
    assert found["window-majority"]["header"]["frames"] == found["window-vote"]["header"]["frames"] == 2  # pico val
    # the private leaderboard ranks them with the shipped rows
    page = (work / "my-leaderboard" / "occbench-mini-val.md").read_text()
    for name in ("window-majority", "window-vote", "occfiner-voting", "average-fusion"):
        assert re.search(rf"^\|[^|\n]*{re.escape(name)}", page, re.M), name

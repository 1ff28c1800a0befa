"""The repository is self-contained: no shipped code, test or benchmark reads a reference shelf outside it."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# a path built to the reference shelf beside the repository (its name is assembled here so that this file does not
# itself name the path it forbids): "../<shelf>", parents[N] / "<shelf>", or an absolute path ending in it
SHELF = "sha" + "red"
OUTSIDE = re.compile(r"(\.\./%s\b|parents\[\d+\]\s*/\s*[\"']%s[\"']|/work/%s\b)" % (SHELF, SHELF, SHELF))


def test_no_file_reads_outside_the_repository():
    offenders = []
    for top in ("occbench", "occbench_baselines", "tests", "benchmarks", ".ci"):
        for p in sorted((REPO / top).rglob("*")):
            if p.is_file() and p.suffix in {".py", ".sh", ""}:
                text = p.read_text(errors="ignore")
                offenders += [f"{p.relative_to(REPO)}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
    assert offenders == []

"""The repository is self-contained: no shipped code, test or benchmark reads a reference shelf outside it."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# a path built to a sibling folder of the repository, e.g. parents[2] / "shared" or "../shared"
OUTSIDE = re.compile(r"""(\.\./shared\b|parents\[\d+\]\s*/\s*["']shared["']|/work/shared)""")


def test_no_file_reads_outside_the_repository():
    offenders = []
    for top in ("occbench", "baselines", "tests", "benchmarks", ".ci"):
        for p in sorted((REPO / top).rglob("*")):
            if p.is_file() and p.suffix in {".py", ".sh", ""} and p != Path(__file__).resolve():
                text = p.read_text(errors="ignore")
                offenders += [f"{p.relative_to(REPO)}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
    assert offenders == []

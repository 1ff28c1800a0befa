from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

# real KITTI / SemanticKITTI files shipped with the tests (tests/data/README.md: sources and licences)
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def real_data(tmp_path_factory) -> Path:
    """tests/data with its ``.gz`` files decompressed: ``kitti-odometry/sequences/{00,08}/`` and
    ``semantickitti-sample/`` (one real scan of sequence 08 with its voxel files)."""
    out = tmp_path_factory.mktemp("real-data")
    for src in sorted(DATA.rglob("*")):
        if not src.is_file() or src.name == "README.md":
            continue
        dst = out / src.relative_to(DATA)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".gz":
            with gzip.open(src, "rb") as f, open(dst.with_suffix(""), "wb") as g:
                shutil.copyfileobj(f, g)
        else:
            shutil.copyfile(src, dst)
    return out

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
KITTI = SHARED / "kitti-odometry" / "sequences"
SAMPLE = SHARED / "semantickitti-sample"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"the real KITTI files are expected at {SHARED} (../shared/data next to the repo)")
    return SHARED

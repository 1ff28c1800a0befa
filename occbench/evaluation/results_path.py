"""Where ``occbench evaluate`` writes its results JSON, checked writable before any work starts."""
from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

DEFAULT_DIR = "occbench-results"


def default_results_path(dataset: str, split: str, onboard: str | None, method: str, folder: str | Path = DEFAULT_DIR,
                         now: float | None = None) -> Path:
    """``<folder>/<dataset>-<split>[-<onboard>]-<method>-<YYYYmmdd-HHMMSS>.json`` (the leaderboards' file names plus
    the local time), relative to the working folder; ``-2``, ``-3``, ... is added when that file exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    parts = [dataset, split] + ([onboard] if onboard else []) + [method, stamp]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts))
    path, i = Path(folder) / f"{stem}.json", 1
    while path.exists():
        i += 1
        path = Path(folder) / f"{stem}-{i}.json"
    return path


def resolve_output(output: str | Path | None, default: Path) -> Path:
    """The file to write: ``default`` when ``output`` is None, ``output/<default's name>`` when it is a folder."""
    if output is None:
        return default
    out = Path(output).expanduser()
    return out / default.name if out.is_dir() else out


def check_writable(path: Path) -> None:
    """Make sure the results JSON can be created at ``path`` (its folder may not exist yet: it is created when the
    results are written), without leaving anything behind. Raises ``OSError`` with a message naming the path."""
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected a file path for the results JSON")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"cannot write the results JSON to {path}: {folder} is a file, expected a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OSError(f"cannot write the results JSON to {path}: {folder}: {e.strerror or e}") from None

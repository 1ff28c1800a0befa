"""Where ``occbench evaluate`` writes its results JSON, checked writable before any work starts."""

from __future__ import annotations

import errno
import os
import re
import tempfile
import time
from pathlib import Path

DEFAULT_DIR = "occbench-results"


def default_results_path(
    dataset: str,
    split: str,
    onboard: str | None,
    method: str,
    folder: str | Path = DEFAULT_DIR,
    now: float | None = None,
) -> Path:
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


def names_folder(output: str | Path | None) -> bool:
    """True when ``-o`` names a folder: an existing one, or a path written with a trailing separator
    (``my-results/``), which is created when the results are written."""
    if output is None:
        return False
    text = str(output)
    return Path(text).expanduser().is_dir() or text.endswith(("/", os.sep))


def resolve_output(output: str | Path | None, default: Path) -> Path:
    """The file to write: ``default`` when ``output`` is None, ``output/<default's name>`` when it names a folder
    (:func:`names_folder`)."""
    if output is None:
        return default
    out = Path(output).expanduser()
    return out / default.name if names_folder(output) else out


PROBE_BYTES = 256 * 1024  # a results JSON is about 30 KB; the probe reserves several times that


def check_writable(path: Path, overwrite: bool = True, probe_bytes: int = PROBE_BYTES) -> None:
    """Make sure the results JSON can be created at ``path`` (its folder may not exist yet: it is created when the
    results are written), without leaving anything behind: a probe file next to it gets ``probe_bytes`` of real
    space (a full disk is found now, not after the run). ``overwrite`` False: an existing ``path`` is refused
    (``FileExistsError``). Raises ``OSError`` with a message naming the path."""
    if path.is_symlink():  # replacing the link or writing through it: neither is done silently
        from occbench.regular_files import link_found

        raise FileExistsError(f"{path} is {link_found(path)}; results are never written to or through a link")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected a file path for the results JSON")
    if not overwrite and path.exists():  # a link was refused above
        raise FileExistsError(f"{path} exists (another run's results?); give --overwrite to replace it, or another -o")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"cannot write the results JSON to {path}: {folder} is a file, expected a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
        try:
            _reserve(fd, probe_bytes)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise OSError(f"cannot write the results JSON to {path}: {folder}: {e.strerror or e}") from None


def _reserve(fd: int, n: int) -> None:
    """Allocate ``n`` bytes of disk to ``fd`` (``posix_fallocate``; written zeros where it is not supported)."""
    if n <= 0:
        return
    try:
        os.posix_fallocate(fd, 0, n)
        return
    except (AttributeError, OSError) as e:
        if isinstance(e, OSError) and e.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS):
            raise
    zeros, done = memoryview(bytes(n)), 0
    while done < n:
        done += os.write(fd, zeros[done:])
    os.fsync(fd)

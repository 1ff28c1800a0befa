"""Atomic file writes: write to a temporary file in the same folder, fsync, then rename (replace) or link (create
only) it into place."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_temp(path: Path, data: bytes | memoryview) -> str:
    """A fsynced temporary file ``.NAME.XXXXXXXX.tmp`` next to ``path`` holding ``data`` (removed on failure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        _unlink(tmp)
        if e.filename is None:  # a failed write or fsync names no file: name the one being written
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _unlink(p: str | Path) -> None:
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass


def atomic_write_bytes(path: str | Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _link_new(tmp: str, path: Path) -> None:
    """Put the finished ``tmp`` at ``path`` only if nothing is there (``FileExistsError`` otherwise): a hard link
    (atomic, exclusive), or where links are not supported an ``O_EXCL`` create and a copy."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV, errno.ENOSYS):
            raise
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(tmp, "rb") as src, os.fdopen(fd, "wb") as dst:
            dst.write(src.read())
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        _unlink(path)  # ours: created exclusively above
        raise


def numbered(path: Path, i: int) -> Path:
    """``path`` (i = 1) or ``STEM-i.SUFFIX``."""
    return path if i == 1 else path.with_name(f"{path.stem}-{i}{path.suffix}")


def create_new_bytes(
    path: str | os.PathLike, data: bytes | memoryview, *, overwrite: bool = False, number: bool = False
) -> Path:
    """Write ``data`` to a new file at ``path`` and return where it went. The content is complete on disk before
    the name appears, and the name is claimed atomically: an existing file (another run's) is never replaced.
    If ``path`` exists: with ``overwrite`` it is replaced (atomically); with ``number`` the first free name of
    ``STEM-2.SUFFIX``, ``STEM-3.SUFFIX``, ... is taken; else ``FileExistsError``."""
    path = Path(path)
    tmp = _write_temp(path, data)
    try:
        if overwrite:
            os.replace(tmp, path)
            return path
        for i in range(1, 10_000 if number else 2):
            target = numbered(path, i)
            try:
                _link_new(tmp, target)
                return target
            except FileExistsError:
                continue
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
    finally:
        _unlink(tmp)

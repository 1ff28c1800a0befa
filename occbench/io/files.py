"""Opening files that may come from strangers: regular files only, never blocking on a FIFO or a device (the
openers are defined in :mod:`occbench.regular_files`, which imports only the standard library)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from occbench.errors import FormatError, MissingDataError
from occbench.regular_files import (
    MAX_JSON_BYTES,
    describe_mode,
    open_regular,
    read_json_document,  # noqa: F401
    regular_stat,
)

__all__ = ["MAX_JSON_BYTES", "describe_mode", "open_regular", "read_json_document", "read_regular_file", "regular_stat"]


def read_regular_file(path: str | Path, max_bytes: int, what: str) -> bytes:
    """The bytes of a regular file (not a link, device or fifo) of at most ``max_bytes``."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise MissingDataError(path, what) from None
    if not stat.S_ISREG(st.st_mode):
        raise FormatError(path, f"a regular file ({what})", "a link or special file")
    if st.st_size > max_bytes:
        raise FormatError(path, f"a {what} of at most {max_bytes:,} bytes", f"{st.st_size:,} bytes")
    with open(path, "rb") as f:
        data = f.read(st.st_size + 1)
    if len(data) > max_bytes:
        raise FormatError(path, f"a {what} of at most {max_bytes:,} bytes", f"{len(data):,} bytes (the file grew)")
    return data

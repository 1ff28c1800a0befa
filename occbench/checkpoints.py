"""Checkpoint files (``.pt``): read only as plain containers of tensors, numbers and strings.

A ``.pt`` file written by ``torch.save`` is a pickle, and unpickling can run any code the file names. occbench
therefore reads every checkpoint with ``torch.load(weights_only=True)``, which refuses anything but dicts, lists
and tuples of tensors, numbers, strings, booleans and ``None``: a file that needs more is refused before any of
its objects is built. A checkpoint of your own written by an older version (e.g. holding numpy arrays) can be
converted once, if you trust it::

    python -m occbench.checkpoints OLD.pt NEW.pt
"""

from __future__ import annotations

import collections
import pickle
import re
import sys
from pathlib import Path
from typing import Any

from occbench.errors import FormatError
from occbench.io.files import regular_stat

ALLOWED = "dicts, lists and tuples of tensors, numbers, strings, booleans and None"
CONVERT_HINT = (
    "if the file is your own and you trust it, convert it once with: python -m occbench.checkpoints {src} NEW.pt"
)


def _refusal(detail: str) -> str:
    m = re.search(r"Unsupported global: GLOBAL (\S+)", detail) or re.search(r"WeightsUnpickler error: ([^\n]+)", detail)
    return m.group(1) if m else detail.strip().splitlines()[0][:200] if detail.strip() else "an object outside that set"


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name the file and say what to do.

    Raises :class:`MissingDataError` if the file is absent and :class:`FormatError` if it is not a regular file,
    is not a torch checkpoint, or holds objects other than the plain containers above (nothing of it is run).
    """
    import torch

    path = Path(path)
    regular_stat(path, "checkpoint file")
    _check_archive(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise FormatError(
            path,
            f"a checkpoint holding only {ALLOWED} (read with torch.load(weights_only=True))",
            f"a pickle that needs {_refusal(str(e))}; nothing of it was run. " + CONVERT_HINT.format(src=path),
        ) from None
    except Exception as e:  # torch raises RuntimeError, EOFError, KeyError, ... on corrupt archives
        raise FormatError(
            path,
            "a torch checkpoint written by torch.save",
            f"unreadable content ({type(e).__name__}: {_refusal(str(e))})",
        ) from None


def _check_archive(path: Path) -> None:
    """What torch.save writes: a zip archive of stored (uncompressed) entries, or a pickle (the legacy format).
    A compressed entry could inflate far beyond the file's size (a small file asking for gigabytes), so it is
    refused before anything is read, and so is a file that is neither."""
    import zipfile

    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(1)
        if head != b"\x80":  # every pickle of protocol 2 or later starts with PROTO
            found = "a truncated or damaged zip archive" if head == b"P" else "neither a zip archive nor a pickle"
            raise FormatError(path, "a torch checkpoint written by torch.save", found)
        return
    try:
        with zipfile.ZipFile(path) as z:
            entries = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise FormatError(path, "a torch checkpoint written by torch.save", f"a damaged zip archive ({e})") from None
    for i in entries:
        if i.compress_type != zipfile.ZIP_STORED:
            raise FormatError(
                path,
                "a torch checkpoint as torch.save writes it (entries stored, not compressed)",
                f"entry {i.filename!r} compressed ({i.compress_size:,} bytes inflating to {i.file_size:,})",
            )


def to_plain(obj: Any, where: str = "checkpoint") -> Any:
    """``obj`` with numpy arrays made tensors and numpy scalars made Python numbers, so that ``torch.load(
    weights_only=True)`` reads it back. Raises ``TypeError`` naming the entry for anything else."""
    import numpy as np
    import torch

    if isinstance(obj, np.generic):  # before the Python types: np.float64 is a float subclass
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, torch.Tensor, torch.dtype, torch.device)):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj).copy())
    if isinstance(obj, dict):
        items = {k: to_plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
        return collections.OrderedDict(items) if isinstance(obj, collections.OrderedDict) else items
    if isinstance(obj, (list, tuple)):
        out = [to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return out if isinstance(obj, list) else tuple(out)
    raise TypeError(f"{where}: a {type(obj).__module__}.{type(obj).__qualname__} cannot be stored as plain data")


def convert_legacy(src: str | Path, dst: str | Path) -> Path:
    """Rewrite a trusted legacy checkpoint ``src`` as plain data at ``dst`` (checked to read back with
    ``weights_only=True``, every tensor equal). ``src`` is unpickled in full: only for files you trust."""
    import io

    import torch

    from occbench.io.atomic import atomic_write_bytes

    old = torch.load(src, map_location="cpu", weights_only=False)  # the caller vouches for src
    new = to_plain(old)
    buf = io.BytesIO()
    torch.save(new, buf)
    back = torch.load(io.BytesIO(buf.getvalue()), map_location="cpu", weights_only=True)
    _assert_same(new, back, "checkpoint")
    atomic_write_bytes(dst, buf.getbuffer())
    return Path(dst)


def _assert_same(a: Any, b: Any, where: str) -> None:
    import torch

    if isinstance(a, torch.Tensor):
        if not (isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)):
            raise AssertionError(f"{where}: tensor differs after conversion")
    elif isinstance(a, dict):
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif a != b and not (a != a and b != b):  # NaN equals NaN here
        raise AssertionError(f"{where}: {a!r} != {b!r} after conversion")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] in ("-h", "--help"):
        print(
            "usage: python -m occbench.checkpoints OLD.pt NEW.pt\n"
            "Rewrites a checkpoint you trust (it is unpickled in full) as plain tensors, numbers and strings."
        )
        return 2
    out = convert_legacy(args[0], args[1])
    print(f"wrote {out} (reads with torch.load(weights_only=True))")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

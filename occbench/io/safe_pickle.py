"""Reading pickles that hold only numpy arrays and plain containers, without running code.

Onboard codebases (MonoScene ``generate_output.py`` and its SSCBench copy, OccFormer's ``--pred-save``,
Symphonies' ``generate_outputs.py``) store each frame as a pickled ``dict`` of numpy arrays. ``pickle.load`` on such
a file would call whatever the file names; :func:`load_pickle` resolves a global only if it is on the list below,
so a pickle that names anything else raises :class:`UnsafePickleError` before any object is built.

Admitted globals, and why (the names numpy writes under protocols 0-5, numpy 1.x ``numpy.core`` and numpy 2.x
``numpy._core`` spellings alike):

- ``numpy.ndarray``, ``numpy.dtype``: arrays and their dtypes;
- ``numpy[._]core.multiarray._reconstruct``: ``ndarray.__reduce__`` (protocols 0-4);
- ``numpy[._]core.numeric._frombuffer``: ``ndarray.__reduce_ex__`` under protocol 5;
- ``numpy[._]core.multiarray.scalar``: numpy scalars (``np.float32(1.5)``);
- ``builtins.set`` / ``builtins.frozenset`` (``__builtin__`` in protocol 0-2 files): sets below protocol 4;
- ``_codecs.encode``: how protocols 0-2 spell ``bytes`` (the raw array data).

Plain containers (dict, list, tuple, str, bytes, numbers, None, bool) need no global. Persistent ids are refused
(:class:`pickle.Unpickler` raises without a ``persistent_load``).
"""
from __future__ import annotations

import _codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from occbench.errors import FormatError, OccbenchError
from occbench.io.files import read_regular_file

MAX_PICKLE_BYTES = 256 * 1024 * 1024  # a MonoScene frame pickle is about 10 MB


def _numpy_core(module: str, name: str) -> Any:
    """``numpy._core.<module>.<name>`` (numpy 2), else ``numpy.core.<module>.<name>`` (numpy 1)."""
    import importlib

    try:
        mod = importlib.import_module(f"numpy._core.{module}")
    except ImportError:  # pragma: no cover - numpy 1.x
        mod = importlib.import_module(f"numpy.core.{module}")
    return getattr(mod, name)


def _allowed() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
        ("__builtin__", "set"): set, ("__builtin__", "frozenset"): frozenset,
        ("_codecs", "encode"): _codecs.encode,
    }
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = _numpy_core("multiarray", "_reconstruct")
        table[(f"{core}.multiarray", "scalar")] = _numpy_core("multiarray", "scalar")
        table[(f"{core}.numeric", "_frombuffer")] = _numpy_core("numeric", "_frombuffer")
    return table


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = _allowed()


class UnsafePickleError(FormatError):
    """A pickle names a global that :func:`load_pickle` does not admit; nothing of it was executed."""

    def __init__(self, path: str | Path | None, refused: str):
        self.refused = refused
        super().__init__(path, "a pickle of numpy arrays and plain containers only",
                         f"a reference to {refused} (refused, not executed)")

    def __reduce__(self):
        return (type(self), (self.path, self.refused))


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, path: Path | None):
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        obj = ALLOWED_GLOBALS.get((module, name))
        if obj is None:
            raise UnsafePickleError(self._path, f"{module}.{name}")
        return obj


def loads_pickle(data: bytes, path: str | Path | None = None) -> Any:
    """Unpickle ``data`` admitting only :data:`ALLOWED_GLOBALS`; ``path`` names the source in errors."""
    p = None if path is None else Path(path)
    try:
        return _RestrictedUnpickler(io.BytesIO(data), p).load()
    except OccbenchError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError, UnicodeDecodeError) as e:
        raise FormatError(p, "a readable pickle", f"{type(e).__name__}: {e}") from None


def load_pickle(path: str | Path, max_bytes: int = MAX_PICKLE_BYTES) -> Any:
    """Read a pickle file with the restricted unpickler (see the module docstring). Files over ``max_bytes`` are
    refused before they are read."""
    return loads_pickle(read_regular_file(path, max_bytes, "pickle"), path)

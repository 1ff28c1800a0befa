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
(the unpickler raises without a ``persistent_load``).

What it builds is bounded, not only what it reads: a pickle can call an admitted function many times on one
remembered argument, so each admitted global is a guard that checks its arguments and charges what it is about to
allocate to a budget of ``BUDGET_FACTOR`` times the pickle's size plus ``BUDGET_SLACK`` (a valid pickle stores
every byte of its arrays, so it needs about its own size). ``_codecs.encode`` is admitted for ``latin1`` only (the
one encoding pickle writes; ``hex`` and the like grow their input), ``_reconstruct`` only for the empty array numpy
starts from, ``numpy.ndarray`` is not callable, and a ``BUILD`` (``__setstate__``) is admitted only on arrays and
dtypes, charged with the array's size before it runs. A pickle over the budget is refused naming the file.
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


BUDGET_FACTOR = 4  # bytes an unpickled object graph may allocate per byte of pickle
BUDGET_SLACK = 64 * 1024 * 1024


def _allowed() -> dict[tuple[str, str], Any]:
    """What each admitted global resolves to (the guards below stand in for the callables)."""
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): "dtype",
        ("builtins", "set"): "set",
        ("builtins", "frozenset"): "frozenset",
        ("__builtin__", "set"): "set",
        ("__builtin__", "frozenset"): "frozenset",
        ("_codecs", "encode"): "encode",
    }
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = "_reconstruct"
        table[(f"{core}.multiarray", "scalar")] = "scalar"
        table[(f"{core}.numeric", "_frombuffer")] = "_frombuffer"
    return table


class _NdarrayType:
    """``numpy.ndarray`` as a pickle names it: an argument of ``_reconstruct``, never called (``ndarray(shape)``
    would allocate any size)."""

    def __reduce__(self):  # pragma: no cover - never pickled
        raise TypeError("not picklable")


_NDARRAY = _NdarrayType()
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = _allowed()


class UnsafePickleError(FormatError):
    """A pickle names a global that :func:`load_pickle` does not admit; nothing of it was executed."""

    def __init__(self, path: str | Path | None, refused: str):
        self.refused = refused
        super().__init__(
            path,
            "a pickle of numpy arrays and plain containers only",
            f"a reference to {refused} (refused, not executed)",
        )

    def __reduce__(self):
        return (type(self), (self.path, self.refused))


class PickleTooLargeError(FormatError):
    """Unpickling would allocate more than the budget (the pickle grows its data)."""


def _nbytes(shape: Any, dtype: Any) -> int:
    """Bytes of an array of ``shape`` and ``dtype`` as given in a pickle (exact integers: no overflow)."""
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise TypeError(f"an array shape of non-negative integers, found {shape!r:.80}")
    n = np.dtype(dtype).itemsize
    for k in shape:
        n *= k
    return n


class _RestrictedUnpickler(pickle._Unpickler):  # the Python unpickler: its BUILD can be guarded too
    dispatch = dict(pickle._Unpickler.dispatch)
    stack: list[Any]  # the Python unpickler's stack (set by ``load``; typeshed does not declare it)

    def __init__(self, file: io.BufferedIOBase, path: Path | None, budget: int):
        super().__init__(file)
        self._path = path
        self._left = budget
        self._budget = budget
        self._guards = {
            "encode": self._encode,
            "_reconstruct": self._reconstruct,
            "scalar": self._scalar,
            "_frombuffer": self._frombuffer,
            "dtype": self._dtype,
            "set": self._set,
            "frozenset": self._frozenset,
        }

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not supported")

    def find_class(self, module: str, name: str) -> Any:
        obj = ALLOWED_GLOBALS.get((module, name))
        if obj is None:
            raise UnsafePickleError(self._path, f"{module}.{name}")
        return self._guards[obj] if isinstance(obj, str) else obj

    def _charge(self, n: int, what: str) -> None:
        if n > self._left:
            raise PickleTooLargeError(
                self._path,
                f"a pickle that builds at most {self._budget:,} bytes "
                f"({BUDGET_FACTOR} x its size + {BUDGET_SLACK // 2**20} MiB)",
                f"{what} asking for {n:,} more bytes (refused before allocating)",
            )
        self._left -= n

    # the admitted callables, each checking its arguments and charging what it allocates
    def _encode(self, obj: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
        if not isinstance(obj, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
            raise pickle.UnpicklingError(
                f"_codecs.encode is admitted for (str, 'latin1') only, found ({type(obj).__name__}, {encoding!r:.40})"
            )
        self._charge(len(obj), "_codecs.encode")
        return _codecs.encode(obj, "latin1")

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not _NDARRAY:
            raise pickle.UnpicklingError("_reconstruct is admitted for numpy.ndarray only")
        n = _nbytes(shape, "u1") * max(1, len(dtype) if isinstance(dtype, (bytes, str)) else 1)
        if n > 64:
            raise pickle.UnpicklingError(f"_reconstruct of shape {shape!r:.80} (numpy writes an empty array)")
        self._charge(n, "_reconstruct")
        return _numpy_core("multiarray", "_reconstruct")(np.ndarray, shape, dtype)

    def _scalar(self, dtype: Any, obj: Any = None) -> Any:
        if not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError("numpy scalar without a dtype")
        if dtype.hasobject:
            return _numpy_core("multiarray", "scalar")(dtype, obj)
        if not isinstance(obj, bytes) or len(obj) != dtype.itemsize:
            raise pickle.UnpicklingError(
                f"numpy scalar of {dtype} with {len(obj) if isinstance(obj, bytes) else obj!r:.40} bytes"
            )
        self._charge(dtype.itemsize, "numpy scalar")
        return _numpy_core("multiarray", "scalar")(dtype, obj)

    def _frombuffer(self, buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        if not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)):
            raise pickle.UnpicklingError("_frombuffer of something other than bytes")
        self._charge(64, "_frombuffer")  # a view of bytes the pickle holds
        return _numpy_core("numeric", "_frombuffer")(buf, dtype, shape, order)

    def _dtype(self, obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
        if not isinstance(obj, str) or len(obj) > 64:
            raise pickle.UnpicklingError(f"numpy.dtype of {obj!r:.40} (pickles name dtypes by a short string)")
        self._charge(256, "numpy.dtype")
        return np.dtype(obj, align=bool(align), copy=bool(copy))

    def _set(self, items: Any = ()) -> set:
        items = list(items) if isinstance(items, (list, tuple)) else None
        if items is None:
            raise pickle.UnpicklingError("set of something other than a list")
        self._charge(64 * len(items), "set")
        return set(items)

    def _frozenset(self, items: Any = ()) -> frozenset:
        return frozenset(self._set(items))

    def _guarded_build(self) -> None:
        state = self.stack[-1]
        inst = self.stack[-2]
        if isinstance(inst, np.ndarray):
            if not (isinstance(state, tuple) and len(state) in (4, 5)):
                raise pickle.UnpicklingError("an array state (version, shape, dtype, fortran, data)")
            shape, dtype, data = state[-4], state[-3], state[-1]
            if not isinstance(dtype, np.dtype):
                raise pickle.UnpicklingError("an array state with a dtype")
            n = _nbytes(shape, dtype)
            if isinstance(data, list):
                n = max(n, 8 * len(data))
            elif not isinstance(data, (bytes, bytearray, str)) or len(data) != n:
                raise pickle.UnpicklingError(
                    f"array data of {n:,} bytes, found {type(data).__name__} "
                    f"of {len(data) if hasattr(data, '__len__') else '?'}"
                )
            self._charge(n, "an array's state")
        elif not isinstance(inst, np.dtype):
            raise pickle.UnpicklingError(
                f"BUILD (__setstate__) on a {type(inst).__name__}: admitted on arrays and dtypes only"
            )
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]  # typeshed omits _Unpickler's load_* methods

    # typeshed types the table's entries as taking a plain Unpickler; this entry is only ever called on this class
    dispatch[pickle.BUILD[0]] = _guarded_build  # type: ignore[assignment]

    def _guarded_bytearray8(self) -> None:
        """BYTEARRAY8 (protocol 5, e.g. an array's data): the pure-Python unpickler allocates the declared length
        before reading (14 bytes could ask for 8 GiB); charge it first, and read only what is there."""
        n = int.from_bytes(self.read(8), "little")  # type: ignore[attr-defined]
        self._charge(n, "a bytearray")
        data = self.read(n)  # type: ignore[attr-defined]
        if len(data) != n:
            raise pickle.UnpicklingError(f"a bytearray of {n:,} bytes, found {len(data):,} before the end")
        self.append(bytearray(data))  # type: ignore[attr-defined]

    dispatch[pickle.BYTEARRAY8[0]] = _guarded_bytearray8  # type: ignore[assignment]


def loads_pickle(data: bytes, path: str | Path | None = None) -> Any:
    """Unpickle ``data`` admitting only :data:`ALLOWED_GLOBALS`, building at most ``BUDGET_FACTOR`` times its size
    plus ``BUDGET_SLACK`` bytes; ``path`` names the source in errors."""
    p = None if path is None else Path(path)
    try:
        return _RestrictedUnpickler(io.BytesIO(data), p, BUDGET_FACTOR * len(data) + BUDGET_SLACK).load()
    except OccbenchError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
        OverflowError,
        UnicodeDecodeError,
        RecursionError,
    ) as e:
        raise FormatError(p, "a readable pickle", f"{type(e).__name__}: {e}") from None


def load_pickle(path: str | Path, max_bytes: int = MAX_PICKLE_BYTES) -> Any:
    """Read a pickle file with the restricted unpickler (see the module docstring). Files over ``max_bytes`` are
    refused before they are read."""
    return loads_pickle(read_regular_file(path, max_bytes, "pickle"), path)

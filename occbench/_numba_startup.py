"""numba's start-up, cut to what loading occbench's cached kernels needs.

Four changes, all made by :func:`prepare` (once, where numba's layout is the one this was written for: numba
0.59-0.68; elsewhere nothing is changed):

**numba imported without two imports it makes for nothing here** (:func:`import_numba`). numba's import imports
``yaml``, to read a ``.numba_config.yaml`` in the working folder if one is there, and ``scipy``, to check that its
version is at least 1.0 (occbench requires scipy 1.10 or later). Together about 20 ms of every command (measured
on a 2-core machine: ``import numba`` after numpy, 20 alternating runs, median 141 -> 122 ms). Where the working
folder holds no ``.numba_config.yaml`` (and neither module is imported yet), numba is imported with both held
back, so that its ``import yaml`` and ``import scipy`` fail as if absent; numba then has no configuration file to
read and no version to check. Afterwards numba's configuration gets ``yaml`` back, imported when first used, so
that a configuration file written later and read by numba's ``reload_config()`` is read as numba reads it.

**numba's runtime loaded from object code.** A loaded kernel calls numba's runtime (NRT): reference counts and
allocation. numba compiles that runtime's few functions from LLVM IR in every process, once, before the first
kernel: 23-27 ms on a 2-core machine (``rtsys.initialize``). When occbench loads one of its kernels from numba's
cache, the runtime's object code is kept beside it (``occbench-nrt-<key>.nrtobj``, with its bitcode for linking,
as numba keeps a cached function's), and later processes load it as numba loads a cached function. The key is
a hash of the runtime's IR with numba's and llvmlite's versions, Python's, the optimisation level and the
code generator's target (triple, processor, features): anything that changes the code makes another file. The
file carries a SHA-256 of its contents and is used only when that matches; otherwise (and where the folder
cannot be written) the runtime is compiled as numba compiles it.

**Kernels loaded from the cache without numba's registries.** Before it loads a cached function, numba refreshes
its typing and target contexts: it imports some 30 modules of implementations (``numba.np.arraymath``,
``numba.typed``, ``numba.cpython.unicode``, ...) and installs their registries, about 0.12 s on a 2-core machine,
paid by every command although a cached kernel's machine code uses none of them. What a loaded kernel does need
is numba's runtime (NRT) initialised and the C helpers every context registers when it is made. For functions
defined in occbench's own modules, :func:`prepare` makes a cache load initialise the runtime only; a load that
fails that way is retried the way numba does it, and a cache miss compiles as before (numba's compiler refreshes
both contexts itself). Other packages' cached functions are loaded as numba loads them.

**BLAS probe deferred.**
The first function numba compiles or loads from its cache imports ``numba.np.arraymath``, whose import probes
for BLAS (``_HAVE_BLAS = _check_blas()``) by importing ``scipy.linalg.cython_blas``: about 0.2 s of scipy
imports (measured on a 2-core machine, warm page cache), paid by every ``occbench evaluate`` although none of
occbench's kernels calls BLAS. :func:`defer_blas_probe` imports that module with the probe deferred:
``_HAVE_BLAS`` becomes an object whose truth value runs numba's own probe the first time something asks
(``np.correlate`` / ``np.convolve`` typed in nopython code, the only readers), so numba behaves as before, with
the probe (and scipy's import) paid by the code that needs it. Where numba's layout differs from the one this
was written for, nothing is changed. With the first change the probe's module is imported only by a compile,
so :func:`prepare` defers the probe there: at the first refresh of numba's CPU context.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import struct
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any


class DeferredProbe:
    """A flag computed by ``probe()`` on first use (``bool(flag)``), once."""

    def __init__(self, probe: Callable[[], bool]):
        self._probe = probe
        self._value: bool | None = None
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        with self._lock:
            if self._value is None:
                self._value = bool(self._probe())
            return self._value

    def __repr__(self) -> str:
        return f"DeferredProbe({'not run' if self._value is None else self._value})"


def _skip() -> None:
    return None


def defer_blas_probe() -> None:
    """Import ``numba.np.arraymath`` with its BLAS probe deferred (see the module's docstring); a no-op once it is
    imported, or where numba is absent or laid out otherwise."""
    if "numba.np.arraymath" in sys.modules:
        return
    try:
        import numba.np.linalg as linalg
    except ImportError:  # pragma: no cover - numba absent
        return
    probe = getattr(linalg, "ensure_blas", None)
    if probe is None:  # pragma: no cover - another numba layout: import as it is
        return
    linalg.ensure_blas = _skip  # arraymath binds ensure_blas at import and calls it once, for _HAVE_BLAS
    try:
        import numba.np.arraymath as arraymath
    finally:
        linalg.ensure_blas = probe
    for name, mod in list(sys.modules.items()):  # whatever bound the stand-in while it was there gets numba's own
        if name.startswith("numba") and getattr(mod, "ensure_blas", None) is _skip:
            mod.ensure_blas = probe  # type: ignore[attr-defined]
    if isinstance(getattr(arraymath, "_HAVE_BLAS", None), bool) and callable(getattr(arraymath, "_check_blas", None)):
        arraymath._HAVE_BLAS = DeferredProbe(arraymath._check_blas)


_HELD_BACK = ("yaml", "scipy")  # imported by numba's import, for a configuration file and a version check
_CONFIG_FILE = ".numba_config.yaml"  # numba reads it from the working folder (numba.core.config._config_fname)


class _ImportedOnUse(ModuleType):
    """A module's stand-in that imports it on first attribute access (numba's configuration reads ``yaml.safe_load``
    only when a configuration file is there)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module(self.__name__), name)


def import_numba() -> None:
    """Import numba with ``yaml`` and ``scipy`` held back (see the module's docstring), where the working folder
    holds no numba configuration file; as it is otherwise. ``ImportError`` where numba is absent."""
    if "numba" in sys.modules:
        return
    held = [m for m in _HELD_BACK if m not in sys.modules]
    if "yaml" in held and os.path.isfile(_CONFIG_FILE):
        held.remove("yaml")  # a configuration file to read: numba reads it with yaml, as always
    for m in held:
        sys.modules[m] = None  # type: ignore[assignment]  # an import of it raises ImportError
    try:
        import numba  # noqa: F401
    finally:
        for m in held:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]
    if "yaml" in held:
        config = sys.modules.get("numba.core.config")
        if config is not None and getattr(config, "_HAVE_YAML", None) is False and not hasattr(config, "yaml"):
            config.yaml = _ImportedOnUse("yaml")  # type: ignore[attr-defined]
            config._HAVE_YAML = importlib.util.find_spec("yaml") is not None  # type: ignore[attr-defined]


_NRT_MAGIC = b"occbench numba runtime object code 1\n"


def _runtime_file(ctx: Any, ir_text: str, cache_dir: str) -> str:
    """Where the runtime's object code for this IR and this code generator is kept in ``cache_dir``."""
    import numba
    from numba.core import config

    llvmlite_version = getattr(sys.modules.get("llvmlite"), "__version__", None)  # numba imports it
    opt = getattr(config, "OPT", None)
    what = (numba.__version__, llvmlite_version, sys.version_info[:2], opt, ctx.codegen().magic_tuple())
    key = hashlib.sha256(repr(what).encode() + b"\0" + ir_text.encode()).hexdigest()[:32]
    return os.path.join(cache_dir, f"occbench-nrt-{key}.nrtobj")


def _read_runtime(path: str) -> tuple[bytes, bytes] | None:
    """(object code, bitcode) from ``path``; None where it is absent or its contents do not match their hash."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    head = len(_NRT_MAGIC) + 32 + 8
    if len(data) < head or not data.startswith(_NRT_MAGIC):
        return None
    digest = data[len(_NRT_MAGIC) : len(_NRT_MAGIC) + 32]
    (n_obj,) = struct.unpack("<Q", data[head - 8 : head])
    body = data[head:]
    if hashlib.sha256(body).digest() != digest or n_obj > len(body):
        return None
    return body[:n_obj], body[n_obj:]


def _write_runtime(path: str, obj: bytes, bitcode: bytes) -> None:
    from occbench.io.atomic import atomic_write_bytes

    body = obj + bitcode
    atomic_write_bytes(path, _NRT_MAGIC + hashlib.sha256(body).digest() + struct.pack("<Q", len(obj)) + body)


def _cached_runtime(ctx: Any, cache_dir: str, nrtdynmod: Any) -> Any:
    """numba's runtime library (what ``nrtdynmod.compile_nrt_functions`` makes): loaded from its object code in
    ``cache_dir`` where it is there, else compiled as numba compiles it and its object code written there."""
    ir_mod, library = nrtdynmod.create_nrt_module(ctx)
    path = _runtime_file(ctx, str(ir_mod), cache_dir)
    blobs = _read_runtime(path)
    if blobs is not None:
        return ctx.codegen().unserialize_library((library.name, "object", blobs))
    library.enable_object_caching()  # keep the object code the compile makes
    library.add_ir_module(ir_mod)
    library.finalize()
    try:
        _, _, (obj, bitcode) = library.serialize_using_object_code()
        _write_runtime(path, obj, bitcode)
    except Exception:  # a folder that cannot be written (or another serialisation): compiled each time, as numba does
        pass  # (the library is compiled and in use: raising now would make numba compile it a second time)
    return library


def _runtime_initializer(rtsys: Any, nrtdynmod: Any) -> Callable[[Any, str], None]:
    """``initialize(ctx, cache_dir)``: ``rtsys.initialize(ctx)``, with the runtime's library from
    :func:`_cached_runtime` (called under numba's compiler lock, as cache loads are)."""

    def initialize(ctx: Any, cache_dir: str) -> None:
        if getattr(rtsys, "_init", False):
            return
        compile_nrt = nrtdynmod.compile_nrt_functions
        nrtdynmod.compile_nrt_functions = lambda c: _cached_runtime(c, cache_dir, nrtdynmod)
        try:
            rtsys.initialize(ctx)
        finally:
            nrtdynmod.compile_nrt_functions = compile_nrt

    return initialize


_PREFIX = "occbench."  # functions of these modules are loaded without numba's registries
_prepared = False


def _light_load(orig: Callable, initialize: Callable) -> Callable:
    def load_overload(self, sig, target_context):  # numba's Cache.load_overload, less the registries' refresh
        module = getattr(getattr(self, "_py_func", None), "__module__", None) or ""
        if not module.startswith(_PREFIX):
            return orig(self, sig, target_context)
        try:
            initialize(target_context, self._cache_path)  # the runtime a loaded kernel calls (allocation, counts)
            with self._guard_against_spurious_io_errors():
                return self._load_overload(sig, target_context)
        except Exception:  # pragma: no cover - a layout this was not written for: numba's own way
            return orig(self, sig, target_context)

    load_overload.__wrapped__ = orig  # type: ignore[attr-defined]
    return load_overload


def _deferring(orig: Callable) -> Callable:
    def load_additional_registries(self):
        defer_blas_probe()  # before this refresh imports numba.np.arraymath
        return orig(self)

    load_additional_registries.__wrapped__ = orig  # type: ignore[attr-defined]
    return load_additional_registries


def prepare() -> None:
    """Import numba and make the changes of the module's docstring, once; a no-op where numba is absent or laid out
    otherwise (then importing numba raises ``ImportError``, as it would without this)."""
    global _prepared
    if _prepared:
        return
    _prepared = True
    try:
        import_numba()
        from numba.core.caching import Cache
        from numba.core.cpu import CPUContext
        from numba.core.runtime import nrtdynmod
        from numba.core.runtime.nrt import rtsys
    except ImportError:  # pragma: no cover - numba absent or laid out otherwise
        return
    light = all(callable(getattr(Cache, n, None)) for n in ("_load_overload", "_guard_against_spurious_io_errors"))
    if not callable(getattr(CPUContext, "load_additional_registries", None)):  # pragma: no cover
        defer_blas_probe()  # the refresh is laid out otherwise: defer the probe now, as before
        return
    CPUContext.load_additional_registries = _deferring(CPUContext.load_additional_registries)  # type: ignore[method-assign]
    light = light and callable(getattr(rtsys, "initialize", None))
    if light and all(callable(getattr(nrtdynmod, n, None)) for n in ("compile_nrt_functions", "create_nrt_module")):
        initialize = _runtime_initializer(rtsys, nrtdynmod)
    else:  # pragma: no cover - another numba layout: the runtime compiled as numba does
        initialize = lambda ctx, cache_dir: rtsys.initialize(ctx)  # noqa: E731
    if light:
        Cache.load_overload = _light_load(Cache.load_overload, initialize)  # type: ignore[method-assign]

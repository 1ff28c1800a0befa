"""numba's start-up without its eager BLAS probe.

The first function numba compiles or loads from its cache imports ``numba.np.arraymath``, whose import probes
for BLAS (``_HAVE_BLAS = _check_blas()``) by importing ``scipy.linalg.cython_blas``: about 0.2 s of scipy
imports (measured on a 2-core machine, warm page cache), paid by every ``occbench evaluate`` although none of
occbench's kernels calls BLAS. :func:`defer_blas_probe` imports that module with the probe deferred:
``_HAVE_BLAS`` becomes an object whose truth value runs numba's own probe the first time something asks
(``np.correlate`` / ``np.convolve`` typed in nopython code, the only readers), so numba behaves as before, with
the probe (and scipy's import) paid by the code that needs it. Where numba's layout differs from the one this
was written for (numba 0.59-0.68), nothing is changed.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable


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

"""Package attributes imported on first use, so that importing a package (e.g. for one small submodule, or for a
command's ``--help``) does not import its heavy dependencies (torch, scipy)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: attribute ``name`` comes from module ``exports[name]``.

    Usage in a package's ``__init__.py``::

        __getattr__, __dir__ = lazy_exports(__name__, {"generate_mini": "occbench.synth.generate", ...})
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(exports))

    return __getattr__, __dir__

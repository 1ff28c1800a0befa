"""Method registry: the ``occbench.methods`` entry points, plus in-process registration."""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from occbench.errors import UnknownNameError
from occbench.methods.base import OffboardMethod
from occbench.methods.options import parse_options

GROUP = "occbench.methods"
_LOCAL: dict[str, type[OffboardMethod]] = {}


def register_method(name: str, cls: type[OffboardMethod]) -> type[OffboardMethod]:
    """Register a method class in this process (tests, notebooks). Packages use entry points instead."""
    _LOCAL[name] = cls
    return cls


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available_methods() -> list[str]:
    return sorted(set(_entry_points()) | set(_LOCAL))


def method_class(name: str) -> type[OffboardMethod]:
    if name in _LOCAL:
        return _LOCAL[name]
    eps = _entry_points()
    if name not in eps:
        raise UnknownNameError("method", name, available_methods(),
                               f"third-party methods register under the '{GROUP}' entry-point group")
    cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, OffboardMethod)):
        raise TypeError(f"entry point {name!r} ({eps[name].value}) is not an OffboardMethod subclass")
    return cls


def load_method(name: str, **options: Any) -> OffboardMethod:
    return method_class(name)(**options)


__all__ = ["GROUP", "available_methods", "load_method", "method_class", "parse_options", "register_method"]

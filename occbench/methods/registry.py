"""Method registry: the ``occbench.methods`` entry points, plus in-process registration."""

from __future__ import annotations

from typing import Any

from occbench.entry_points import PluginRegistry
from occbench.methods.base import OffboardMethod
from occbench.methods.options import parse_options

GROUP = "occbench.methods"
_REGISTRY = PluginRegistry(GROUP, "method")


def register_method(name: str, cls: type[OffboardMethod]) -> type[OffboardMethod]:
    """Register a method class in this process (tests, notebooks). Packages use entry points instead."""
    return _REGISTRY.register(name, cls)


def available_methods() -> list[str]:
    return _REGISTRY.names()


def method_class(name: str) -> type[OffboardMethod]:
    cls = _REGISTRY.load(name)
    if not (isinstance(cls, type) and issubclass(cls, OffboardMethod)):
        raise TypeError(f"entry point {name!r} ({_REGISTRY.value(name)}) is not an OffboardMethod subclass")
    return cls


def load_method(name: str, **options: Any) -> OffboardMethod:
    return method_class(name)(**options)


def registered_in_process() -> set[str]:
    """The names of the methods registered in this process (:func:`register_method`)."""
    return set(_REGISTRY.local)


def method_source(name: str) -> dict[str, Any]:
    """Where method ``name`` comes from (``header.method.source`` of results files): its distribution's name and
    version and its entry point, or that it was registered in this process (and the class)."""
    return _REGISTRY.source(name)


__all__ = [
    "GROUP",
    "available_methods",
    "load_method",
    "method_class",
    "method_source",
    "parse_options",
    "register_method",
]

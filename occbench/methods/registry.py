"""Method registry: the ``occbench.methods`` entry points, plus in-process registration."""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from occbench.methods.base import OffboardMethod

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
        raise KeyError(f"unknown method {name!r}; registered methods: {', '.join(available_methods()) or 'none'} "
                       f"(third-party methods register under the '{GROUP}' entry-point group)")
    cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, OffboardMethod)):
        raise TypeError(f"entry point {name!r} ({eps[name].value}) is not an OffboardMethod subclass")
    return cls


def load_method(name: str, **options: Any) -> OffboardMethod:
    return method_class(name)(**options)


def parse_options(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are JSON when they parse as JSON, else strings."""
    import json

    out: dict[str, Any] = {}
    for p in pairs:
        if "=" not in p:
            raise ValueError(f"method option {p!r} must look like key=value")
        k, v = p.split("=", 1)
        try:
            out[k.strip().replace("-", "_")] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip().replace("-", "_")] = v
    return out

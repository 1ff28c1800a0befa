"""Named plug-ins: the entry points of one group, plus classes registered in this process (tests, notebooks)."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from occbench.errors import UnknownNameError


class PluginRegistry:
    """The ``group`` entry points and in-process registrations, by name; ``kind`` names them in errors."""

    def __init__(self, group: str, kind: str, builtin: tuple[str, ...] = ()):
        self.group, self.kind, self.builtin = group, kind, builtin
        self.local: dict[str, Any] = {}
        self._found: dict[str, Any] = {}  # the group's entry points as last read

    def register(self, name: str, obj: Any) -> Any:
        self.local[name] = obj
        return obj

    def _entry_points(self) -> dict[str, Any]:
        """Every entry point of the group, read from the installed distributions (a scan of all of them, about
        10 ms)."""
        self._found = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._found

    def _entry_point(self, name: str) -> Any:
        """The entry point ``name``, or None: from the last reading of the group, read again when ``name`` is not
        in it (a distribution installed since is found)."""
        ep = self._found.get(name)
        return ep if ep is not None else self._entry_points().get(name)

    def names(self) -> list[str]:
        return sorted(set(self._entry_points()) | set(self.local) | set(self.builtin))

    def load(self, name: str) -> Any:
        """What ``name`` stands for: an in-process registration, else its entry point (loaded)."""
        if name in self.local:
            return self.local[name]
        ep = self._entry_point(name)
        if ep is None:
            raise UnknownNameError(
                self.kind,
                name,
                self.names(),
                f"third-party {self.kind}s register under the '{self.group}' entry-point group",
            )
        return ep.load()

    def source(self, name: str) -> dict[str, Any]:
        """Where ``name`` comes from, for results headers: an entry point's distribution (name and version) and
        the entry point itself (``name = module:attribute``), or ``{"registered": "in-process", "object":
        "module:qualified name"}`` for a registration in this process."""
        if name in self.local:
            obj = self.local[name]
            return {
                "registered": "in-process",
                "object": f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__qualname__)}",
            }
        ep = self._entry_point(name)
        if ep is None:
            raise KeyError(name)
        dist = getattr(ep, "dist", None)
        return {
            "distribution": dist.name if dist is not None else None,
            "version": dist.version if dist is not None else None,
            "entry_point": f"{ep.name} = {ep.value}",
        }

    def value(self, name: str) -> str:
        """The ``module:attribute`` of ``name``'s entry point (for messages)."""
        ep = self._entry_point(name)
        if ep is None:
            raise KeyError(name)
        return ep.value

"""Metric registry: the ``occbench.metrics`` entry points, plus in-process registration.

A metric is a streaming state (:class:`StreamingMetric`): ``update_frame(pred, frame)`` for every scored frame
(``pred``: the method's ``(256, 256, 32)`` uint8 train ids; ``frame``: the :class:`occbench.datasets.Frame`, with
its ground truth and pose), ``merge(other)`` (states of disjoint frames add up) and ``compute()`` (a JSON-able
dict, written under the metric's name in the results file's ``metrics``); states travel between processes by
pickle. ``state_dict()`` (a JSON-able exact state) where a metric has one (:class:`~occbench.metrics.SSCMetric`).
It is built from the dataset's :class:`~occbench.metrics.Protocol`: ``cls(protocol)``.

``ssc``, ``city`` and ``consistency`` are occbench's own (:class:`~occbench.metrics.SSCMetric`,
:class:`~occbench.metrics.CityMapMetric`, :class:`~occbench.metrics.TemporalConsistency`); ``occbench evaluate``
computes them in one fused pass (the city map and consistency share one world map state) and writes them under
``ssc``/``distance``, ``city_map``/``city_map_per_sequence`` and ``temporal_consistency``.
"""
from __future__ import annotations

from typing import Any, Protocol as TypingProtocol, runtime_checkable

from occbench.entry_points import PluginRegistry

GROUP = "occbench.metrics"
BUILTIN = ("ssc", "city", "consistency")  # computed by evaluate's fused pass
_REGISTRY = PluginRegistry(GROUP, "metric", BUILTIN)


@runtime_checkable
class StreamingMetric(TypingProtocol):
    """What a metric implements (see the module docstring)."""

    def update_frame(self, pred: Any, frame: Any) -> None: ...

    def merge(self, other: Any) -> Any: ...

    def compute(self) -> dict[str, Any]: ...


def register_metric(name: str, cls: type) -> type:
    """Register a metric class in this process (tests, notebooks). Packages use entry points instead."""
    return _REGISTRY.register(name, cls)


def available_metrics() -> list[str]:
    return _REGISTRY.names()


def metric_class(name: str) -> type:
    return _REGISTRY.load(name)


def load_metric(name: str, protocol: Any) -> Any:
    """A fresh state of metric ``name`` for ``protocol``."""
    m = metric_class(name)(protocol)
    if not isinstance(m, StreamingMetric):
        raise TypeError(f"metric {name!r} ({type(m).__name__}): expected update_frame, merge and compute methods")
    return m

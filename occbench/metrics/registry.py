"""Metric registry: the ``occbench.metrics`` entry points, plus in-process registration.

A metric is a :class:`~occbench.metrics.base.Metric`: built from the dataset's
:class:`~occbench.metrics.EvalProtocol` (``cls(protocol)``), it takes every scored frame through
``update_frame(pred, frame)`` (``pred``: the method's ``(256, 256, 32)`` uint8 train ids; ``frame``: the
:class:`occbench.datasets.Frame`, with its ground truth and pose), merges with the state of other frames
(``merge``) and gives a JSON-able dict (``compute``), written under the metric's name in the results file's
``metrics``; states travel between processes by pickle.

``ssc``, ``city`` and ``consistency`` are entry points like any other (:class:`~occbench.metrics.SSCMetric`,
:class:`~occbench.metrics.CityMapMetric`, :class:`~occbench.metrics.TemporalConsistency`). ``occbench evaluate``
computes the world-map metrics (:class:`~occbench.metrics.worldmetric.WorldMapMetric`: ``city`` and
``consistency``) in one fused pass over one shared world map state and writes them under ``city_map``,
``city_map_per_sequence`` and ``temporal_consistency``; ``ssc`` under ``ssc`` and ``distance``.
"""

from __future__ import annotations

from typing import Any

from occbench.entry_points import PluginRegistry
from occbench.metrics.base import Metric

GROUP = "occbench.metrics"
_REGISTRY = PluginRegistry(GROUP, "metric")


def register_metric(name: str, cls: type) -> type:
    """Register a metric class in this process (tests, notebooks). Packages use entry points instead."""
    return _REGISTRY.register(name, cls)


def available_metrics() -> list[str]:
    return _REGISTRY.names()


def metric_class(name: str) -> type[Any]:
    return _REGISTRY.load(name)


def load_metric(name: str, protocol: Any) -> Any:
    """A fresh state of metric ``name`` for ``protocol``."""
    cls = metric_class(name)
    if not (isinstance(cls, type) and issubclass(cls, Metric)):
        raise TypeError(
            f"metric {name!r} ({getattr(cls, '__name__', cls)!r}): expected a subclass of occbench.metrics.Metric"
        )
    return cls(protocol)

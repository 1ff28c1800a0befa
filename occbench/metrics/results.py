"""Results as JSON that carries its full protocol, so a number can never be mistaken for another protocol's."""

from __future__ import annotations

import math
from typing import Any

from occbench.metrics.protocol import EvalProtocol, get_protocol

RESULTS_SCHEMA = "occbench.results"
RESULTS_SCHEMA_VERSION = 1


def _clean(x: Any) -> Any:
    """JSON-safe copy: NaN / inf -> None, numpy scalars -> Python numbers, tuples -> lists."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and callable(x.item) and getattr(x, "shape", None) == ():
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def results_json(
    protocol: EvalProtocol | str, metrics: dict[str, Any], extra_header: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Build the results document.

    Args:
        protocol: the protocol the numbers were computed under.
        metrics: ``{name: metric object or already computed dict}``; objects with ``compute()`` are computed,
            and their protocol must be ``protocol`` (e.g. ``{"ssc": m, "city_map": city}``).
        extra_header: free-form provenance (method, split, sequences, command, ...).

    Returns a dict (see docs/metrics.md, "Results JSON"): ``schema``, ``schema_version``, ``units`` ("fraction":
    every score is in 0..1, multiply by 100 for the paper's percentages), ``protocol`` (full header:
    id, version, classes averaged, ignore/invalid policy, epsilons, ranges), ``header`` and ``metrics``.
    Non-finite numbers (e.g. completion IoU with nothing occupied) are written as ``null``.
    """
    proto = get_protocol(protocol)
    out: dict[str, Any] = {}
    for name, m in metrics.items():
        if hasattr(m, "compute"):
            mp = getattr(m, "protocol", None)
            if mp is not None and mp != proto:
                raise ValueError(f"metric {name!r} was computed under {mp.tag}, not {proto.tag}")
            vals = m.compute()
            if hasattr(m, "n_frames") and isinstance(vals, dict) and "n_frames" not in vals:
                vals = {"n_frames": int(m.n_frames), **vals}
            out[name] = vals
        else:
            out[name] = m
    return _clean(
        {
            "schema": RESULTS_SCHEMA,
            "schema_version": RESULTS_SCHEMA_VERSION,
            "units": "fraction",
            "protocol": proto.header(),
            "header": dict(extra_header or {}),
            "metrics": out,
        }
    )

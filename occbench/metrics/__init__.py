"""occbench metrics: exact, documented, streaming (see ``docs/metrics.md``).

- :class:`SSCMetric`: official SemanticKITTI / SSCBench SSC scores, range-stratified in one pass, mergeable.
- :class:`CityMapMetric`: city-level static-class map metric (OccFiner Appendix B).
- :class:`TemporalConsistency`: multi-view label agreement of static world voxels.
- :func:`results_json`: numbers + their full protocol.
"""
from occbench.metrics.citymap import CityMapMetric, TemporalConsistency
from occbench.metrics.protocol import PROTOCOLS, Protocol, get_protocol
from occbench.metrics.results import results_json
from occbench.metrics.ssc import SSCMetric, scores_from_confusion

__all__ = [
    "PROTOCOLS",
    "Protocol",
    "get_protocol",
    "SSCMetric",
    "scores_from_confusion",
    "CityMapMetric",
    "TemporalConsistency",
    "results_json",
]

"""occbench metrics: exact, documented, streaming (see ``docs/metrics.md``).

- :class:`Metric`: the base of every metric (declared integer states; merge, reset, ``state_dict`` follow); its one
  way in is ``update_frame(pred, frame)``, ``frame`` a :class:`FrameArrays` (arrays: metrics read no files).
- :class:`SSCMetric`: official SemanticKITTI / SSCBench SSC scores, range-stratified in one pass, mergeable.
- :class:`CityMapMetric`: city-level static-class map metric (OccFiner Appendix B).
- :class:`TemporalConsistency`: multi-view label agreement of static world voxels.
- one-shot forms of the three: :func:`ssc_scores`, :func:`city_map_scores`, :func:`temporal_consistency_scores`.
"""

from occbench.metrics.base import Metric
from occbench.metrics.citymap import CityMapMetric, TemporalConsistency, city_map_scores, temporal_consistency_scores
from occbench.metrics.frame import FrameArrays
from occbench.metrics.protocol import PROTOCOLS, EvalProtocol, get_protocol
from occbench.metrics.ssc import SSCMetric, scores_from_confusion, ssc_scores

__all__ = [
    "PROTOCOLS",
    "EvalProtocol",
    "get_protocol",
    "Metric",
    "FrameArrays",
    "SSCMetric",
    "ssc_scores",
    "scores_from_confusion",
    "CityMapMetric",
    "city_map_scores",
    "TemporalConsistency",
    "temporal_consistency_scores",
]

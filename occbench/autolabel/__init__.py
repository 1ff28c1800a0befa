"""The auto-labeling retraining protocol (OccFiner Appendix A / Table 6): see ``docs/autolabel.md``.

- :mod:`~occbench.autolabel.protocol`: ``autolabel-v1`` rules, :class:`ProtocolConfig` presets, :class:`SourceSpec`;
- :mod:`~occbench.autolabel.model`: the reference onboard model (:class:`StudentNet`) and its loss;
- :mod:`~occbench.autolabel.storage`: the ``.pl`` pseudo-label format (top-1 / top-2 + confidences);
- :mod:`~occbench.autolabel.sources`: pseudo-labels from any registered method (scores capability);
- :mod:`~occbench.autolabel.runner`: :func:`run_protocol` (resumable); :mod:`~occbench.autolabel.table`: markdown;
- :mod:`~occbench.autolabel.command`: the ``occbench autolabel`` click command.
"""
from occbench.autolabel.model import StudentConfig, StudentNet, soft_top2_loss
from occbench.autolabel.protocol import PRESETS, PROTOCOL_TAG, ProtocolConfig, SourceSpec, preset
from occbench.autolabel.runner import AutolabelData, run_one, run_protocol
from occbench.autolabel.storage import PseudoLabel, PseudoLabelStore

__all__ = ["PRESETS", "PROTOCOL_TAG", "AutolabelData", "ProtocolConfig", "PseudoLabel", "PseudoLabelStore", "SourceSpec",
           "StudentConfig", "StudentNet", "preset", "run_one", "run_protocol", "soft_top2_loss"]

"""The auto-labeling retraining protocol (OccFiner Appendix A / Table 6): see ``docs/autolabel.md``.

- :mod:`~occbench.autolabel.protocol`: ``autolabel-v1`` rules, :class:`ProtocolConfig` presets, :class:`SourceSpec`;
- :mod:`~occbench.autolabel.model`: the reference onboard model (:class:`StudentNet`) and its loss;
- :mod:`~occbench.autolabel.storage`: the ``.pl`` pseudo-label format (top-1 / top-2 + confidences);
- :mod:`~occbench.autolabel.sources`: pseudo-labels from any registered method (scores capability);
- :mod:`~occbench.autolabel.runner`: :func:`run_protocol` (resumable); :mod:`~occbench.autolabel.table`: markdown;
- the ``occbench autolabel`` command: :mod:`occbench.cli.autolabel`.

Names are imported on first use (the student network needs torch; ``occbench autolabel --help`` does not).
"""

from occbench._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(["StudentConfig", "StudentNet", "soft_top2_loss"], "occbench.autolabel.model"),
        **dict.fromkeys(
            ["PRESETS", "PROTOCOL_TAG", "ProtocolConfig", "SourceSpec", "preset"], "occbench.autolabel.protocol"
        ),
        **dict.fromkeys(["AutolabelData", "run_one", "run_protocol"], "occbench.autolabel.runner"),
        **dict.fromkeys(["PseudoLabel", "PseudoLabelStore"], "occbench.autolabel.storage"),
    },
)

__all__ = [
    "PRESETS",
    "PROTOCOL_TAG",
    "AutolabelData",
    "ProtocolConfig",
    "PseudoLabel",
    "PseudoLabelStore",
    "SourceSpec",
    "StudentConfig",
    "StudentNet",
    "preset",
    "run_one",
    "run_protocol",
    "soft_top2_loss",
]

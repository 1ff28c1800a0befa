"""OccFiner: stage 1 (multi-to-multi local propagation network: model, loss, training, inference) and the
``occfiner`` / ``occfiner-stage1`` methods (``method.py``; stage 2 = ``occbench_baselines.voting`` on stage-1 output),
the ``occbench occfiner-train`` command (``command.py``), checkpoint export (``export.py``) and the shipped
checkpoints (``checkpoints/<onboard>.pt``).

The training loop is ``occbench_baselines.occfiner.train.train`` (not re-exported here, so that the submodule
name ``occbench_baselines.occfiner.train`` is not shadowed by the function). Names are imported on first use, so
that the ``occbench occfiner-train`` command (``command.py``) loads without torch.
"""

from occbench._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(["SSCLoss", "lovasz_softmax_flat"], "occbench_baselines.occfiner.losses"),
        **dict.fromkeys(
            ["OccFinerConfig", "OccFinerNet", "relative_coordinates_torch"], "occbench_baselines.occfiner.model"
        ),
        **dict.fromkeys(["TrainConfig", "load_model", "run_training"], "occbench_baselines.occfiner.train"),
        "refine_sequence": "occbench_baselines.occfiner.infer",
    },
)

__all__ = [
    "OccFinerConfig",
    "OccFinerNet",
    "SSCLoss",
    "TrainConfig",
    "load_model",
    "lovasz_softmax_flat",
    "refine_sequence",
    "relative_coordinates_torch",
    "run_training",
]

"""OccFiner: stage 1 (multi-to-multi local propagation network: model, loss, training, inference) and the
``occfiner`` / ``occfiner-stage1`` methods (``method.py``; stage 2 = ``baselines.voting`` on stage-1 output),
the ``occbench train`` command (``command.py``), checkpoint export (``export.py``) and the shipped
checkpoints (``checkpoints/<onboard>.pt``).

The training loop is ``baselines.occfiner.train.train`` (not re-exported here, so that the submodule
name ``baselines.occfiner.train`` is not shadowed by the function).
"""
from baselines.occfiner.losses import SSCLoss, lovasz_softmax_flat
from baselines.occfiner.model import OccFinerConfig, OccFinerNet, relative_coordinates_torch
from baselines.occfiner.train import TrainConfig, load_model, run_training

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


def __getattr__(name: str):
    if name == "refine_sequence":
        from baselines.occfiner.infer import refine_sequence

        return refine_sequence
    raise AttributeError(name)

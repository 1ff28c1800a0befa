"""Dataset loaders: SemanticKITTI, SSCBench-KITTI360 and occbench-mini."""

from occbench.dataset_cards import dataset_cards
from occbench.datasets.base import SSCDataset
from occbench.datasets.frame import Frame, ScanSequence
from occbench.datasets.mini import OccbenchMini
from occbench.datasets.semantickitti import SemanticKITTI
from occbench.datasets.sscbench_kitti360 import SSCBenchKITTI360
from occbench.errors import UnknownNameError

# --dataset name -> loader class, from the dataset files (occbench/datasets/cards/*.json)
DATASETS = {name: card.load_loader() for name, card in dataset_cards().items()}


def open_dataset(name: str = "mini", root=None, split: str = "val", onboard=None, **kw) -> SSCDataset:
    """Open a dataset by name (``mini``, ``semantickitti``, ``sscbench-kitti360``)."""
    if name not in DATASETS:
        raise UnknownNameError("dataset", name, list(DATASETS))
    cls = DATASETS[name]
    if root is None and dataset_cards()[name].root_required:
        raise ValueError(f"--root is required for dataset {name!r} (where the downloaded data lives)")
    return cls(root, split=split, onboard=onboard, **kw)


__all__ = [
    "SSCDataset",
    "Frame",
    "ScanSequence",
    "SemanticKITTI",
    "SSCBenchKITTI360",
    "OccbenchMini",
    "open_dataset",
    "DATASETS",
]

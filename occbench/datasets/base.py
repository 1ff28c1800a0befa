"""Common base of the dataset classes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from occbench.datasets.frame import Frame, ScanSequence
from occbench.errors import MissingDataError
from occbench.io.formats import ForeignFormat, ForeignPredictionStore, open_prediction_store
from occbench.io.predictions import PredictionStore
from occbench.labels import LabelMap


def open_onboard_store(
    root: Path,
    predictions_root: str | Path | None,
    onboard: str | None,
    predictions_format: ForeignFormat | None = None,
    label_map: LabelMap | None = None,
) -> PredictionStore | ForeignPredictionStore | None:
    """The prediction store of ``onboard`` under ``predictions_root`` (default ``<root>/predictions``), or None.
    ``predictions_format`` reads another codebase's files (:mod:`occbench.io.formats`) instead of the submission
    layout."""
    if onboard is None:
        return None
    pred_root = Path(predictions_root) if predictions_root is not None else root / "predictions"
    model_dir = pred_root / onboard
    if not model_dir.is_dir():
        have = sorted(p.name for p in pred_root.iterdir() if p.is_dir()) if pred_root.is_dir() else []
        raise MissingDataError(
            model_dir,
            f"predictions of onboard model {onboard!r}",
            f"expected <predictions_root>/{onboard}/sequences/XX/predictions/NNNNNN.label; "
            f"models found under {pred_root}: {have or 'none'}",
        )
    if predictions_format is not None and label_map is not None:
        return open_prediction_store(model_dir, predictions_format, label_map)
    return PredictionStore(model_dir)


class SSCDataset:
    """A split of an SSC dataset: an ordered mapping of sequence name -> :class:`ScanSequence`.

    Attributes: ``root``, ``split``, ``onboard`` (the onboard model whose predictions are read),
    ``label_map``, ``protocol`` (the metric protocol id of :mod:`occbench.metrics`).
    """

    name: str = ""
    protocol: str = ""
    synthetic: bool = False

    def __init__(self, root: Path, split: str, onboard: str | None, label_map: LabelMap, sequences: list[ScanSequence]):
        self.root = root
        self.split = split
        self.onboard = onboard
        self.label_map = label_map
        self._sequences = {s.name: s for s in sequences}
        for s in sequences:  # what a method's messages may name (e.g. the command that trains for this dataset)
            s.dataset, s.dataset_root = self.name, Path(root)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, onboard={self.onboard!r}, "
            f"sequences={list(self._sequences)})"
        )

    @property
    def sequences(self) -> list[ScanSequence]:
        return list(self._sequences.values())

    @property
    def sequence_names(self) -> list[str]:
        return list(self._sequences)

    def __getitem__(self, name: str) -> ScanSequence:
        try:
            return self._sequences[name]
        except KeyError:
            raise KeyError(f"sequence {name!r} is not in split {self.split!r}; it has {self.sequence_names}") from None

    def __iter__(self) -> Iterator[ScanSequence]:
        return iter(self.sequences)

    def __len__(self) -> int:
        return len(self._sequences)

    def frames(self) -> Iterator[Frame]:
        """Every labelled frame of every sequence of the split, in order."""
        for s in self.sequences:
            yield from s.frames()

    def describe(self) -> dict:
        """Header facts for results files."""
        return {
            "dataset": self.name,
            "split": self.split,
            "onboard": self.onboard,
            "synthetic": self.synthetic,
            "sequences": self.sequence_names,
            "root": str(self.root),
        }

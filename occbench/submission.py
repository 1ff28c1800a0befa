"""Validation of a folder of predictions, like a benchmark server does before scoring.

Every problem is collected (not just the first): missing frames, files of the wrong size, ids that are
not raw ids of the label map (or that the official LUT maps to ignore, which makes the official
script crash), predictions for scans that have no ground truth, and stray files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from occbench.datasets import SSCDataset
from occbench.errors import FormatError
from occbench.io.predictions import PredictionStore, read_prediction_file


@dataclass
class ValidationReport:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self, limit: int = 50) -> str:
        if self.ok:
            return f"submission OK: {self.checked} prediction files checked"
        lines = [f"submission INVALID: {len(self.problems)} problem(s) in {self.checked} files checked"]
        lines += [f"  - {p}" for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more")
        return "\n".join(lines)


def validate_predictions(dataset: SSCDataset, store: PredictionStore, check_ids: bool = True) -> ValidationReport:
    """Check that ``store`` holds exactly one valid prediction per labelled scan of ``dataset``."""
    rep = ValidationReport()
    lm = dataset.label_map
    valid_raw = np.zeros(lm.lut.size, bool)
    valid_raw[[k for k, v in lm.learning_map.items() if lm.lut[k] != 255]] = True
    for seq in dataset.sequences:
        expected = set(seq.labelled_frames)
        present = set(store.frames(seq.name))
        if not store.folder(seq.name).is_dir():
            rep.problems.append(f"{store.folder(seq.name)}: folder missing (expected {len(expected)} predictions of sequence {seq.name})")
            continue
        for t in sorted(expected - present):
            rep.problems.append(f"{store.path(seq.name, t, False)}: missing (scan {t} of sequence {seq.name} has ground truth)")
        # a scan of the full release's every-5th pattern whose ground truth is absent from this tree (a partial
        # tree: the dataset warning says so) is not scored; its prediction is not a problem
        pattern = set(range(0, seq.num_scans, seq.label_every)) if seq.gt_voxel_dir is not None else set()
        for t in sorted(present - expected - pattern):
            rep.problems.append(f"{store.find(seq.name, t)}: a prediction for scan {t}, which has no ground truth in split {dataset.split}")
        for p in store.unexpected_files(seq.name):
            rep.problems.append(f"{p}: unexpected file (expected NNNNNN.label or NNNNNN.label.gz)")
        for t in sorted(expected & present):
            rep.checked += 1
            try:
                path = store.find(seq.name, t)
                assert path is not None
                raw = read_prediction_file(path)
            except FormatError as e:
                rep.problems.append(str(e))
                continue
            if check_ids:
                ids = np.unique(raw)
                bad = ids[(ids >= valid_raw.size) | ~valid_raw[np.minimum(ids, valid_raw.size - 1)]]
                if bad.size:
                    rep.problems.append(f"{path}: raw ids {bad[:10].tolist()} are not predictable {lm.name} classes "
                                        f"(expected raw ids of learning_map_inv, e.g. 0, 10, 40)")
    extra_seqs = sorted(set(store.sequences()) - set(dataset.sequence_names))
    for s in extra_seqs:
        rep.problems.append(f"{store.root / 'sequences' / s}: sequence {s} is not part of split {dataset.split}")
    return rep


def submission_store(path: str | Path) -> PredictionStore:
    """Accept either the model folder (holding ``sequences/``) or a folder that holds it one level down."""
    p = Path(path)
    return PredictionStore(p)

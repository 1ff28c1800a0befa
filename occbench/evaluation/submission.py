"""Validation of a folder of predictions, like a benchmark server does before scoring.

Every problem is collected (not just the first): missing frames, files of the wrong size, ids that are
not raw ids of the label map (or that the official LUT maps to ignore, which makes the official
script crash), predictions for scans that have no ground truth, and stray files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from occbench.datasets import SSCDataset
from occbench.errors import OccbenchError
from occbench.io.files import describe_mode
from occbench.io.predictions import FRAME_RE, PredictionStore, read_prediction_file
from occbench.io.voxels import LABEL_BYTES
from occbench.labels import LabelMap

if TYPE_CHECKING:
    from occbench.io.formats import ForeignPredictionStore


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
    """Check that ``store`` holds exactly one valid prediction per labelled scan of ``dataset``: the names, kinds
    and sizes (:func:`check_submission_names`), then every file's content (:func:`check_submission_contents`).
    ``occbench evaluate --predictions`` does the first, then checks the contents while it scores them."""
    rep, files = check_submission_names(dataset, store)
    return check_submission_contents(dataset, rep, files, check_ids, store)


def check_submission_names(
    dataset: SSCDataset, store: PredictionStore, targets: Mapping[str, Iterable[int]] | None = None
) -> tuple[ValidationReport, dict[tuple[str, int], Path]]:
    """Everything that needs no file's content: a folder per sequence, one file per labelled scan, no prediction
    for a scan without ground truth, no stray file or sequence, plain ``.label`` files of the right size.
    Returns the report and the files to read, ``(sequence, scan) -> path``, which passed these checks.
    ``targets`` (sequence -> scans, the frames a partial run scores: ``evaluate --frames`` or ``--max-frames``):
    only those labelled scans are expected, and files of other scans are neither required nor read (a sequence
    with none of them needs no folder).

    Every entry is looked at with ``lstat``: folders must be real folders and prediction files regular files
    physically inside the submission folder (no symbolic links, directories, FIFOs or devices); nothing is opened
    here, and a file is later opened only if it passed (then without following links), so nothing outside is read.
    """
    rep = ValidationReport()
    out: dict[tuple[str, int], Path] = {}
    root = Path(store.root)
    names = getattr(store, "name_pattern", FRAME_RE)  # foreign formats have their own file names
    expected_names = getattr(store, "expected_names", "NNNNNN.label or NNNNNN.label.gz")
    submission_files = isinstance(store, PredictionStore)
    for seq in dataset.sequences:
        chosen = None if targets is None else set(int(t) for t in targets.get(seq.name, ()))
        expected = set(seq.labelled_frames) if chosen is None else set(seq.labelled_frames) & chosen
        if chosen is not None and not expected:
            continue
        folder = store.folder(seq.name)
        bad_dir = _folder_problem(root, folder)
        if bad_dir:
            rep.problems.append(f"{bad_dir} (expected {len(expected)} predictions of sequence {seq.name})")
            continue
        files: dict[int, list[tuple[Path, os.stat_result]]] = {}
        present: dict[int, Path] = {}
        for name, st in _entries(folder):
            p = folder / name
            m = names.match(name)
            if not m:
                kind = "" if stat.S_ISREG(st.st_mode) else f" ({describe_mode(st.st_mode)})"
                rep.problems.append(f"{p}: unexpected file{kind} (expected {expected_names})")
                continue
            t = int(m.group(1))
            present.setdefault(t, p)
            if not stat.S_ISREG(st.st_mode):
                rep.problems.append(
                    f"{p}: {describe_mode(st.st_mode)} (expected a regular file inside the submission folder)"
                )
                continue
            files.setdefault(t, []).append((p, st))
        for t in sorted(expected - set(present)):
            rep.problems.append(
                f"{store.path(seq.name, t, False)}: missing (scan {t} of sequence {seq.name} has ground truth)"
            )
        # a scan of the full release's every-5th pattern whose ground truth is absent from this tree (a partial
        # tree: the dataset warning says so) is not scored; its prediction is not a problem
        pattern = set(range(0, seq.num_scans, seq.label_every)) if seq.has_ground_truth else set()
        looked_at = set(present) if chosen is None else set(present) & chosen
        for t in sorted(looked_at - expected - pattern):
            rep.problems.append(
                f"{present[t]}: a prediction for scan {t}, which has no ground truth in split {dataset.split}"
            )
        for t in sorted(expected & set(files)):
            if len(files[t]) > 1:
                a, b = sorted(p.name for p, _ in files[t])
                rep.problems.append(f"{folder / b}: one file per frame (expected {a} or {b}, found both)")
                continue
            path, st = files[t][0]
            rep.checked += 1
            if submission_files and not path.name.endswith(".gz") and st.st_size != LABEL_BYTES:
                rep.problems.append(
                    f"{path}: expected {LABEL_BYTES:,} bytes (2,097,152 uint16 raw ids), found {st.st_size:,} bytes"
                )
                continue
            out[(seq.name, t)] = path
    extra_seqs = sorted(set(store.sequences()) - set(dataset.sequence_names))
    for s in extra_seqs:
        rep.problems.append(f"{store.folder(s)}: sequence {s} is not part of split {dataset.split}")
    return rep, out


def check_submission_contents(
    dataset: SSCDataset,
    rep: ValidationReport,
    files: dict[tuple[str, int], Path],
    check_ids: bool = True,
    store: PredictionStore | ForeignPredictionStore | None = None,
) -> ValidationReport:
    """Read each file once (:func:`check_submission_names` passed it): a ``.label.gz`` must inflate to a
    ``.label``; every raw id must be a predictable class. A file of the submission format is opened without
    following links; a foreign format (``store`` not a :class:`PredictionStore`) through its store's reader.
    Problems are added to ``rep``."""
    foreign = None if isinstance(store, PredictionStore) else store
    for (seq, t), path in sorted(files.items()):
        try:
            raw = foreign.read(seq, t) if foreign is not None else read_prediction_file(path, follow_links=False)
        except OccbenchError as e:
            rep.problems.append(str(e))
            continue
        if check_ids:
            problem = prediction_id_problem(raw, path, dataset.label_map)
            if problem:
                rep.problems.append(problem)
    return rep


class InvalidSubmission(OccbenchError):
    """A submission with problems found while it was scored (its scores are not reported)."""

    def __init__(self, report: ValidationReport):
        super().__init__(report.summary())
        self.report = report


def _prediction_lut(lm: LabelMap) -> np.ndarray:
    """raw id -> train id over all 65,536 uint16 values; 255 where the id is not a predictable class."""
    lut = np.full(1 << 16, 255, np.uint8)
    lut[: lm.lut.size] = lm.lut
    return lut


def prediction_id_problem(raw: np.ndarray, path: str | Path | None, lm: LabelMap) -> str | None:
    """The problem of a prediction holding raw ids that are not predictable classes of ``lm`` at any voxel (the
    official LUT maps them to ignore or does not know them: the official script crashes on them), or None. One
    compiled pass over the non-zero words; the ids are listed only when there are some."""
    from occbench.metrics import _kernel

    flat = _kernel.readonly(np.ascontiguousarray(raw, dtype=np.uint16).reshape(-1))
    lut = _prediction_lut(lm)
    if not _kernel.count_unmapped(flat, _kernel.words(flat), lut, lm.num_classes):
        return None
    ids = np.unique(flat)
    bad = ids[lut[ids] >= lm.num_classes]
    return (
        f"{path}: raw ids {bad[:10].tolist()} are not predictable {lm.name} classes "
        f"(expected raw ids of learning_map_inv, e.g. 0, 10, 40)"
    )


def _folder_problem(root: Path, folder: Path) -> str | None:
    """None if every component of ``folder`` below ``root`` is a real folder (no link), else the problem."""
    cur = root
    for part in folder.relative_to(root).parts:
        cur = cur / part
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            return f"{cur}: folder missing"
        except OSError as e:
            return f"{cur}: cannot be read ({e.strerror or e})"
        if not stat.S_ISDIR(st.st_mode):
            return f"{cur}: {describe_mode(st.st_mode)}, expected a folder inside the submission folder"
    return None


def _entries(folder: Path) -> list[tuple[str, os.stat_result]]:
    """(name, lstat) of every entry of ``folder``, sorted by name; nothing is followed or opened."""
    out = []
    with os.scandir(folder) as it:
        for e in it:
            try:
                out.append((e.name, e.stat(follow_symlinks=False)))
            except FileNotFoundError:  # removed while listing
                continue
    return sorted(out, key=lambda x: x[0])


def submission_store(path: str | Path) -> PredictionStore:
    """Accept either the model folder (holding ``sequences/``) or a folder that holds it one level down."""
    p = Path(path)
    return PredictionStore(p)

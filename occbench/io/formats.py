"""Onboard predictions in the formats the public onboard codebases write, read as submission-layout raw ids.

Formats (``occbench convert --from``, ``occbench evaluate --format``):

- ``monoscene-pkl``: MonoScene ``monoscene/scripts/generate_output.py`` and SSCBench's copy
  (``generate_output_kitti_360.py``) write ``<out>/<kitti|kitti_360>/<seq>/<frame>.pkl``, a pickled dict with
  ``y_pred`` (uint16 train ids, (256, 256, 32)) plus ``target``, ``fov_mask_1``, ``cam_k``, ``T_velo_2_cam``.
  Other keys with ``ForeignFormat(key=...)``: OccFormer ``--pred-save`` (``output_voxel``, flat uint8, in
  ``sequences/<seq>/predictions/``), Symphonies (``pred``).
- ``label``: ``sequences/<seq>/predictions/<frame>.label`` uint16; raw ids (VoxFormer ``save_pred``, OccFormer and
  CGFormer with ``test_mapping``: the submission format) or train ids (CGFormer without ``test_mapping``).
- ``npy``: arrays saved with ``np.save`` (train ids by default), read with ``allow_pickle=False``.

Grids are ``[x, y, z]`` C-order, the order of the ``.label`` files the models were trained on (MonoScene reshapes
the flat ``.label`` to (256, 256, 32); no flip or transpose anywhere). A leading batch axis of 1 and the flat
2,097,152-voxel form are accepted. Train ids are those of the dataset's label map (20 classes SemanticKITTI,
19 SSCBench-KITTI360) and are turned into raw ids with its ``learning_map_inv``.

Three layouts are recognised under a folder ``SRC``: ``SRC/sequences/<seq>/predictions/<frame><ext>`` (submission
layout), ``SRC/<seq>/<frame><ext>`` (MonoScene), and MonoScene's ``output_path`` itself, whose ``kitti`` or
``kitti_360`` folder then holds the sequences. Frame names are 6 to 10 digits (KITTI-360 images are numbered
with 10); SSCBench-KITTI360 takes only 6 (SSCBench renumbers KITTI-360's frames, so a 10-digit KITTI-360 number
names another frame).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occbench.errors import FormatError, MissingDataError
from occbench.grid import KITTI
from occbench.io.files import read_regular_file
from occbench.io.voxels import NUM_VOXELS, read_label
from occbench.labels import IGNORE, LabelMap, load_label_map

KINDS = ("label", "monoscene-pkl", "npy")
SUFFIX = {"label": ".label", "monoscene-pkl": ".pkl", "npy": ".npy"}
DEFAULT_IDS = {"label": "raw", "monoscene-pkl": "train", "npy": "train"}
# MonoScene generate_output.py writes under <output_path>/<config.dataset>/
MONOSCENE_FOLDER = {"semantickitti": "kitti", "kitti360": "kitti_360"}
MAX_ARRAY_FILE_BYTES = 256 * 1024 * 1024
ACCEPTED_SHAPES = (KITTI.shape, (1, *KITTI.shape), (NUM_VOXELS,))


@dataclass(frozen=True)
class ForeignFormat:
    """How a folder of predictions is written: ``kind`` (``label``, ``monoscene-pkl``, ``npy``), the id space of the
    arrays (``train`` or ``raw``) and, for pickles, the key of the dict that holds the grid."""

    kind: str = "label"
    ids: str = ""
    key: str = "y_pred"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown prediction format {self.kind!r}; available: {', '.join(KINDS)}")
        if not self.ids:
            object.__setattr__(self, "ids", DEFAULT_IDS[self.kind])
        if self.ids not in ("train", "raw"):
            raise ValueError(f"ids must be 'train' or 'raw', not {self.ids!r}")

    @property
    def suffix(self) -> str:
        return SUFFIX[self.kind]

    @property
    def is_submission(self) -> bool:
        """Raw-id ``.label`` files: the official submission format, read by :class:`PredictionStore` as they are."""
        return self.kind == "label" and self.ids == "raw"

    def describe(self) -> str:
        key = f", key {self.key!r}" if self.kind == "monoscene-pkl" else ""
        return f"{self.kind} ({self.ids} ids{key})"


def _grid(arr: object, path: Path, what: str) -> np.ndarray:
    """``arr`` as a (256, 256, 32) integer array, or FormatError naming what is wrong."""
    if not isinstance(arr, np.ndarray):
        raise FormatError(path, f"{what} as a numpy array", f"a {type(arr).__name__}")
    if arr.dtype.kind not in "ui":
        raise FormatError(path, f"{what} as integer class ids", f"dtype {arr.dtype}")
    if arr.shape not in ACCEPTED_SHAPES:
        raise FormatError(
            path, f"{what} of shape (256, 256, 32) (or (1, 256, 256, 32) or flat {NUM_VOXELS:,})", f"shape {arr.shape}"
        )
    return np.ascontiguousarray(arr).reshape(KITTI.shape)


def _bad_ids(arr: np.ndarray, ok: np.ndarray) -> list[int]:
    """Values of ``arr`` outside ``ok`` (a bool mask over 0..len-1), sorted; cheap when there are none."""
    if arr.size and int(arr.min()) >= 0 and int(arr.max()) < ok.size and (ok.all() or ok[arr].all()):
        return []
    ids = np.unique(arr)
    return ids[(ids < 0) | (ids >= ok.size) | ~ok[np.clip(ids, 0, ok.size - 1)]].tolist()


def to_submission_ids(arr: np.ndarray, fmt: ForeignFormat, lm: LabelMap, path: Path) -> np.ndarray:
    """Validate a (256, 256, 32) integer grid in ``fmt.ids`` space and return it as raw ids (uint16)."""
    if fmt.ids == "train":
        bad = _bad_ids(arr, np.ones(lm.num_classes, bool))
        if bad:
            raise FormatError(path, f"{lm.name} train ids 0..{lm.num_classes - 1}", f"ids {bad[:10]}")
        return lm.inv_lut[arr]
    bad = _bad_ids(arr, lm.predictable_raw)
    if bad:
        raise FormatError(path, f"raw ids of {lm.name} classes (learning_map_inv, e.g. 0, 10, 40)", f"ids {bad[:10]}")
    return arr.astype(np.uint16, copy=False)


def load_npy_bytes(data: bytes, path: str | Path) -> np.ndarray:
    """The array of a ``.npy`` file's bytes, without pickled objects, and only if the data the header announces is
    there: ``np.load`` allocates the header's shape before reading, so a few bytes could ask for any size."""
    import io

    from numpy.lib import format as npy

    f = io.BytesIO(data)
    try:
        version = npy.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"npy format version {version}")
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if dtype.hasobject:
            raise ValueError("an array of pickled objects")
        n = dtype.itemsize
        for k in shape:
            n *= int(k)
        if n != len(data) - f.tell():
            raise ValueError(f"shape {shape} of {dtype} ({n:,} bytes) with {len(data) - f.tell():,} bytes of data")
        arr = np.frombuffer(data, dtype=dtype, count=n // dtype.itemsize if dtype.itemsize else 0, offset=f.tell())
        return arr.reshape(shape, order="F" if fortran else "C")
    except (ValueError, TypeError, SyntaxError, OverflowError) as e:
        raise FormatError(path, "a .npy array without pickled objects", str(e)) from None


def read_foreign_grid(path: Path, fmt: ForeignFormat) -> np.ndarray:
    """The (256, 256, 32) integer grid of one file, ids as stored (not yet checked)."""
    if fmt.kind == "label":
        return read_label(path)
    if fmt.kind == "npy":
        data = read_regular_file(path, MAX_ARRAY_FILE_BYTES, "numpy .npy file")
        return _grid(load_npy_bytes(data, path), path, "a prediction")
    from occbench.io.safe_pickle import load_pickle

    obj = load_pickle(path)
    if not isinstance(obj, dict):
        raise FormatError(path, f"a pickled dict with key {fmt.key!r}", f"a {type(obj).__name__}")
    if fmt.key not in obj:
        raise FormatError(path, f"a pickled dict with key {fmt.key!r}", f"keys {sorted(map(str, obj))}")
    return _grid(obj[fmt.key], path, f"{fmt.key!r}")


class ForeignPredictionStore:
    """Predictions of one model in a :class:`ForeignFormat`, with the interface of
    :class:`occbench.io.predictions.PredictionStore`: ``read`` returns raw ids (validated), so loaders, validation
    and scoring use it unchanged. ``root`` may be any of the three layouts (module docstring)."""

    raw_label_files = False  # files are not raw-id .label files: read them through read(), never directly

    def __init__(self, root: str | Path, fmt: ForeignFormat, label_map: LabelMap | str):
        self.root = Path(root)
        self.format = fmt
        self.label_map = load_label_map(label_map) if isinstance(label_map, str) else label_map
        # SSCBench-KITTI360 frames are SSCBench's 6-digit numbers; a 10-digit name is a KITTI-360 frame number, which
        # is another frame (SSCBench renumbers KITTI-360's frames): refused, never read as an SSCBench frame
        self._max_digits = 6 if self.label_map.name == "kitti360" else 10
        self._re = re.compile(r"^(\d{6," + str(self._max_digits) + r"})" + re.escape(fmt.suffix) + "$")
        base = self.root
        if not (base / "sequences").is_dir():
            sub = base / MONOSCENE_FOLDER.get(self.label_map.name, "")
            if sub != base and sub.is_dir():
                base = sub
        self.base = base
        self.submission_layout = (base / "sequences").is_dir()
        self.expected_names = f"NNNNNN{fmt.suffix}" + (
            " with 6-digit SSCBench frame numbers; 10-digit KITTI-360 frame numbers name other frames"
            if self._max_digits == 6
            else ""
        )
        self.name_pattern = self._re  # file names of frames (validation looks at entries by name before opening any)

    def __repr__(self) -> str:
        return f"ForeignPredictionStore({str(self.root)!r}, {self.format.describe()})"

    def folder(self, sequence: str) -> Path:
        return self.base / "sequences" / sequence / "predictions" if self.submission_layout else self.base / sequence

    def sequences(self) -> list[str]:
        d = self.base / "sequences" if self.submission_layout else self.base
        return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []

    def _files(self, sequence: str) -> dict[int, list[Path]]:
        d = self.folder(sequence)
        out: dict[int, list[Path]] = {}
        if d.is_dir():
            for p in d.iterdir():
                m = self._re.match(p.name)
                if m:
                    out.setdefault(int(m.group(1)), []).append(p)
        return out

    def frames(self, sequence: str) -> list[int]:
        return sorted(self._files(sequence))

    def unexpected_files(self, sequence: str) -> list[Path]:
        d = self.folder(sequence)
        return sorted(p for p in d.iterdir() if not self._re.match(p.name)) if d.is_dir() else []

    def path(self, sequence: str, frame: int, compressed: bool | None = None) -> Path:
        return self.folder(sequence) / f"{int(frame):06d}{self.format.suffix}"

    def find(self, sequence: str, frame: int) -> Path | None:
        """The file of a frame, or None. Two files for one frame (``000005.pkl`` and ``0000000005.pkl``) is an error."""
        name = f"{int(frame):06d}"
        cands = [
            p
            for p in (self.folder(sequence) / f"{'0' * k}{name}{self.format.suffix}" for k in range(5))
            if len(p.name) - len(self.format.suffix) <= self._max_digits and p.is_file()
        ]
        if len(cands) > 1:
            raise FormatError(cands[0], f"one file per frame, not {', '.join(p.name for p in cands)}", "several")
        return cands[0] if cands else None

    def exists(self, sequence: str, frame: int) -> bool:
        return self.find(sequence, frame) is not None

    def read(self, sequence: str, frame: int) -> np.ndarray:
        """Raw ids (uint16, (256, 256, 32)) of a frame, validated (FormatError names the file and the problem)."""
        p = self.find(sequence, frame)
        if p is None:
            raise MissingDataError(
                self.path(sequence, frame), f"prediction of sequence {sequence} frame {int(frame):06d}"
            )
        return to_submission_ids(read_foreign_grid(p, self.format), self.format, self.label_map, p)

    def iter_files(self) -> Iterator[tuple[str, int, Path]]:
        for s in self.sequences():
            for f, paths in sorted(self._files(s).items()):
                yield s, f, paths[0]


def open_prediction_store(root: str | Path, fmt: ForeignFormat | None, label_map: LabelMap):
    """The store of a folder of predictions: :class:`PredictionStore` for the submission format, else foreign."""
    from occbench.io.predictions import PredictionStore

    if fmt is None or fmt.is_submission:
        return PredictionStore(root)
    return ForeignPredictionStore(root, fmt, label_map)


@dataclass
class ConversionReport:
    written: int = 0
    skipped: int = 0
    problems: list[str] | None = None

    def summary(self, dst: Path, limit: int = 50) -> str:
        probs = self.problems or []
        head = f"{self.written} files written to {dst} ({self.skipped} already present)"
        if not probs:
            return head
        lines = [head, f"{len(probs)} problem(s):"] + [f"  - {p}" for p in probs[:limit]]
        if len(probs) > limit:
            lines.append(f"  ... and {len(probs) - limit} more")
        return "\n".join(lines)


def convert_foreign(
    src: str | Path, dst: str | Path, fmt: ForeignFormat, dataset: str, compressed: bool, progress: bool = False
) -> ConversionReport:
    """Write every valid prediction under ``src`` (format ``fmt``) to ``dst`` in the submission layout (raw ids,
    ``.label`` or ``.label.gz``), and list every problem: unknown sequence folders, stray files, two files for one
    frame, unreadable or refused files, wrong shapes, dtypes or ids. Frames already in ``dst`` are skipped."""
    from occbench.io.predictions import PredictionStore
    from occbench.runtime.progress import progress_bar

    lm_name, known = _dataset_facts(dataset)
    store = ForeignPredictionStore(src, fmt, lm_name)
    out = PredictionStore(dst, compressed=compressed)
    rep = ConversionReport(problems=[])
    probs = rep.problems
    assert probs is not None
    seqs = store.sequences()
    if not seqs:
        raise MissingDataError(
            store.base,
            f"{fmt.describe()} predictions",
            f"expected {store.base}/<sequence>/{store.expected_names} or "
            f"{store.base}/sequences/<sequence>/predictions/{store.expected_names}",
        )
    items = []
    for s in seqs:
        if s not in known:
            probs.append(
                f"{store.folder(s)}: {s!r} is not a {dataset} sequence (expected one of {', '.join(sorted(known))})"
            )
            continue
        probs += [f"{p}: unexpected file (expected {store.expected_names})" for p in store.unexpected_files(s)]
        for f, paths in sorted(store._files(s).items()):
            if len(paths) > 1:
                probs.append(
                    f"{paths[0].parent}: several files for frame {f}: {', '.join(sorted(p.name for p in paths))}"
                )
            else:
                items.append((s, f, paths[0]))
    for s, f, p in progress_bar(items, desc="convert", disable=not progress):
        if out.path(s, f).is_file():
            rep.skipped += 1
            continue
        try:
            raw = to_submission_ids(read_foreign_grid(p, fmt), fmt, store.label_map, p)
        except (FormatError, MissingDataError) as e:
            probs.append(str(e))
            continue
        out.write(s, f, raw)
        rep.written += 1
    return rep


def _dataset_facts(dataset: str) -> tuple[str, set[str]]:
    """Label map name and every sequence name of a real dataset."""
    from occbench.dataset_cards import dataset_cards, dataset_names

    real = dataset_names(synthetic=False)
    if dataset not in real:
        raise ValueError(f"unknown dataset {dataset!r}; available: {', '.join(real)}")
    card = dataset_cards()[dataset]
    return card.label_map, {s for seqs in card.split_lists().values() for s in seqs}


def read_sscbench_label_npy(path: str | Path, lm: LabelMap) -> np.ndarray:
    """SSCBench ``preprocess/labels/<drive>/NNNNNN_1_1.npy``: float32 train ids, 255 unknown (its ``preprocess.py``:
    ``remap_lut[LABEL]``, ``INVALID[nonzero(LABEL)] = 0``, ``LABEL[INVALID == 1] = 255``, reshape (256, 256, 32)).
    Returned as uint8 train ids with 255 = ignore, exactly what :meth:`Frame.ground_truth` gives for the ``.label`` +
    ``.invalid`` pair."""
    path = Path(path)
    data = read_regular_file(path, MAX_ARRAY_FILE_BYTES, "SSCBench label .npy")
    arr = load_npy_bytes(data, path)
    if arr.shape != KITTI.shape:
        raise FormatError(path, "an SSCBench label grid of shape (256, 256, 32)", f"shape {arr.shape}")
    if arr.dtype.kind not in "uif":
        raise FormatError(path, "numeric train ids (SSCBench writes float32)", f"dtype {arr.dtype}")
    vals = np.unique(arr)
    ok = np.isin(vals, np.r_[np.arange(lm.num_classes), IGNORE])
    if not ok.all():
        raise FormatError(
            path, f"{lm.name} train ids 0..{lm.num_classes - 1} or 255 (unknown)", f"values {vals[~ok][:10].tolist()}"
        )
    return arr.astype(np.uint8)

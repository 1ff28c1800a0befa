"""Dataset files: one JSON file per dataset (``occbench/datasets/cards/<name>.json``) holding what occbench knows
about it besides its loader: the names it goes by, its leaderboard title, its evaluation protocol, its splits.

Everything that lists datasets derives from these files: ``occbench.datasets.DATASETS`` and ``open_dataset``, the
``--dataset`` choices of the command line, ``occbench.metrics.PROTOCOLS``, the dataset allowlist of results files
(``occbench.results.DATASETS``) and the leaderboard titles. The format is described in
``docs/datasets.md`` (section "Dataset files").

More folders of dataset files can be named in ``$OCCBENCH_DATASET_PATH`` (folders separated by ``os.pathsep``, read
after the shipped ones, once per process).

This module is read by the command line at start-up: it imports nothing but the standard library and
:mod:`occbench.errors` (no numpy, no loader).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import import_module
from pathlib import Path
from types import MappingProxyType
from typing import Any

from occbench.errors import FormatError, MissingDataError, OccbenchError, UnknownNameError

FORMAT = "occbench.dataset"
FORMAT_VERSIONS = (1,)
PATH_ENV = "OCCBENCH_DATASET_PATH"
SPLIT_NAMES = ("train", "val", "test")  # the splits a results file may name (occbench.results.SPLITS)
COMPLETION_RULES = ("semantic-kitti-api", "sscmetrics")
INVALID_POLICIES = ("mask-all", "mask-empty-only")

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # a --dataset choice and the file's name
RESULTS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")  # occbench.results.SAFE_NAME
LOADER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
MAX_CARD_BYTES = 1 << 20
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")

# key -> (what it must be, check)
_KEYS: dict[str, tuple[str, Any]] = {
    "format": (f"'{FORMAT}'", lambda v: v == FORMAT),
    "format_version": (" or ".join(map(str, FORMAT_VERSIONS)), lambda v: type(v) is int and v in FORMAT_VERSIONS),
    "name": (
        "a name of lowercase letters, digits and . _ - (the file's name without .json)",
        lambda v: isinstance(v, str) and NAME.fullmatch(v) is not None,
    ),
    "results_name": (
        "a name of letters, digits and . _ + - (at most 64)",
        lambda v: isinstance(v, str) and RESULTS_NAME.fullmatch(v) is not None,
    ),
    "title": ("a one-line text", lambda v: isinstance(v, str) and 0 < len(v) <= 200 and not _CONTROL.search(v)),
    "synthetic": ("true or false", lambda v: isinstance(v, bool)),
    "root_required": ("true or false", lambda v: isinstance(v, bool)),
    "loader": ("'package.module:Class'", lambda v: isinstance(v, str) and LOADER.fullmatch(v) is not None),
    "protocol": ("a protocol id (a text) or a protocol definition (an object)", lambda v: isinstance(v, (str, dict))),
    "splits": ("null or an object: split name -> list of sequence names", lambda v: v is None or isinstance(v, dict)),
    "leaderboard_splits": ("a list of split names", lambda v: isinstance(v, list)),
    "trainable": ("true or false", lambda v: isinstance(v, bool)),
    "default_onboard": (
        "null or the name of an onboard model",
        lambda v: v is None or (isinstance(v, str) and NAME.fullmatch(v) is not None),
    ),
}
_PROTOCOL_KEYS: dict[str, tuple[str, Any]] = {
    "id": ("a protocol id", lambda v: isinstance(v, str) and NAME.fullmatch(v) is not None),
    "version": ("a version text", lambda v: isinstance(v, str) and v != "" and not _CONTROL.search(v)),
    "label_map": (
        "the name of a label map of occbench/labels",
        lambda v: isinstance(v, str) and NAME.fullmatch(v) is not None,
    ),
    "iou_epsilon": ("a finite number >= 0", lambda v: type(v) in (int, float) and 0 <= v < float("inf")),
    "completion_rule": (" or ".join(COMPLETION_RULES), lambda v: v in COMPLETION_RULES),
    "invalid_policy": (" or ".join(INVALID_POLICIES), lambda v: v in INVALID_POLICIES),
    "reference": ("a text", lambda v: isinstance(v, str) and not _CONTROL.search(v)),
}


@dataclass(frozen=True)
class DatasetCard:
    """One dataset file, validated.

    Attributes:
        name: the ``--dataset`` name (``mini``); the file is ``<name>.json``.
        results_name: the name results files and leaderboard pages use (``occbench-mini``).
        title: the leaderboard title.
        synthetic: generated data (its numbers are never real-data numbers).
        root_required: ``open_dataset`` needs ``root`` (data downloaded by hand).
        loader: ``"module:Class"`` of the loader (a subclass of ``occbench.datasets.SSCDataset``).
        protocol_id: the evaluation protocol's id.
        protocol_definition: the keyword arguments of the protocol when this file defines it (else None).
        label_map: the protocol's label map.
        splits: split name -> sequence names, or None when the data names its own (occbench-mini).
        leaderboard_splits: splits whose leaderboard page exists before any result.
        trainable: offered by ``occbench autolabel`` (``occbench occfiner-train`` trains on every dataset).
        default_onboard: the onboard model whose predictions are used when none is named (None: one must be).
        path: the file.
    """

    name: str
    results_name: str
    title: str
    synthetic: bool
    root_required: bool
    loader: str
    protocol_id: str
    protocol_definition: Mapping[str, Any] | None
    label_map: str
    splits: Mapping[str, tuple[str, ...]] | None
    leaderboard_splits: tuple[str, ...]
    trainable: bool
    default_onboard: str | None
    path: str

    def split_lists(self) -> dict[str, list[str]]:
        """The splits as a new ``{split: [sequence, ...]}`` dict (empty when the data names its own)."""
        return {k: list(v) for k, v in (self.splits or {}).items()}

    def load_loader(self) -> type:
        """Import the loader class."""
        module, _, attr = self.loader.partition(":")
        try:
            cls = getattr(import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise OccbenchError(f"{self.path}: the loader {self.loader!r} cannot be imported: {e}") from e
        if not isinstance(cls, type):
            raise OccbenchError(f"{self.path}: the loader {self.loader!r} is not a class")
        return cls


def shipped_folder() -> Path:
    """The folder of the dataset files shipped with occbench (``occbench/datasets/cards``), found next to this module
    like the label maps (:func:`label_map_folder`); reading it imports no loader."""
    return Path(__file__).resolve().parent / "datasets" / "cards"


def label_map_folder() -> Path:
    """The folder of the label maps shipped with occbench (``occbench/labels``), next to this module. Never found
    through ``importlib.resources.files("occbench")``: a folder named ``occbench`` in the current folder can make
    ``occbench`` a namespace package under an editable install (whose resources are a ``MultiplexedPath``)."""
    return Path(__file__).resolve().parent / "labels"


def folders(problems: list[str] | None = None) -> list[Path]:
    """The folders read, in order: the shipped one, then those of ``$OCCBENCH_DATASET_PATH``. A name there that is
    not a folder is an error, or with ``problems`` a problem listed there (and the name left out)."""
    extra = [Path(p).expanduser() for p in os.environ.get(PATH_ENV, "").split(os.pathsep) if p]
    for p in list(extra):
        if not p.is_dir():
            e = MissingDataError(p, f"folder of dataset files (named in ${PATH_ENV})")
            if problems is None:
                raise e
            problems.append(str(e))
            extra.remove(p)
    return [shipped_folder()] + extra


def _check(doc: dict, keys: dict[str, tuple[str, Any]], path: Path, where: str) -> None:
    missing = [k for k in keys if k not in doc]
    unknown = sorted(k for k in doc if k not in keys)
    if missing or unknown:
        raise FormatError(
            path,
            f"{where}with the keys {', '.join(keys)}",
            ", ".join(
                ([f"no {', '.join(missing)}"] if missing else [])
                + ([f"unknown {', '.join(unknown)}"] if unknown else [])
            ),
        )
    for k, (what, ok) in keys.items():
        if not ok(doc[k]):
            raise FormatError(path, f"{where}'{k}': {what}", f"{json.dumps(doc[k])[:80]}")


def read_card(path: str | Path) -> tuple[dict[str, Any], DatasetCard]:
    """Read and check one dataset file (a protocol it names by id is not looked up here: see :func:`dataset_cards`).
    Returns the parsed document and the card."""
    from occbench.regular_files import read_json_document

    path = Path(path)
    doc = read_json_document(path, "a JSON dataset file", MAX_CARD_BYTES)
    if not isinstance(doc, dict):
        raise FormatError(path, "a JSON object (a dataset file)", f"a JSON {type(doc).__name__}")
    _check(doc, _KEYS, path, "")
    if doc["name"] != path.stem:
        raise FormatError(path, f"'name' equal to the file's name ({path.stem!r})", repr(doc["name"]))
    proto = doc["protocol"]
    definition = None
    if isinstance(proto, dict):
        _check(proto, _PROTOCOL_KEYS, path, "'protocol' ")
        if not (label_map_folder() / f"{proto['label_map']}.json").is_file():
            raise FormatError(
                path, "'protocol' 'label_map': the name of a label map of occbench/labels", repr(proto["label_map"])
            )
        definition = MappingProxyType({**proto, "iou_epsilon": float(proto["iou_epsilon"])})
        pid = proto["id"]
    elif NAME.fullmatch(proto):
        pid = proto
    else:
        raise FormatError(path, "'protocol': a protocol id", repr(proto))
    splits = doc["splits"]
    if splits is not None:
        for k, v in splits.items():
            if k not in SPLIT_NAMES:
                raise FormatError(path, f"'splits': splits named {', '.join(SPLIT_NAMES)}", repr(k))
            if not (
                isinstance(v, list)
                and all(isinstance(s, str) and s and not _CONTROL.search(s) for s in v)
                and len(set(v)) == len(v)
            ):
                raise FormatError(path, f"'splits' '{k}': a list of distinct sequence names", json.dumps(v)[:80])
        splits = MappingProxyType({k: tuple(v) for k, v in splits.items()})
    board = doc["leaderboard_splits"]
    for s in board:
        if s not in (splits if splits is not None else SPLIT_NAMES):
            raise FormatError(path, "'leaderboard_splits': names of its splits", repr(s))
    card = DatasetCard(
        name=doc["name"],
        results_name=doc["results_name"],
        title=doc["title"],
        synthetic=doc["synthetic"],
        root_required=doc["root_required"],
        loader=doc["loader"],
        protocol_id=pid,
        protocol_definition=definition,
        label_map=proto["label_map"] if definition is not None else "",
        splits=splits,
        leaderboard_splits=tuple(board),
        trainable=doc["trainable"],
        default_onboard=doc["default_onboard"],
        path=str(path),
    )
    return doc, card


@lru_cache(maxsize=None)
def _read_all() -> tuple[Mapping[str, DatasetCard], tuple[str, ...]]:
    """(the cards, the problems of the files of ``$OCCBENCH_DATASET_PATH`` that were left out)."""
    cards: dict[str, DatasetCard] = {}
    defined: dict[str, DatasetCard] = {}
    problems: list[str] = []
    shipped = shipped_folder()
    for folder in folders(problems):
        for p in sorted(folder.glob("*.json")):
            try:
                _, c = read_card(p)
                if c.name in cards:
                    raise FormatError(
                        p, "a dataset name not used by another dataset file", f"{c.name!r}, as in {cards[c.name].path}"
                    )
                same = [o for o in cards.values() if o.results_name == c.results_name]
                if same:
                    raise FormatError(
                        p,
                        "a 'results_name' not used by another dataset file",
                        f"{c.results_name!r}, as in {same[0].path}",
                    )
                if c.protocol_definition is not None:
                    if c.protocol_id in defined:
                        raise FormatError(
                            p,
                            "a protocol id defined by one dataset file only",
                            f"{c.protocol_id!r}, also defined in {defined[c.protocol_id].path}",
                        )
                    defined[c.protocol_id] = c
            except OccbenchError as e:
                if folder == shipped:
                    raise
                problems.append(str(e))  # a stranger's file: left out, reported; the others still work
                continue
            cards[c.name] = c
    out = {}
    for name, c in cards.items():
        if c.protocol_definition is None:
            if c.protocol_id not in defined:
                err = FormatError(
                    c.path,
                    f"'protocol': the id of a protocol a dataset file defines ({', '.join(defined) or 'none'})",
                    repr(c.protocol_id),
                )
                if Path(c.path).parent == shipped:
                    raise err
                problems.append(str(err))
                continue
            c = replace(c, label_map=defined[c.protocol_id].label_map)
        out[name] = c
    return MappingProxyType(out), tuple(problems)


def dataset_cards() -> Mapping[str, DatasetCard]:
    """Every dataset file, by ``--dataset`` name: the shipped ones (in the order of their file names), then those of
    ``$OCCBENCH_DATASET_PATH``. Read once per process. A file of ``$OCCBENCH_DATASET_PATH`` that is not a valid
    dataset file is left out (see :func:`card_problems`); a shipped one that is not is an error."""
    return _read_all()[0]


# dataset_cards() is read from _read_all's cache: its cache_clear empties both (a function attribute: untyped)
dataset_cards.cache_clear = _read_all.cache_clear  # type: ignore[attr-defined]


def card_problems() -> tuple[str, ...]:
    """Why files of ``$OCCBENCH_DATASET_PATH`` were left out (one message per file, naming it)."""
    return _read_all()[1]


def dataset_card(name: str) -> DatasetCard:
    """The card of the dataset ``name`` (its ``--dataset`` name)."""
    cards = dataset_cards()
    if name not in cards:
        for problem in card_problems():  # its file was left out: say why rather than "unknown"
            if problem.split(": ", 1)[0].endswith(f"/{name}.json"):
                raise OccbenchError(problem)
        raise UnknownNameError("dataset", name, list(cards))
    return cards[name]


def dataset_names(*, synthetic: bool | None = None, trainable: bool | None = None) -> tuple[str, ...]:
    """The ``--dataset`` names, in order; ``synthetic`` / ``trainable`` keep only the datasets with that flag."""
    return tuple(
        n
        for n, c in dataset_cards().items()
        if (synthetic is None or c.synthetic == synthetic) and (trainable is None or c.trainable == trainable)
    )


def protocol_definitions() -> dict[str, dict[str, Any]]:
    """Protocol id -> the keyword arguments of its definition (``id``, ``version``, ``label_map``, ...), in order."""
    return {
        c.protocol_id: dict(c.protocol_definition)
        for c in dataset_cards().values()
        if c.protocol_definition is not None
    }


def label_map_names() -> tuple[str, ...]:
    """The label maps: those the protocols use (in order), then any other of ``occbench/labels`` (by name)."""
    used = list(dict.fromkeys(c.label_map for c in dataset_cards().values()))
    return tuple(used + sorted(p.stem for p in label_map_folder().glob("*.json") if p.stem not in used))

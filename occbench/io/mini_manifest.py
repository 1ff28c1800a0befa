"""``mini.json``: the manifest of an occbench-mini root, its one format for the writer (the generator,
:mod:`occbench.synth.generate`) and the readers (the loader :class:`occbench.datasets.OccbenchMini`, the data cache
:mod:`occbench.synth.cache`): the splits and their sequences, the onboard models and their sensors, what is generated
so far. Every name in it is checked to be a plain name (a sequence named ``../x`` would be read from outside the
root) on reading and before writing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from occbench.dataset_cards import SPLIT_NAMES
from occbench.errors import FormatError, MissingDataError
from occbench.io.atomic import atomic_write_text
from occbench.io.files import read_json_document

MANIFEST = "mini.json"
PARTIAL = ".synth"  # what a started generation leaves (occbench.synth.generate.MARKERS)
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")  # a sequence, model, sensor or folder name: no path


def _plain(v: object) -> bool:
    return isinstance(v, str) and PLAIN_NAME.fullmatch(v) is not None and v not in (".", "..") and ".." not in v


def _names(v: object) -> bool:
    return isinstance(v, list) and len(v) <= 1000 and all(_plain(x) for x in v) and len(set(v)) == len(v)


def read_manifest(root: Path) -> dict:
    """``mini.json`` of ``root``, checked (:func:`check_manifest`); a :class:`FormatError` naming the file
    otherwise, a :class:`MissingDataError` when there is none."""
    p = root / MANIFEST
    try:
        m = read_json_document(p, "a JSON manifest")
    except MissingDataError:
        raise MissingDataError(p, "occbench-mini manifest", "generate it with `occbench synth --output ROOT`") from None
    return check_manifest(m, p)


def check_manifest(m: Any, p: Path) -> dict:
    """``m`` if it is a well-formed manifest: every name in it a plain name, every entry of its type; else a
    :class:`FormatError` naming ``p`` (the file it is read from or written to), what was expected and found."""
    if not isinstance(m, dict):
        raise FormatError(p, "a JSON object (the occbench-mini manifest)", f"a JSON {type(m).__name__}")
    for key in ("splits", "onboard"):
        if key not in m:
            raise FormatError(p, f"a '{key}' entry", f"keys {sorted(m)}")
    splits, onboard = m["splits"], m["onboard"]
    if not (isinstance(splits, dict) and all(k in SPLIT_NAMES and _names(v) for k, v in splits.items())):
        raise FormatError(
            p,
            f"'splits': an object of {', '.join(SPLIT_NAMES)} -> lists of plain sequence names "
            "(letters, digits, _ . + -)",
            _short(splits),
        )
    if not _names(onboard):
        raise FormatError(p, "'onboard': a list of plain model names", _short(onboard))
    checks = {
        "sensors": (
            "an object: onboard model -> plain sensor name",
            lambda v: isinstance(v, dict) and all(k in onboard and _plain(x) for k, x in v.items()),
        ),
        "test_ground_truth": ("a plain folder name", _plain),
        "predictions": ("a plain folder name", _plain),
        "generated": (
            "an object: split of 'splits' -> list of models of 'onboard'",
            lambda v: (
                isinstance(v, dict) and all(k in splits and _names(x) and set(x) <= set(onboard) for k, x in v.items())
            ),
        ),
        "config": ("an object (the generator configuration)", lambda v: isinstance(v, dict)),
        "name": ("a text", lambda v: isinstance(v, str)),
        "size": ("a text", lambda v: isinstance(v, str)),
        "generator_version": ("a text", lambda v: isinstance(v, str)),
        "format_version": ("an integer", lambda v: type(v) is int),
        "seed": ("an integer", lambda v: type(v) is int),
        "scans": (
            "an object: plain sequence name -> a count of scans (integer, 1-100,000)",
            lambda v: (
                isinstance(v, dict) and all(_plain(k) and type(n) is int and 1 <= n <= 100_000 for k, n in v.items())
            ),
        ),
        "label_every": ("an integer, 1-1,000", lambda v: type(v) is int and 1 <= v <= 1000),
    }
    for key, (what, ok) in checks.items():
        if key in m and not ok(m[key]):
            raise FormatError(p, f"'{key}': {what}", _short(m[key]))
    return m


def write_manifest(root: Path, manifest: dict) -> None:
    """Write ``manifest`` as ``root/mini.json`` (checked first, :func:`check_manifest`; atomically; sorted keys, so
    that one configuration always gives the same bytes)."""
    p = root / MANIFEST
    check_manifest(manifest, p)
    atomic_write_text(p, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _short(v: object) -> str:
    s = json.dumps(v)
    return s if len(s) <= 80 else s[:77] + "..."


def generated(manifest: dict) -> dict[str, list[str]]:
    """What a manifest says is generated: split -> the onboard models whose predictions it has. Written as
    ``generated`` only while something is missing; without it (every complete manifest) every split with
    every onboard model."""
    if "generated" in manifest:
        return {k: list(v) for k, v in manifest["generated"].items()}
    return {s: list(manifest["onboard"]) for s in manifest["splits"]}


def present_splits(manifest: dict) -> list[str]:
    """The splits whose ground truth a manifest says is generated."""
    return list(generated(manifest))

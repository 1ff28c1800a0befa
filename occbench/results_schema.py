"""Reading results JSON files (schema ``occbench.results``) that may come from anyone, for the leaderboards.

A file is accepted only if it is valid against the schema version it claims (known versions only): names that
end up in page names, headings, links or code spans are restricted to a safe character set, dataset and split
come from an allowlist, every score is ``null`` or a finite fraction in [0, 1], counts are non-negative
integers, and free text holds no control characters (the pages escape it for Markdown and HTML as well).
Every problem of a file is listed in one :class:`~occbench.errors.FormatError` naming the file.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from occbench.dataset_cards import dataset_cards
from occbench.errors import FormatError
from occbench.grid import KITTI
from occbench.io.files import read_json_document

SCHEMA = "occbench.results"
KNOWN_SCHEMA_VERSIONS = (1,)
DATASETS = tuple(c.results_name for c in dataset_cards().values())  # the dataset files' results names
SPLITS = ("train", "val", "test")
RANGES = KITTI.range_keys  # the range keys of every protocol occbench ships (KITTI grid)
TC_FRACTIONS = ("pair_agreement", "modal_agreement", "all_agree")
TC_COUNTS = ("n_static_voxels", "n_observations")
PROTOCOL_SHOWN = ("id", "version", "epsilon", "units", "averaging", "ignore_policy")
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
SAFE_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\.json")
MAX_TEXT = 4096
MAX_CLASSES = 256
_FLOATFMT = re.compile(r"\.[0-9][fge]")
_HEX = re.compile(r"[0-9a-f]{1,128}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
EXPECTED = f"an occbench results file (schema '{SCHEMA}', version {' or '.join(map(str, KNOWN_SCHEMA_VERSIONS))})"

_SCANS = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")  # header.partial.scans: --frames as run, e.g. 0,5,10-20


def read_results(path: str | Path) -> dict[str, Any]:
    """Read and validate one results file; raises :class:`FormatError` listing every problem."""
    path = Path(path)
    problems = (
        []
        if SAFE_FILE.fullmatch(path.name)
        else [f"a file name of letters, digits and . _ + - ending in .json (got {path.name!r})"]
    )
    doc = read_json_document(path, "an occbench results file")
    problems += results_problems(doc)
    if problems:
        raise FormatError(path, EXPECTED, "; ".join(problems))
    return doc


def read_results_for_plot(path: str | Path) -> dict[str, Any]:
    """A results file for ``occbench render distance``: valid as :func:`read_results` asks (any file name), with a
    distance curve of ``bin_edges_m`` (n + 1 finite numbers, at most 10,000) and ``iou``, ``miou`` (n fractions or
    null each)."""
    path = Path(path)
    doc = read_json_document(path, "an occbench results file")
    problems = results_problems(doc)
    if not problems:
        cur = doc["metrics"].get("distance")
        edges = cur.get("bin_edges_m") if isinstance(cur, dict) else None
        if not (
            isinstance(edges, list)
            and 2 <= len(edges) <= 10_001
            and all(type(e) in (int, float) and math.isfinite(e) for e in edges)
        ):
            problems.append("metrics.distance.bin_edges_m missing or not a list of 2-10,001 finite numbers")
        else:
            for k in ("iou", "miou"):
                v = cur.get(k)
                if not (isinstance(v, list) and len(v) == len(edges) - 1):
                    problems.append(f"metrics.distance.{k} is not a list of {len(edges) - 1} values")
                    continue
                for x in v:
                    _fraction(x, f"metrics.distance.{k}", problems)
    if problems:
        raise FormatError(path, EXPECTED + " with a distance curve", "; ".join(problems[:10]))
    return doc


def results_problems(doc: Any) -> list[str]:
    """Everything wrong with a parsed results document (empty when it is valid)."""
    if not isinstance(doc, dict):
        return [f"a JSON {type(doc).__name__} instead of an object"]
    out: list[str] = []
    if doc.get("schema") != SCHEMA:
        return [f"schema {_short(doc.get('schema'))} (not '{SCHEMA}')"]
    v = doc.get("schema_version")
    if type(v) is not int or v not in KNOWN_SCHEMA_VERSIONS:
        return [f"schema_version {_short(v)}, which this version of occbench does not know"]
    header, metrics, proto = (_obj(doc, k, out) for k in ("header", "metrics", "protocol"))
    classes = None
    if proto is not None:
        names = proto.get("class_names")
        if (
            isinstance(names, list)
            and 0 < len(names) <= MAX_CLASSES
            and all(isinstance(n, str) for n in names)
            and len(set(names)) == len(names)
        ):
            for n in names:
                _text(n, "protocol.class_names", out)
            classes = set(names)
        else:
            out.append(
                f"protocol.class_names = {_short(names)} (expected a list of 1-{MAX_CLASSES} distinct class names)"
            )
        for k in PROTOCOL_SHOWN:
            if k in proto and isinstance(proto[k], (str, int, float)) and not SAFE_NAME.fullmatch(str(proto[k])):
                out.append(f"protocol.{k} {_short(proto[k])} (expected letters, digits and . _ + -)")
    if header is not None:
        ds, method = _obj(header, "dataset", out, "header."), _obj(header, "method", out, "header.")
        if ds is not None:
            _choice(ds, "dataset", DATASETS, out, "header.dataset.")
            _choice(ds, "split", SPLITS, out, "header.dataset.")
            if "onboard" not in ds:
                out.append("header.dataset.onboard missing (expected the onboard model's name, or null)")
            elif ds["onboard"] is not None:
                _name(ds, "onboard", out, "header.dataset.")
            fp = ds.get("fingerprint")
            if fp is not None and not (
                isinstance(fp, dict)
                and isinstance(fp.get("files"), str)
                and _HEX.fullmatch(fp["files"])
                and (fp.get("content") is None or (isinstance(fp["content"], str) and _HEX.fullmatch(fp["content"])))
            ):
                out.append("header.dataset.fingerprint is not {\"files\": hex digest, \"content\": hex digest or null}")
            _scalar_object(ds.get("generator"), "header.dataset.generator", out)
        if method is not None:
            _name(method, "name", out, "header.method.")
            _scalar_object(method.get("source"), "header.method.source", out)
        if header.get("predictions") is not None:
            _text(header["predictions"], "header.predictions", out)
        if header.get("command") is not None:
            _text(header["command"], "header.command", out)
        part = header.get("partial")
        if part is not None:
            if not (
                isinstance(part, dict)
                and set(part) <= {"frames", "frames_in_split", "max_frames", "scans"}
                and all(type(part.get(k)) is int and part[k] >= 0 for k in ("frames", "frames_in_split"))
                and (part.get("max_frames") is None or (type(part["max_frames"]) is int and part["max_frames"] >= 0))
                and (
                    part.get("scans") is None
                    or _SCANS.fullmatch(str(part["scans"])) is not None
                    and isinstance(part["scans"], str)
                    and len(part["scans"]) <= 100_000
                )
            ):
                out.append(
                    f"header.partial = {_short(part)} (expected null or {{\"frames\": count, "
                    "\"frames_in_split\": count, \"max_frames\": count or null, \"scans\": \"0,5,10-20\" "
                    "(optional)}})"
                )
    if metrics is not None:
        ssc = _obj(metrics, "ssc", out, "metrics.")
        if ssc is not None:
            for r in RANGES:
                block = _obj(ssc, r, out, "metrics.ssc.")
                if block is not None:
                    _scores(block, f"metrics.ssc.{r}", out, classes)
        if metrics.get("city_map") is not None:
            cm = _obj(metrics, "city_map", out, "metrics.")
            if cm is not None:
                _scores(cm, "metrics.city_map", out, classes)
        if metrics.get("temporal_consistency") is not None:
            tc = _obj(metrics, "temporal_consistency", out, "metrics.")
            if tc is not None:
                for k in TC_FRACTIONS:
                    _fraction(tc.get(k), f"metrics.temporal_consistency.{k}", out)
                for k in TC_COUNTS:
                    x = tc.get(k)
                    if x is not None and not (type(x) is int and x >= 0):
                        out.append(f"metrics.temporal_consistency.{k} = {_short(x)} (expected a count >= 0 or null)")
    return out


def reported_problems(doc: Any) -> list[str]:
    """Everything wrong with a parsed reported-numbers file (``leaderboards/reported/*.json``)."""
    if not isinstance(doc, dict):
        return [f"a JSON {type(doc).__name__} instead of an object"]
    out: list[str] = []
    _text(doc.get("source"), "source", out)
    if "heading" in doc:
        _text(doc["heading"], "heading", out)
    if "mini" in doc and not isinstance(doc["mini"], bool):
        out.append(f"mini = {_short(doc['mini'])} (expected true or false)")
    tables = doc.get("tables")
    if not isinstance(tables, list):
        return out + ["tables missing or not a list"]
    for i, t in enumerate(tables):
        where = f"tables[{i}]"
        if not isinstance(t, dict):
            out.append(f"{where} is not an object")
            continue
        _text(t.get("title"), f"{where}.title", out)
        if t.get("source") is not None:
            _text(t["source"], f"{where}.source", out)
        if "floatfmt" in t and not (isinstance(t["floatfmt"], str) and _FLOATFMT.fullmatch(t["floatfmt"])):
            out.append(f"{where}.floatfmt = {_short(t['floatfmt'])} (expected e.g. \".2f\")")
        if not isinstance(t.get("dataset"), str):
            out.append(f"{where}.dataset missing or not text")
        cols = t.get("columns")
        if not (isinstance(cols, list) and all(isinstance(c, str) for c in cols)):
            out.append(f"{where}.columns is not a list of text")
            continue
        for c in cols:
            _text(c, f"{where}.columns", out)
        rows = t.get("rows")
        if not isinstance(rows, list):
            out.append(f"{where}.rows is not a list")
            continue
        for j, r in enumerate(rows):
            if not (isinstance(r, list) and len(r) == len(cols) + 1):
                out.append(f"{where}.rows[{j}] is not a list of a name and {len(cols)} numbers")
                continue
            _text(r[0], f"{where}.rows[{j}][0]", out)
            for x in r[1:]:
                if isinstance(x, str):
                    _text(x, f"{where}.rows[{j}]", out)
                elif x is not None and (type(x) not in (int, float) or not math.isfinite(x)):
                    out.append(f"{where}.rows[{j}] holds {_short(x)} (expected finite numbers, text or null)")
    return out


def _short(x: Any) -> str:
    s = json.dumps(x) if isinstance(x, (str, int, float, bool, type(None))) else f"a {type(x).__name__}"
    return s if len(s) <= 60 else s[:57] + "..."


def _obj(d: dict, key: str, out: list[str], where: str = "") -> dict | None:
    x = d.get(key)
    if not isinstance(x, dict):
        out.append(
            f"{where}{key} missing or not an object"
            if x is None
            else f"{where}{key} is a {type(x).__name__}, not an object"
        )
        return None
    return x


def _choice(d: dict, key: str, allowed: tuple[str, ...], out: list[str], where: str) -> None:
    if d.get(key) not in allowed:
        out.append(f"{where}{key} {_short(d.get(key))} (expected one of {', '.join(allowed)})")


def _name(d: dict, key: str, out: list[str], where: str) -> None:
    x = d.get(key)
    if not (isinstance(x, str) and SAFE_NAME.fullmatch(x)):
        out.append(
            f"{where}{key} {_short(x)} (expected 1-64 letters, digits and . _ + -, starting with a letter or digit)"
        )


def _scalar_object(v: Any, where: str, out: list[str]) -> None:
    """``v`` absent (None) or an object whose values are short texts or scalars (:func:`_text` with ``scalar``)."""
    if v is None:
        return
    if not isinstance(v, dict):
        out.append(f"{where} is not an object")
        return
    for k, x in v.items():
        _text(x, f"{where}.{k}", out, scalar=True)


def _text(x: Any, where: str, out: list[str], scalar: bool = False) -> None:
    if scalar and (type(x) is int or x is None):
        return
    if not isinstance(x, str) or len(x) > MAX_TEXT or _CONTROL.search(x):
        out.append(f"{where} = {_short(x)} (expected text of at most {MAX_TEXT} characters without control characters)")


def _fraction(x: Any, where: str, out: list[str]) -> None:
    if x is None:
        return
    if type(x) not in (int, float) or not math.isfinite(x) or not 0.0 <= x <= 1.0:
        out.append(f"{where} = {_short(x)} (expected a finite fraction in [0, 1] or null)")


def _scores(block: dict, where: str, out: list[str], classes: set[str] | None = None) -> None:
    for k in ("iou", "miou"):
        _fraction(block.get(k), f"{where}.{k}", out)
    per = block.get("per_class_iou", {})
    if not isinstance(per, dict):
        out.append(f"{where}.per_class_iou is not an object")
        return
    unknown = [k for k in per if classes is None or k not in classes]
    if unknown:
        out.append(
            f"{where}.per_class_iou has {len(unknown)} key(s) that are not protocol.class_names, "
            f"e.g. {_short(unknown[0])}"
        )
        return
    for name, x in per.items():
        _text(name, f"{where}.per_class_iou key", out)
        _fraction(x, f"{where}.per_class_iou.{name}", out)

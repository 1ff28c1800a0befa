"""The results document (schema ``occbench.results``): :class:`Results` owns both directions, building it from
metric states (:meth:`Results.build`), writing it (:meth:`Results.to_dict`, :meth:`Results.write`) and reading back a
file that may come from anyone (:meth:`Results.read`, :meth:`Results.from_dict`).

A document is accepted only if it is valid against the schema version it claims (known versions only): names that
end up in page names, headings, links or code spans are restricted to a safe character set, dataset and split
come from an allowlist, every score is ``null`` or a finite fraction in [0, 1], counts are non-negative
integers, and free text holds no control characters (the pages escape it for Markdown and HTML as well).
Every problem of a document is listed in one :class:`~occbench.errors.FormatError` naming the file. Reported-numbers
files (``leaderboards/reported/*.json``) are checked the same way (:func:`reported_problems`).
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from occbench.dataset_cards import dataset_cards
from occbench.errors import FormatError
from occbench.grid import KITTI
from occbench.io.files import read_json_document

if TYPE_CHECKING:
    from occbench.metrics.protocol import EvalProtocol

SCHEMA = "occbench.results"
SCHEMA_VERSION = 1  # the version this occbench writes
KNOWN_SCHEMA_VERSIONS = (1,)
UNITS = "fraction"  # every score is in 0..1 (the paper's percentages are 100 times these)
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
_HEX = re.compile(r"[0-9a-f]{1,128}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
EXPECTED = f"an occbench results file (schema '{SCHEMA}', version {' or '.join(map(str, KNOWN_SCHEMA_VERSIONS))})"
TOP_LEVEL = ("schema", "schema_version", "units", "protocol", "header", "metrics")  # in the order written
KINDS = ("evaluation", "autolabel")  # what wrote the header: occbench evaluate, or one run of occbench autolabel

_SCANS = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")  # header.partial.scans: --frames as run, e.g. 0,5,10-20

Kind = Literal["evaluation", "autolabel"]


@dataclass(frozen=True)
class Results:
    """One results document: the ``protocol`` the numbers were computed under (its full header,
    :meth:`EvalProtocol.header <occbench.metrics.protocol.EvalProtocol.header>`), the provenance ``header`` (dataset,
    method, command, environment, ...; see docs/results-schema.md) and the ``metrics`` (name -> scores, fractions in
    0..1, ``None`` where not finite). Plain JSON values throughout, in the order they are written.

    Construct it with :meth:`build` (from metric states) or :meth:`from_dict` / :meth:`read` (validated); the
    constructor itself checks nothing. :meth:`to_dict` is the inverse of :meth:`from_dict`: a valid document
    round-trips to the same dict, and a file written by :meth:`write` to the same bytes. The mappings are copied in
    and out, so a ``Results`` is not changed through what it was made from or what it returns.
    """

    protocol: dict[str, Any]
    header: dict[str, Any]
    metrics: dict[str, Any]
    schema_version: int = SCHEMA_VERSION
    units: str = UNITS
    schema: str = field(default=SCHEMA, init=False)

    # -- writing ------------------------------------------------------------------------------------------------------

    @classmethod
    def build(
        cls, protocol: EvalProtocol | str, metrics: dict[str, Any], header: dict[str, Any] | None = None
    ) -> Results:
        """The results of ``metrics`` computed under ``protocol``.

        ``metrics``: ``{name: metric object or already computed dict}``; objects with ``compute()`` are computed,
        and their protocol must be ``protocol`` (``ValueError`` otherwise; e.g. ``{"ssc": m, "city_map": city}``).
        ``header``: provenance (method, split, sequences, command, ...). Non-finite numbers (e.g. completion IoU with
        nothing occupied) become ``None`` (``null``), numpy scalars Python numbers, tuples lists."""
        from occbench.metrics.protocol import get_protocol

        proto = get_protocol(protocol)
        out: dict[str, Any] = {}
        for name, m in metrics.items():
            if hasattr(m, "compute"):
                mp = getattr(m, "protocol", None)
                if mp is not None and mp != proto:
                    raise ValueError(f"metric {name!r} was computed under {mp.tag}, not {proto.tag}")
                vals = m.compute()
                if hasattr(m, "n_frames") and isinstance(vals, dict) and "n_frames" not in vals:
                    vals = {"n_frames": int(m.n_frames), **vals}
                out[name] = vals
            else:
                out[name] = m
        return cls(protocol=json_clean(proto.header()), header=json_clean(dict(header or {})), metrics=json_clean(out))

    def __post_init__(self) -> None:
        for k in ("protocol", "header", "metrics"):
            object.__setattr__(self, k, copy.deepcopy(getattr(self, k)))

    def to_dict(self) -> dict[str, Any]:
        """The document as written (a copy): ``schema``, ``schema_version``, ``units``, ``protocol``, ``header``,
        ``metrics``, in this order."""
        return copy.deepcopy(
            {
                "schema": self.schema,
                "schema_version": self.schema_version,
                "units": self.units,
                "protocol": self.protocol,
                "header": self.header,
                "metrics": self.metrics,
            }
        )

    def to_json(self) -> bytes:
        """The bytes of a results file: :meth:`to_dict` as JSON, indented by one space, keys in their order, ASCII,
        a final newline."""
        return dumps(self.to_dict())

    def write(self, path: str | Path, *, overwrite: bool = False, number: bool = False) -> Path:
        """Write :meth:`to_json` to a new file at ``path`` and return where it went: complete before its name
        appears, and never over an existing file (another run's) unless ``overwrite``; with ``number`` an existing
        ``path`` makes it ``STEM-2.json``, ``STEM-3.json``, ... (:func:`occbench.io.atomic.create_new_bytes`)."""
        from occbench.io.atomic import create_new_bytes

        if Path(path).expanduser().is_dir():  # else the folder's own name is "taken": a FileExistsError naming it
            raise IsADirectoryError(
                f"{path} is a folder; expected the path of the results file to write, e.g. {Path(path) / 'r.json'}"
            )
        return create_new_bytes(path, self.to_json(), overwrite=overwrite, number=number)

    # -- reading ------------------------------------------------------------------------------------------------------

    @classmethod
    def problems(cls, doc: Any, kind: Kind = "evaluation") -> list[str]:
        """Everything wrong with a parsed results document (empty when it is valid). ``kind``: ``evaluation`` (a
        file of ``occbench evaluate``, what the leaderboards read) or ``autolabel`` (one run of ``occbench
        autolabel``: its header names the training and evaluation splits and the source of training labels)."""
        if kind not in KINDS:
            raise ValueError(f"results kind {kind!r}: expected one of {', '.join(KINDS)}")
        return _problems(doc, kind)

    @classmethod
    def from_dict(cls, doc: Any, *, kind: Kind = "evaluation", source: str | Path | None = None) -> Results:
        """The results of a parsed document, validated (:meth:`problems`): a :class:`~occbench.errors.FormatError`
        naming ``source`` (the file it came from, if any) lists every problem."""
        problems = cls.problems(doc, kind)
        if problems:
            raise FormatError(source, EXPECTED, "; ".join(problems))
        return cls._of(doc)

    @classmethod
    def read(cls, path: str | Path, *, kind: Kind = "evaluation") -> Results:
        """Read and validate one results file (bounded, strict JSON: :func:`occbench.io.files.read_json_document`);
        its name must be letters, digits and ``. _ + -`` ending in ``.json`` (it becomes part of pages). Raises
        :class:`~occbench.errors.FormatError` listing every problem."""
        path = Path(path)
        problems = (
            []
            if SAFE_FILE.fullmatch(path.name)
            else [f"a file name of letters, digits and . _ + - ending in .json (got {path.name!r})"]
        )
        doc = read_json_document(path, "an occbench results file", follow=False)  # a link: refused, named
        problems += cls.problems(doc, kind)
        if problems:
            raise FormatError(path, EXPECTED, "; ".join(problems))
        return cls._of(doc)

    @classmethod
    def read_for_plot(cls, path: str | Path) -> Results:
        """A results file for ``occbench render distance``: valid as :meth:`read` asks (any file name), with a
        distance curve of ``bin_edges_m`` (n + 1 finite numbers, at most 10,000) and ``iou``, ``miou`` (n fractions
        or null each)."""
        path = Path(path)
        doc = read_json_document(path, "an occbench results file", follow=False)  # a link: refused, named
        problems = cls.problems(doc)
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
        return cls._of(doc)

    @classmethod
    def _of(cls, doc: dict[str, Any]) -> Results:
        return cls(
            protocol=doc["protocol"],
            header=doc["header"],
            metrics=doc["metrics"],
            schema_version=doc["schema_version"],
            units=doc["units"],
        )

    # -- what the pages read ------------------------------------------------------------------------------------------

    @property
    def method(self) -> str | None:
        """The scored method's name (``header.method.name``; None in an autolabel header)."""
        m = self.header.get("method")
        return m.get("name") if isinstance(m, dict) else None

    @property
    def dataset(self) -> str | None:
        """The results name of the scored dataset (``header.dataset.dataset``)."""
        return self.header.get("dataset", {}).get("dataset")

    @property
    def split(self) -> str | None:
        return self.header.get("dataset", {}).get("split")

    @property
    def onboard(self) -> str | None:
        """The onboard model whose predictions were refined or scored (None: a submission, or none)."""
        return self.header.get("dataset", {}).get("onboard")

    @property
    def partial(self) -> dict[str, Any] | None:
        """``header.partial`` (frames, frames_in_split, max_frames, scans) of a partial run, else None."""
        return self.header.get("partial") or None

    def ssc(self, range_m: float | str) -> dict[str, Any]:
        """The SSC scores within range crop ``range_m`` metres (``12.8``, ``"51.2"``, ...)."""
        key = range_m if isinstance(range_m, str) else f"{float(range_m):g}"
        return self.metrics["ssc"][key]

    def report(self) -> str:
        """The tables ``occbench evaluate`` prints (markdown): the title (method, dataset, split, onboard model, and
        a partial run's note), IoU / precision / recall / mIoU per range, per-class IoU, and the city map and
        temporal consistency when computed. ``print(results.report())`` in a script or notebook."""
        from occbench.report import full_report

        return full_report(self.to_dict())


def dumps(doc: Any) -> bytes:
    """How occbench writes a JSON document: indented by one space, keys in their order, ASCII, a final newline."""
    return (json.dumps(doc, indent=1, sort_keys=False) + "\n").encode("utf-8")


def json_clean(x: Any) -> Any:
    """JSON-safe copy: NaN / inf -> None, numpy scalars -> Python numbers, tuples -> lists."""
    if isinstance(x, dict):
        return {str(k): json_clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_clean(v) for v in x]
    if hasattr(x, "item") and callable(x.item) and getattr(x, "shape", None) == ():
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _problems(doc: Any, kind: str) -> list[str]:
    if not isinstance(doc, dict):
        return [f"a JSON {type(doc).__name__} instead of an object"]
    out: list[str] = []
    if doc.get("schema") != SCHEMA:
        return [f"schema {_short(doc.get('schema'))} (not '{SCHEMA}')"]
    v = doc.get("schema_version")
    if type(v) is not int or v not in KNOWN_SCHEMA_VERSIONS:
        return [f"schema_version {_short(v)}, which this version of occbench does not know"]
    unknown = [k for k in doc if k not in TOP_LEVEL]
    if unknown:
        out.append(f"{len(unknown)} unknown key(s), e.g. {_short(unknown[0])} (expected only {', '.join(TOP_LEVEL)})")
    if doc.get("units") != UNITS:
        out.append(f"units {_short(doc.get('units'))} (expected {UNITS!r}: every score in 0..1)")
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
        if kind == "autolabel":
            _autolabel_header(header, out)
        else:
            _evaluation_header(header, out)
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


def _evaluation_header(header: dict, out: list[str]) -> None:
    """The header ``occbench evaluate`` writes: dataset, method, and what the pages show of the run."""
    ds, method = _obj(header, "dataset", out, "header."), _obj(header, "method", out, "header.")
    if ds is not None:
        _dataset(ds, "header.dataset.", out)
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


def _autolabel_header(header: dict, out: list[str]) -> None:
    """The header of one ``occbench autolabel`` run: the protocol (``autolabel``), the ``source`` of training labels,
    the ``seed``, and the splits it trained on and was evaluated on (``dataset.train``, ``dataset.eval``,
    ``dataset.unlabeled`` or null)."""
    _obj(header, "autolabel", out, "header.")
    src = _obj(header, "source", out, "header.")
    if src is not None:
        _text(src.get("name"), "header.source.name", out)
        _text(src.get("label"), "header.source.label", out)
    if type(header.get("seed")) is not int:
        out.append(f"header.seed = {_short(header.get('seed'))} (expected an integer)")
    ds = _obj(header, "dataset", out, "header.")
    if ds is not None:
        for part in ("train", "eval", "unlabeled"):
            block = _obj(ds, part, out, "header.dataset.") if part != "unlabeled" or ds.get(part) is not None else None
            if block is not None:
                _dataset(block, f"header.dataset.{part}.", out)
    if header.get("command") is not None:
        _text(header["command"], "header.command", out)


def _dataset(ds: dict, where: str, out: list[str]) -> None:
    """A dataset block (:meth:`SSCDataset.describe <occbench.datasets.SSCDataset.describe>`) at ``where``."""
    _choice(ds, "dataset", DATASETS, out, where)
    _choice(ds, "split", SPLITS, out, where)
    if "onboard" not in ds:
        out.append(f"{where}onboard missing (expected the onboard model's name, or null)")
    elif ds["onboard"] is not None:
        _name(ds, "onboard", out, where)
    fp = ds.get("fingerprint")
    if fp is not None and not (
        isinstance(fp, dict)
        and isinstance(fp.get("files"), str)
        and _HEX.fullmatch(fp["files"])
        and (fp.get("content") is None or (isinstance(fp["content"], str) and _HEX.fullmatch(fp["content"])))
    ):
        out.append(f"{where}fingerprint is not {{\"files\": hex digest, \"content\": hex digest or null}}")
    _scalar_object(ds.get("generator"), f"{where}generator", out)


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


# -- reported-numbers files (leaderboards/reported/*.json: numbers published in papers, checked like results files) --

_FLOATFMT = re.compile(r"\.[0-9][fge]")


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

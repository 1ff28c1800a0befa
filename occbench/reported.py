"""Reading reported-numbers files (``leaderboards/reported/*.json``: numbers published in papers, rendered in their
own marked section of the leaderboards), validated like results files (:mod:`occbench.results`)."""

from __future__ import annotations

import math
import re
from typing import Any

from occbench.results import _short, _text

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

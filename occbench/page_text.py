"""Text of the generated pages: Markdown-inert names, and the line naming the data rows were measured on (shared
by the leaderboard pages, their plots and the auto-labeling page, without importing them)."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

_MD_SPECIAL = re.compile(r"([\\`\[\]|])")  # what could add code, links or table cells; emphasis is harmless
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def md_text(x: Any) -> str:
    """``x`` as inert text in Markdown (tables included) and HTML: ``& < >`` become entities, backslashes,
    backticks, brackets and table pipes are backslash-escaped, control characters become spaces."""
    s = _CONTROL.sub(" ", str(x)).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


def _sorted_items(d: dict) -> list:
    try:
        return sorted(d.items())
    except TypeError:  # keys mixing numbers and text
        return sorted(d.items(), key=lambda kv: tuple(map(str, kv[0])))


def data_generation_lines(generators: list[dict | None]) -> list[str]:
    """Markdown naming the generated data rows were measured on (``header.dataset.generator`` of each row:
    generator version, seed, size), with a warning when they come from different generations (their numbers are
    not comparable). Empty for real data (no generator)."""
    gens: dict[tuple, int] = defaultdict(int)
    for g in generators:
        if g:
            gens[(g.get("name", "?"), g.get("generator_version", "?"), g.get("seed", "?"), g.get("size", "?"))] += 1
    if not gens:
        return []
    desc = [
        f"{md_text(n)} generator {md_text(v)} (seed {md_text(s)}, size {md_text(z)}): {k} row{'s' if k != 1 else ''}"
        for (n, v, s, z), k in _sorted_items(gens)
    ]
    if len(gens) == 1:
        return ["Data: " + desc[0].rsplit(":", 1)[0] + ".", ""]
    return [
        "> **Rows from different data generations; numbers across them are not comparable.** " + "; ".join(desc) + ".",
        "",
    ]

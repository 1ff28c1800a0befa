"""mkdocs hook: the leaderboards become part of the documentation site, read from the repository's
``leaderboards/`` folder at every build (never copied by hand).

- ``on_files``: the generated pages (``leaderboards/*.md`` but its README), their plots (``plots/*.png``), the
  pictures (``pictures/*.png`` and ``pictures/README.md``, the commands that made them), the results files and the
  auto-labeling files they link are added to the site under ``leaderboards/``, so their relative links resolve.
- ``on_page_markdown``: a documentation page links the repository's folder as ``../leaderboards/...`` and a
  leaderboard page the documentation as ``../docs/...`` (so the links also work when the pages are read in the
  repository); in the site the documentation is the root and the leaderboards one folder in it.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

LEADERBOARDS = Path(__file__).resolve().parents[1] / "leaderboards"
ASSETS = ("plots/*.png", "pictures/*.png", "pictures/README.md", "results/*.json", "autolabel/*.json")


def on_files(files, config):
    for p in sorted(LEADERBOARDS.glob("*.md")):
        if p.name != "README.md":
            files.append(File.generated(config, f"leaderboards/{p.name}", abs_src_path=str(p)))
    for pattern in ASSETS:
        for p in sorted(LEADERBOARDS.glob(pattern)):
            files.append(
                File.generated(config, f"leaderboards/{p.relative_to(LEADERBOARDS).as_posix()}", abs_src_path=str(p))
            )
    return files


def on_page_markdown(markdown, page, config, files):
    depth = page.file.src_uri.count("/")
    if page.file.src_uri.startswith("leaderboards/"):
        # a leaderboard page links the documentation as ../docs/... (../../docs/... one folder down); in the site
        # the documentation is the site root
        return markdown.replace("](" + "../" * depth + "docs/", "](" + "../" * depth)
    return markdown.replace("](" + "../" * (depth + 1) + "leaderboards/", "](" + "../" * depth + "leaderboards/")

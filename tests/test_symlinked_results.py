"""Results files are files from strangers: a symbolic link given where a results file is read (``occbench
leaderboard``, ``render distance``, reported numbers) or written (``evaluate -o``) is refused with one line naming
the link and what it names; nothing is read or written through it. The same file given by its own path works."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_faults_results import _sk

from occbench.cli import main
from occbench.errors import FormatError
from occbench.results import Results
from occbench.testing import make_semantickitti_tree

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "leaderboards" / "results" / "mini-val-sscnet-sim-average-fusion.json"


@pytest.fixture
def results_dir(tmp_path):
    """A folder of one committed results file, and the file again elsewhere."""
    d = tmp_path / "results"
    d.mkdir()
    shutil.copy(COMMITTED, d / COMMITTED.name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(COMMITTED, elsewhere / "other.json")
    return d, elsewhere / "other.json"


def _leaderboard(results: Path, out: Path):
    return CliRunner().invoke(
        main, ["leaderboard", "--results", str(results), "--reported", str(out / "none"), "--output", str(out)]
    )


def test_leaderboard_refuses_a_linked_results_file_naming_link_and_target(results_dir, tmp_path):
    d, other = results_dir
    out = tmp_path / "pages"
    r = _leaderboard(d, out)
    assert r.exit_code == 0, r.output  # the real file is accepted
    shutil.rmtree(out)
    link = d / "linked.json"
    link.symlink_to(other)
    r = _leaderboard(d, out)
    assert r.exit_code == 5, r.output
    assert f"{link}: expected a regular file (an occbench results file), found a symbolic link to {other}" in r.output
    assert "not followed" in r.output and "Traceback" not in r.output
    assert not out.exists(), "nothing written"


def test_a_link_to_a_secret_is_named_not_read(tmp_path):
    """The link's target is named from the link's own text; its content never reaches the message."""
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "hunter2"}')
    link = tmp_path / "r.json"
    link.symlink_to(secret)
    with pytest.raises(FormatError) as e:
        Results.read(link)
    assert f"symbolic link to {secret}" in str(e.value) and "hunter2" not in str(e.value)
    with pytest.raises(FormatError, match="symbolic link to"):
        Results.read_for_plot(link)
    os.unlink(secret)  # a dangling link is named the same way, not called missing
    with pytest.raises(FormatError, match=f"symbolic link to {secret}"):
        Results.read(link)


def test_render_distance_refuses_a_link_and_reads_the_file(tmp_path):
    link = tmp_path / "linked.json"
    link.symlink_to(COMMITTED)
    r = CliRunner().invoke(main, ["render", "distance", str(link), "-o", str(tmp_path / "d.png")])
    assert r.exit_code == 1, r.output
    assert f"found a symbolic link to {COMMITTED}" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "d.png").exists()
    r = CliRunner().invoke(main, ["render", "distance", str(COMMITTED), "-o", str(tmp_path / "d.png")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "d.png").stat().st_size > 0


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_semantickitti_tree(tmp_path_factory.mktemp("sl"), {"08": 6}, onboard={"noisy": 0.2})


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_evaluate_output_that_is_a_link_is_refused_and_its_target_kept(tree, tmp_path, overwrite):
    target = tmp_path / "kept.json"
    target.write_text("keep me")
    link = tmp_path / "r.json"
    link.symlink_to(target)
    args = _sk(tree, "-o", str(link))
    r = CliRunner().invoke(main, args + (["--overwrite"] if overwrite else []))
    assert r.exit_code == 2, r.output
    assert f"{link} is a symbolic link to {target}" in r.output and "never written to or through a link" in r.output
    assert target.read_text() == "keep me" and link.is_symlink()

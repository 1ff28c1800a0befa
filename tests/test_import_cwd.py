"""Importing occbench does not depend on the current folder's contents.

``pip install -e .`` (setuptools' editable finder, a meta path finder after the path finder) lets a folder named
``occbench`` in the current folder (first on ``sys.path`` for ``python -c``, scripts and notebooks) make ``occbench``
a namespace package: ``occbench/__init__.py`` is not run and ``importlib.resources.files("occbench")`` is a
``MultiplexedPath``. The subprocess below reproduces that install: the repository is not on ``sys.path`` and a
finder like setuptools' maps the top-level names to the repository's folders.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import sys
from importlib.machinery import PathFinder
from importlib.util import spec_from_file_location
from pathlib import Path

MAPPING = {"occbench": REPO + "/occbench", "occbench_baselines": REPO + "/occbench_baselines"}

class EditableFinder:  # as setuptools' __editable___*_finder: top-level names and their immediate children
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname in MAPPING:
            return spec_from_file_location(fullname, Path(MAPPING[fullname]) / "__init__.py")
        parent, _, _ = fullname.rpartition(".")
        if parent in MAPPING:
            return PathFinder.find_spec(fullname, path=[MAPPING[parent]])
        return None

def installed(f):  # an editable install of occbench in this interpreter: replaced by the one below
    return getattr(f, "__module__", "").startswith("__editable__") or type(f).__module__.startswith("__editable__")

sys.meta_path[:] = [f for f in sys.meta_path if not installed(f)]
sys.path_hooks[:] = [h for h in sys.path_hooks if not getattr(h, "__module__", "").startswith("__editable__")]
sys.path_importer_cache.clear()
sys.path[:] = [""] + [p for p in sys.path if p and Path(p).resolve() != Path(REPO).resolve()]
sys.meta_path.append(EditableFinder)
import occbench
print("shadowed", getattr(occbench, "__file__", None) is None)
import occbench.datasets
from occbench.dataset_cards import dataset_cards, label_map_folder
from occbench.version import __version__
from occbench.labels import load_label_map
print("cards", sorted(dataset_cards()))
print("labels", label_map_folder() == Path(REPO) / "occbench" / "labels", load_label_map("semantickitti").num_classes)
import occbench.evaluation.run, occbench.cli.main
print("version", __version__)
"""


def test_import_with_a_folder_named_occbench_in_the_current_folder(tmp_path):
    (tmp_path / "occbench").mkdir()  # e.g. a results or data folder named after the project
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(
        [sys.executable, "-c", f"REPO = {str(REPO)!r}\n" + SCRIPT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout.splitlines()
    assert out[0] == "shadowed True"  # the situation is reproduced: occbench is the cwd's namespace package
    assert out[1].startswith("cards ") and "'mini'" in out[1] and "'semantickitti'" in out[1]
    assert out[2] == "labels True 20"
    assert out[3] == "version 0.1.0"

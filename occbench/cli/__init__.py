"""The ``occbench`` command line: one module per command, shared options in :mod:`occbench.cli.options`.

``main`` is the click group (the ``occbench`` console script). Commands of other packages join it through the
``occbench.commands`` entry points (:mod:`occbench.cli.group`).
"""

from occbench.cli.main import LAZY_COMMANDS, main
from occbench.cli.options import DATASET_NAMES, ROOT_HELP

__all__ = ["main", "LAZY_COMMANDS", "DATASET_NAMES", "ROOT_HELP"]

"""The ``occbench`` command line: one module per command, shared options in :mod:`occbench.cli.options`.

``main`` is the click group; ``run`` (the ``occbench`` console script, ``python -m occbench.cli``) calls it in a
process that then ends. Commands of other packages join it through the ``occbench.commands`` entry points
(:mod:`occbench.cli.group`).
"""

from occbench.cli.main import LAZY_COMMANDS, main, run
from occbench.cli.options import DATASET_NAMES, ROOT_HELP

__all__ = ["main", "run", "LAZY_COMMANDS", "DATASET_NAMES", "ROOT_HELP"]

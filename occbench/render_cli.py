"""Deprecated: moved to :mod:`occbench.cli.render` (this name is that module, with a ``DeprecationWarning``)."""
from occbench._lazy import moved_module

moved_module(__name__, "occbench.cli.render")

"""Deprecated: moved to :mod:`occbench.cli.group` (this name is that module, with a ``DeprecationWarning``)."""
from occbench._lazy import moved_module

moved_module(__name__, "occbench.cli.group")

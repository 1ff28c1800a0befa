"""Deprecated: moved to :mod:`occbench.evaluation.results_path` (this name is that module, with a ``DeprecationWarning``)."""
from occbench._lazy import moved_module

moved_module(__name__, "occbench.evaluation.results_path")

"""Deprecated: moved to :mod:`occbench.cli.autolabel` (this alias re-exports it and warns)."""
import warnings

from occbench.cli.autolabel import autolabel, DEFAULT_SOURCES, DATASET_TITLES  # noqa: F401

warnings.warn("occbench.autolabel.command is deprecated: use occbench.cli.autolabel", DeprecationWarning, stacklevel=2)

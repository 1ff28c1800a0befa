"""Deprecated: moved to :mod:`occbench.cli.synth` (this alias re-exports it and warns)."""
import warnings

from occbench.cli.synth import synth  # noqa: F401

warnings.warn("occbench.synth.command is deprecated: use occbench.cli.synth", DeprecationWarning, stacklevel=2)

"""Deprecated: moved to :mod:`occbench.cli.render` (this alias re-exports it and warns)."""
import warnings

from occbench.cli.render import render  # noqa: F401

warnings.warn("occbench.render_cli is deprecated: use occbench.cli.render", DeprecationWarning, stacklevel=2)

"""Deprecated: moved to :mod:`occbench.cli.group` (this alias re-exports it and warns)."""
import warnings

from occbench.cli.group import COMMANDS_GROUP, LazyGroup  # noqa: F401

warnings.warn("occbench.lazy_group is deprecated: use occbench.cli.group", DeprecationWarning, stacklevel=2)

"""Deprecated: moved to :mod:`occbench.cli.leaderboard` (this alias re-exports it and warns)."""
import warnings

from occbench.cli.leaderboard import leaderboard, EXIT_STALE, EXIT_INVALID_RESULTS  # noqa: F401

warnings.warn("occbench.leaderboard_cli is deprecated: use occbench.cli.leaderboard", DeprecationWarning, stacklevel=2)

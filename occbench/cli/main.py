"""The ``occbench`` command line.

Exit codes (also in ``occbench --help``): 0 success; 1 the run failed (a data or method error, message on stderr);
2 usage error (unknown command, method, dataset, split or option, a bad option value, an unwritable output);
3 an invalid submission (``evaluate --predictions``); 4 stale leaderboards (``leaderboard --check``);
5 invalid results files (``leaderboard``: each named, nothing written).

Start-up imports only click: every command imports what it needs when it runs, and commands defined elsewhere
are imported only when used (:class:`occbench.cli.group.LazyGroup`).
"""

from __future__ import annotations

import gc

import click

from occbench.cli.convert import convert
from occbench.cli.evaluate import evaluate
from occbench.cli.group import LazyGroup
from occbench.cli.methods import methods
from occbench.cli.refine import refine
from occbench.version import __version__

# built-in commands living in their own modules: name -> ("module:command", first line of its help)
LAZY_COMMANDS = {
    "autolabel": (
        "occbench.cli.autolabel:autolabel",
        "Auto-labeling protocol (OccFiner Table 6): retrain an onboard model on GT-Train (+ pseudo-labels of a split).",
    ),
    "leaderboard": (
        "occbench.cli.leaderboard:leaderboard",
        "Render leaderboards/*.md from result files (one page per dataset/split) "
        "and their plots (leaderboards/plots/).",
    ),
    "render": ("occbench.cli.render:render", "Pictures (frames, city maps) and plots of results files (PNG)."),
    "synth": (
        "occbench.cli.synth:synth",
        "Generate occbench-mini, the synthetic SemanticKITTI-layout data set with simulated onboard predictions.",
    ),
}

EPILOG = """\b
Data: occbench-mini, the default dataset, is generated on first use
(about 1.3 GB) into the data cache, $OCCBENCH_DATA/mini-v<generator version>;
$OCCBENCH_DATA defaults to ~/.cache/occbench.

\b
Exit codes:
  0  success
  1  the run failed (data or method error; the message is on stderr)
  2  usage error: unknown command, method, dataset, split or option,
     a bad option value, an unwritable output
  3  invalid submission (evaluate --predictions)
  4  stale leaderboards (leaderboard --check)
  5  invalid results files (leaderboard: each named, nothing written)
"""


def _card_warnings() -> list[str]:
    from occbench.dataset_cards import card_problems

    return [f"warning: {p} (this dataset file is left out)" for p in card_problems()]


@click.group(
    cls=LazyGroup,
    lazy=LAZY_COMMANDS,
    warnings=_card_warnings,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="occbench")
def main() -> None:
    """occbench: datasets, metrics, baselines and leaderboards for offboard 3D semantic scene completion."""


for _command in (evaluate, refine, methods, convert):
    main.add_command(_command)


# the oldest generation's collections, per collection of the middle one: ten times rarer than Python's default (10)
FULL_COLLECTION_EVERY = 100


def run() -> None:
    """The ``occbench`` console script: :data:`main`, with full garbage collections made rarer, then
    ``gc.freeze()`` as the process exits. Only for a process that is ending: a caller that goes on (a test, a
    notebook) calls :data:`main` instead.

    - A command's imports (numba's above all) make hundreds of thousands of objects and almost no garbage. With
      Python's default thresholds they set off two full collections before the first frame, about 40 ms of walking
      them, none of it on a second core. With a full collection every :data:`FULL_COLLECTION_EVERY` collections
      of the middle generation, a command makes none before its work starts; younger garbage is collected as usual.
    - The interpreter's shutdown otherwise walks every object the imports made in its last garbage collections,
      0.15-0.25 s a command; frozen, they are left to the operating system."""
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], max(thresholds[2], FULL_COLLECTION_EVERY))
    try:
        main()
    finally:
        gc.freeze()
        gc.set_threshold(*thresholds)

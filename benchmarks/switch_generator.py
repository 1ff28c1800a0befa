r"""Switch the default occbench-mini to another generator and re-run everything that depends on its data.

    python benchmarks/switch_generator.py [--generator 1.3] [--dry-run] [--from STEP] [--only STEP]

Run from the repository root on an idle machine, on a clean checkout. Every command runs with
``$OCCBENCH_GENERATOR`` set to the new generator, so the default mini is the new one throughout. The steps, in
order (``--from STEP`` resumes at one, ``--only STEP`` runs one; ``--dry-run`` prints the commands):

``default``
    sets ``GENERATOR_VERSION`` in ``occbench/synth/config.py`` (the switch itself).
``generate``
    ``occbench synth``: the default mini of the new generator, both onboard models.
``select``
    the voting selection on train (``benchmarks/ablate_voting.py --split train``, both models) into
    ``runs/switch/``. The voting defaults are code constants: if the selection picks others, change them
    (docs/baselines/voting.md) and resume with ``--from rows``.
``train``
    retrains the shipped stage-1 checkpoints (``occbench occfiner-train ... --export auto``, both models at once,
    one thread each; the shipped recipe).
``rows``, ``ablations``
    every leaderboard row (``leaderboards/results/*.json``) and every val ablation
    (``leaderboards/ablations/mini-val-*.json``), each by the command recorded in its header, in place of the
    committed file (removed just before its command runs; ``git checkout`` brings it back).
``autolabel``
    the auto-labeling curve and full form, by the commands of leaderboards/autolabel-mini.md.
``pages``
    ``occbench leaderboard`` and ``occbench leaderboard --check``.
``changelog``
    ``runs/switch/changelog.md``: old -> new IoU / mIoU at 12.8 / 25.6 / 51.2 m of every results file, old from
    the commit the switch started from (``git show HEAD:...``; ``--changelog --base REF`` compares with another
    commit, e.g. when the switch's steps were committed as they finished), for the changelog of the pages.

Expected time on an idle 2-core machine (docs/mini-vs-real.md, "What the full switch costs"): about 4-5 h
(generation 5-10 min, voting selection 50 min, stage-1 training 75 min, rows 25 min, ablations 20 min,
auto-labeling 60-90 min). What is not automatic: the voting defaults (above), the tests that pin the default
generator (``tests/test_synth_v12.py``), and the documentation's numbers (docs/mini.md, docs/mini-vs-real.md,
docs/baselines/*.md), which cite the committed results.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = Path("runs/switch")
MODELS = ("voxformer-sim", "sscnet-sim")
STEPS = ("default", "generate", "select", "train", "rows", "ablations", "autolabel", "pages", "changelog")
AUTOLABEL = (  # the commands of leaderboards/autolabel-mini.md, with fresh runs folders (they resume from what
    # they find, and the old runs are of the old generator)
    "occbench autolabel --curve 15,30,60 --pl-pool 12,13 --source occfiner-stage1:voxformer-sim --seed 0 --seed 1 "
    f"--out {RUNS}/autolabel-curve --json leaderboards/autolabel/mini-curve.json -q",
    "occbench autolabel --preset full --seed 0 --seed 1 --source onboard:voxformer-sim --source onboard:sscnet-sim "
    f"--source occfiner:voxformer-sim --out {RUNS}/autolabel-full --json leaderboards/autolabel/mini-full.json -q",
)


def recorded(path: Path) -> str:
    """The command recorded in a committed results file, writing to ``path`` itself."""
    header = json.loads(path.read_text())["header"]
    cmd = header.get("command")
    if not cmd:
        raise SystemExit(f"{path}: expected a results file with header.command, found none")
    args = shlex.split(cmd)
    if "-o" not in args:
        raise SystemExit(f"{path}: its recorded command has no -o OUTPUT: {cmd}")
    args[args.index("-o") + 1] = path.as_posix()
    return shlex.join(args)


def results_files(folder: str, pattern: str) -> list[Path]:
    return sorted((REPO / folder).glob(pattern))


def plan(generator: str) -> dict[str, list[str]]:
    """Step -> shell commands (run from the repository root)."""
    config = "occbench/synth/config.py"
    set_default = f"sed -i 's/^GENERATOR_VERSION = \"[0-9.]*\"/GENERATOR_VERSION = \"{generator}\"/' {config}"
    # both models at once, one thread each; fresh run folders (a run folder resumes what it finds)
    train = "; ".join(
        f"occbench occfiner-train --dataset mini --onboard {m} --config small --input-skip 4 --epochs 12 --lr 2e-3 "
        f"--threads 1 --output {RUNS}/occfiner-{m} --export auto --quiet & p{i}=$!"
        for i, m in enumerate(MODELS)
    )
    return {
        "default": [set_default, f"grep -q '^GENERATOR_VERSION = \"{generator}\"' {config}"],
        "generate": [f"occbench synth --generator {generator} -q"],
        "select": [f"mkdir -p {RUNS}"]
        + [
            f"python benchmarks/ablate_voting.py --split train --model {m} --runs select --json {RUNS}/select-{m}.json"
            for m in MODELS
        ],
        "train": [f"{train}; wait $p0 && wait $p1"],
        "rows": [recorded(p.relative_to(REPO)) for p in results_files("leaderboards/results", "mini-*.json")],
        "ablations": [
            recorded(p.relative_to(REPO)) for p in results_files("leaderboards/ablations", "mini-val-*.json")
        ],
        "autolabel": list(AUTOLABEL),
        "pages": ["occbench leaderboard", "occbench leaderboard --check"],
        "changelog": [f"mkdir -p {RUNS}", f"python benchmarks/switch_generator.py --changelog > {RUNS}/changelog.md"],
    }


def _scores(doc: dict) -> str:
    ssc = doc["metrics"]["ssc"]
    return (
        " / ".join(f"{100 * ssc[r]['iou']:.2f}" for r in ("12.8", "25.6", "51.2"))
        + " IoU, "
        + " / ".join(f"{100 * ssc[r]['miou']:.2f}" for r in ("12.8", "25.6", "51.2"))
        + " mIoU"
    )


def changelog(base: str = "HEAD") -> str:
    """Markdown: old (commit ``base``) -> new (working tree) of every leaderboard row and val ablation."""
    lines = [f"| results file | old ({base}) | new |", "|---|---|---|"]
    for p in results_files("leaderboards/results", "mini-*.json") + results_files(
        "leaderboards/ablations", "mini-val-*.json"
    ):
        rel = p.relative_to(REPO).as_posix()
        old = subprocess.run(["git", "show", f"{base}:{rel}"], cwd=REPO, capture_output=True, text=True)
        before = _scores(json.loads(old.stdout)) if old.returncode == 0 else "(new file)"
        lines.append(f"| `{rel}` | {before} | {_scores(json.loads(p.read_text()))} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generator", default="1.3", help="the new default generator (default 1.3)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    ap.add_argument("--from", dest="start", choices=STEPS, default=STEPS[0], help="resume at this step")
    ap.add_argument("--only", choices=STEPS, default=None, help="run this step only")
    ap.add_argument("--changelog", action="store_true", help="print the old -> new table and exit")
    ap.add_argument("--base", default="HEAD", help="the commit the old numbers come from (default HEAD)")
    a = ap.parse_args(argv)
    from occbench.synth.config import GENERATORS

    if a.generator not in GENERATORS:
        ap.error(f"--generator {a.generator!r}: expected one of {', '.join(GENERATORS)}")
    if a.changelog:
        sys.stdout.write(changelog(a.base))
        return 0
    steps = [a.only] if a.only else list(STEPS[STEPS.index(a.start) :])
    env = {**os.environ, "OCCBENCH_GENERATOR": a.generator}
    todo = plan(a.generator)
    for step in steps:
        for cmd in todo[step]:
            print(f"[{step}] {cmd}", flush=True)
            if a.dry_run:
                continue
            if step in ("rows", "ablations"):  # occbench evaluate refuses to write over a results file
                args = shlex.split(cmd)
                (REPO / args[args.index("-o") + 1]).unlink(missing_ok=True)
            rc = subprocess.run(cmd, shell=True, cwd=REPO, env=env).returncode
            if rc != 0:
                print(f"step {step} failed (exit {rc}); resume with --from {step}", file=sys.stderr)
                return rc
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Start-up time of the command line: ``python -m seqrec --help`` (and ``import seqrec``).

Each run is a fresh interpreter; runs of this tree and of ``--other`` (another checkout of
seqrec, e.g. an older commit made with ``git worktree add``) alternate, so background load hits
both alike. Wall seconds and the child's CPU seconds (user + system, from ``getrusage``) are
recorded; the table gives medians and the ratio.

    python benchmarks/cli_startup.py --runs 7 --other /tmp/old-checkout
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import cpu_model  # noqa: E402  (benchmarks/ helper)

from seqrec.files import write_atomic

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
COMMANDS = {"seqrec --help": ["-m", "seqrec", "--help"], "import seqrec": ["-c", "import seqrec"]}


def one_run(tree: Path, args: list[str]) -> tuple[float, float]:
    """``(wall s, CPU s)`` of one interpreter running ``args`` in ``tree`` (first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, cwd=tree, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


HEAVY = ("torch", "matplotlib", "pandas", "numpy")


def import_profile(tree: Path) -> str:
    """What ``python -X importtime -m seqrec --help`` imports in ``tree``: the heavy packages
    loaded and the slowest top-level import (cumulative microseconds)."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-m", "seqrec", "--help"],
                         cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                         capture_output=True, text=True, check=True).stderr
    rows = [line.split("|") for line in err.splitlines() if line.startswith("import time:")]
    cumulative = {name.strip(): int(us) for _, us, name in rows[1:] if us.strip().isdigit()}
    heavy = [name for name in HEAVY if name in cumulative]
    top = max((n for n in cumulative if not n.startswith(" ")), key=cumulative.get)
    return (f"imports {', '.join(heavy) or 'none of ' + '/'.join(HEAVY)}; slowest top-level "
            f"import `{top}` {cumulative[top] / 1e6:.2f} s cumulative")


def git_commit(tree: Path) -> str:
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--other", type=Path, help="another seqrec checkout to compare with")
    args = parser.parse_args()
    trees = {f"this tree ({git_commit(ROOT)})": ROOT}
    if args.other:
        trees[f"{args.other} ({git_commit(args.other)})"] = args.other
    rows = []
    for name, command in COMMANDS.items():
        samples: dict[str, list[tuple[float, float]]] = {tree: [] for tree in trees}
        for _ in range(args.runs):
            for tree, path in trees.items():
                samples[tree].append(one_run(path, command))
        base = statistics.median(c for _, c in samples[next(iter(trees))])
        for tree, values in samples.items():
            wall = statistics.median(w for w, _ in values)
            cpu = statistics.median(c for _, c in values)
            rows.append(f"| `{name}` | {tree} | {wall:.3f} | {cpu:.3f} | {cpu / base:.1f}x |")
    profiles = [f"- {tree}: {import_profile(path)}" for tree, path in trees.items()]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = "\n".join([
        "### Command-line start-up", "",
        f"Command: `python benchmarks/cli_startup.py --runs {args.runs}"
        + (f" --other {args.other}`" if args.other else "`") + "  ",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores, "
        f"{cpu_model()}; Python {sys.version.split()[0]}; load average at the end {load}; "
        f"median of {args.runs} fresh interpreters per row, alternating trees", "",
        "| command | tree | wall s | CPU s | CPU vs this tree |", "|---|---|---|---|---|",
        *rows, "", "`python -X importtime -m seqrec --help` (one run each):", "", *profiles, ""])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    write_atomic(RESULTS / "cli_startup.md", text)


if __name__ == "__main__":
    main()

"""Time split with beyond-accuracy metrics (the eSASRec paper's production-like benchmark).

A global time cut-off holds out the last weeks; cold users and cold items are dropped from the
test part; already-seen items are filtered at ranking. For each model: Recall@10, NDCG@10,
coverage@10, ARP@10, novelty@10, and which models are Pareto-optimal in (NDCG@10, coverage@10).
This script runs the user-facing command ``seqrec compare`` (one implementation for both) and
records its JSON answer as a Markdown table next to the plot of the front.

    python benchmarks/time_split.py --dataset ml100k --test-days 28
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import cpu_model  # noqa: E402  (benchmarks/ helper)

import seqrec
from seqrec.files import write_atomic
from seqrec.report import pareto_front, plot_front

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).parent / "results"


def compare(data: list[str], args: argparse.Namespace, seed: int) -> dict:
    """The JSON answer of one ``seqrec compare`` run (every model trained with ``seed``)."""
    command = [sys.executable, "-m", "seqrec", "compare", *data, "--split", "time",
               "--test-days", str(args.test_days), "--models", args.models, "--k", "10",
               "--json", "--quiet", "--set", f"seed={seed}"]
    if args.targets:
        command += ["--targets", args.targets]
    if args.debiased:
        command.append("--debiased")
    for item in args.sets:
        command += ["--set", item]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def mean_sd(values: list[float], digits: int) -> str:
    """``mean ± sd`` (ddof 0) over seeds, or the value alone for one seed."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["ml100k", "movielens"], default="ml100k")
    parser.add_argument("--models",
                        default="popular,sasrec,sasrec_ss,gsasrec,bert4rec,hstu,fuxi_alpha,esasrec")
    parser.add_argument("--test-days", type=float, default=28.0)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--targets", choices=["all", "first"], help="passed to seqrec compare")
    parser.add_argument("--debiased", action="store_true", help="also dNDCG@10 and dHR@10")
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="config override for every transformer, e.g. --set epochs=50")
    args = parser.parse_args()
    if args.dataset == "ml100k":
        if not (SHARED / "ml-100k").exists():
            sys.exit(f"{SHARED / 'ml-100k'} not found: this benchmark needs ../shared/data")
        data = ["--data", str(SHARED / "ml-100k"), "--format", "recbole"]
    else:
        data = ["--format", "movielens"]
    seeds = [int(s) for s in args.seeds.split(",")]
    RESULTS.mkdir(exist_ok=True)
    start, cpu_start = time.perf_counter(), os.times()
    answers = [compare(data, args, seed) for seed in seeds]
    wall = time.perf_counter() - start
    cpu_end = os.times()
    cpu_seconds = (cpu_end.children_user - cpu_start.children_user
                   + cpu_end.children_system - cpu_start.children_system)
    names = [row["model"] for row in answers[0]["models"]]
    columns = ["recall@10", "ndcg@10", "coverage@10", "arp@10", "novelty@10"]
    if args.debiased:
        columns += ["dndcg@10", "dhit_rate@10"]
    per_model = {name: {c: [next(r for r in a["models"] if r["model"] == name)[c] for a in answers]
                        for c in columns + ["seconds"]} for name in names}
    means = np.array([[np.mean(per_model[n]["ndcg@10"]), np.mean(per_model[n]["coverage@10"])]
                      for n in names])
    on_front = pareto_front(means)
    plot = RESULTS / f"pareto_{args.dataset}.png"
    plot_front(names, means[:, 1], means[:, 0], on_front, plot,
               title=f"{args.dataset}, time split (mean of {len(seeds)} seed(s))")
    header = ["model", *(c.replace("hit_rate", "HR").replace("ndcg", "NDCG").replace(
        "recall", "Recall") for c in columns), "Pareto-optimal (means)", "s per run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, front in zip(names, on_front, strict=True):
        cells = [mean_sd(per_model[name][c], 2 if c == "novelty@10" else 4) for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {'yes' if front else ''} | {np.mean(per_model[name]['seconds']):.0f} |")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    text = (f"### Time split, {args.dataset}, last {args.test_days:g} days as test\n\n"
            f"Command: `python benchmarks/time_split.py {' '.join(sys.argv[1:])}` (runs "
            f"`seqrec compare ... --split time --test-days {args.test_days:g} --set seed=S` per "
            f"seed)  \n"
            f"Commit {commit}; date: {time.strftime('%Y-%m-%d %H:%M')}; machine: "
            f"{len(os.sched_getaffinity(0))} cores, {cpu_model()}; seqrec {seqrec.__version__}, "
            f"torch {torch.__version__}; seeds {args.seeds} (mean ± SD, ddof 0); wall {wall:.0f} s, "
            f"CPU {cpu_seconds:.0f} s; load average at the end {load}\n\n"
            + "\n".join(lines) + f"\n\n![Pareto front]({plot.relative_to(Path(__file__).parent)})\n")
    write_atomic(RESULTS / f"time_split_{args.dataset}.md", text)
    print(text)


if __name__ == "__main__":
    main()

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
import subprocess
import sys
import time
from pathlib import Path

import torch
from _common import cpu_model  # noqa: E402  (benchmarks/ helper)

import seqrec

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["ml100k", "movielens"], default="ml100k")
    parser.add_argument("--models", default="popular,sasrec,sasrec_ss,gsasrec,bert4rec,esasrec")
    parser.add_argument("--test-days", type=float, default=28.0)
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="config override for every transformer, e.g. --set epochs=50")
    args = parser.parse_args()
    if args.dataset == "ml100k":
        if not (SHARED / "ml-100k").exists():
            sys.exit(f"{SHARED / 'ml-100k'} not found: this benchmark needs ../shared/data")
        data = ["--data", str(SHARED / "ml-100k"), "--format", "recbole"]
    else:
        data = ["--format", "movielens"]
    RESULTS.mkdir(exist_ok=True)
    plot = RESULTS / f"pareto_{args.dataset}.png"
    command = [sys.executable, "-m", "seqrec", "compare", *data, "--split", "time",
               "--test-days", str(args.test_days), "--models", args.models, "--k", "10",
               "--plot", str(plot), "--json", "--quiet"]
    for item in args.sets:
        command += ["--set", item]
    start = time.perf_counter()
    answer = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    wall = time.perf_counter() - start
    lines = ["| model | Recall@10 | NDCG@10 | coverage@10 | ARP@10 | novelty@10 | Pareto-optimal | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for row in answer["models"]:
        lines.append(f"| {row['model']} | {row['recall@10']:.4f} | {row['ndcg@10']:.4f} | "
                     f"{row['coverage@10']:.4f} | {row['arp@10']:.4f} | {row['novelty@10']:.2f} | "
                     f"{'yes' if row['pareto_optimal'] else ''} | {row['seconds']:.0f} |")
    cpu = cpu_model()
    text = (f"### Time split, {args.dataset}, last {args.test_days:g} days as test\n\n"
            f"Command: `python benchmarks/time_split.py {' '.join(sys.argv[1:])}` (runs "
            f"`seqrec compare ... --split time --test-days {args.test_days:g}`)  \n"
            f"Date: {time.strftime('%Y-%m-%d')}; machine: {len(__import__('os').sched_getaffinity(0))} cores, "
            f"{cpu}; seqrec {seqrec.__version__}, torch {torch.__version__}; wall {wall:.0f} s\n\n"
            + "\n".join(lines) + f"\n\n![Pareto front]({plot.relative_to(Path(__file__).parent)})\n")
    (RESULTS / f"time_split_{args.dataset}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

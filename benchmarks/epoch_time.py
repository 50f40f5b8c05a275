"""Seconds per training epoch of presets on one train part: how much a loss's candidate layout
costs (e.g. gBCE's negatives per target position against eSASRec's per sequence, both 256).

Each preset is fit for ``--epochs`` epochs without validation through ``seqrec.train.fit`` (the
real training loop); the table gives the median wall and CPU seconds per epoch and the ratio to
the first preset. Datasets: ``ml100k`` (the train part of the time split of
``benchmarks/time_split.py``, last 28 days as test) and ``beauty`` (leave-one-out train part, as
``benchmarks/loo.py``).

    python benchmarks/epoch_time.py --dataset ml100k --models esasrec,sasrec_ss,gsasrec --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from _common import cpu_model  # noqa: E402  (benchmarks/ helper)

import seqrec
from seqrec.build import build_parts
from seqrec.config import parse_set, preset
from seqrec.data import leave_one_out, load_dataset, load_s3rec, time_split
from seqrec.train import fit

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).parent / "results"


def train_part(name: str):
    """``(dataset, train sequences)`` of the named benchmark split."""
    if name == "ml100k":
        dataset = load_dataset(SHARED / "ml-100k", "recbole")
        return dataset, time_split(dataset, last_days=28, filter_already_seen=True).train
    dataset = load_s3rec(SHARED / "s3rec" / "Beauty.txt")
    return dataset, leave_one_out(dataset).train


def epoch_seconds(name: str, overrides: dict, dataset, train, epochs: int) -> dict:
    """Median wall / CPU seconds per epoch of preset ``name`` and its candidate layout."""
    config = preset(name, **{**overrides, "epochs": epochs, "patience": 0})
    torch.manual_seed(config.seed)
    parts = build_parts(config, dataset.n_items)
    cpu = [time.process_time()]
    result = fit(parts, config, train.items, train.offsets,
                 on_epoch=lambda _record: cpu.append(time.process_time()))
    return {"model": name, "layout": parts.layout, "n_negatives": config.n_negatives,
            "wall": statistics.median(r.seconds for r in result.history),
            "cpu": statistics.median(b - a for a, b in zip(cpu, cpu[1:], strict=False))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["ml100k", "beauty"], default="ml100k")
    parser.add_argument("--models", default="esasrec,sasrec_ss,gsasrec")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--tag", default="", help="suffix of the result file name")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset, train = train_part(args.dataset)
    rows = [epoch_seconds(m, parse_set(args.set), dataset, train, args.epochs)
            for m in args.models.split(",")]
    lines = [f"| model | candidate layout | negatives | s/epoch (wall) | s/epoch (CPU) | CPU vs {rows[0]['model']} |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['layout']} | {r['n_negatives']} | {r['wall']:.2f} | "
                     f"{r['cpu']:.2f} | {r['cpu'] / rows[0]['cpu']:.2f}x |")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = (f"### Seconds per training epoch, {args.dataset}\n\n"
            f"Command: `python benchmarks/epoch_time.py {' '.join(__import__('sys').argv[1:])}`  \n"
            f"Date: {time.strftime('%Y-%m-%d %H:%M')}; {args.threads} torch thread(s), "
            f"{len(os.sched_getaffinity(0))} cores, {cpu_model()}; seqrec {seqrec.__version__}, "
            f"torch {torch.__version__}; load average at the end {load} (the cores are shared: "
            f"CPU seconds are steadier than wall seconds); median of {args.epochs} epochs\n\n"
            + "\n".join(lines) + "\n")
    RESULTS.mkdir(exist_ok=True)
    suffix = f"_{args.tag}" if args.tag else ""
    (RESULTS / f"epoch_time_{args.dataset}{suffix}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

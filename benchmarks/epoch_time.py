"""Seconds per training epoch of presets on one train part: how much a loss's candidate layout
costs (e.g. gBCE's negatives per target position against eSASRec's per sequence, both 256).

Each preset is fit for ``--epochs`` epochs without validation through ``seqrec.train.fit`` (the
real training loop); the table gives the median wall and CPU seconds per epoch and the ratio to
the first preset. Datasets: ``ml100k`` (the train part of the time split of
``benchmarks/time_split.py``, last 28 days as test) and ``beauty`` (leave-one-out train part, as
``benchmarks/loo.py``).

    python benchmarks/epoch_time.py --dataset ml100k --models esasrec,sasrec_ss,gsasrec --threads 1

``--profile``: one epoch of each preset under ``torch.profiler``, its self CPU time in groups of
operators (matmuls; row gathers and scatters; random draws; optimiser; the rest: element-wise
and reductions) beside the epoch's arithmetic floor of ``train_speed.py`` (dense matmul FLOPs at
the matmul rate measured in the same process), written to ``epoch_profile_<dataset>[_tag].md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import cpu_model  # noqa: E402  (benchmarks/ helper)

import seqrec
from seqrec.build import build_parts
from seqrec.config import parse_set, preset
from seqrec.data import leave_one_out, load_dataset, load_s3rec, time_split
from seqrec.files import write_atomic
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


GROUPS = {  # operator name (without "aten::") -> group of the --profile table
    "matmul": ("mm", "bmm", "addmm", "baddbmm", "matmul", "linear"),
    "row gathers and scatters": ("index", "_index_put_impl_", "index_put_", "index_select",
                                 "index_copy_", "index_add_", "gather", "scatter_add_",
                                 "scatter_", "embedding_dense_backward", "masked_select",
                                 "nonzero", "_coalesce", "unique_dim", "_unique2", "sort"),
    "random draws": ("random_", "uniform_", "bernoulli_", "randint", "normal_"),
}


def profile_epoch(name: str, overrides: dict, dataset, train) -> dict:
    """Self CPU seconds of one epoch of preset ``name`` by operator group, and its floor."""
    from torch.profiler import ProfilerActivity, profile
    from train_speed import epoch_flops, matmul_rate

    config = preset(name, **{**overrides, "epochs": 1, "patience": 0})
    torch.manual_seed(config.seed)
    parts = build_parts(config, dataset.n_items)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.process_time()
        fit(parts, config, train.items, train.offsets)
        cpu = time.process_time() - start
    groups = dict.fromkeys([*GROUPS, "optimiser step", "element-wise, reductions, rest"], 0.0)
    for event in prof.key_averages():
        op = event.key.removeprefix("aten::")
        seconds = event.self_cpu_time_total / 1e6
        group = next((g for g, ops in GROUPS.items() if op in ops), None)
        if group is None:
            group = ("optimiser step" if "adam" in op.lower() or "Optimizer" in event.key
                     else "element-wise, reductions, rest")
        groups[group] += seconds
    lengths = np.minimum(np.diff(train.offsets), config.max_seq_len + 1) - 1
    real = lengths[lengths > 0]
    floor = epoch_flops(config, int(real.sum()), float(real.mean())) / matmul_rate()
    return {"model": name, "dim": config.dim, "cpu": cpu, "floor": floor, "groups": groups,
            "profiled": sum(groups.values())}


def profile_main(args: argparse.Namespace, dataset, train) -> None:
    rows = [profile_epoch(m, parse_set(args.set), dataset, train) for m in args.models.split(",")]
    names = list(rows[0]["groups"])
    lines = ["| model | dim | epoch CPU s (profiled) | floor s | epoch / floor | "
             + " | ".join(f"{n} %" for n in names) + " |",
             "|---|---|---|---|---|" + "---|" * len(names)]
    for r in rows:
        shares = " | ".join(f"{100 * r['groups'][n] / r['profiled']:.0f}" for n in names)
        lines.append(f"| {r['model']} | {r['dim']} | {r['cpu']:.1f} | {r['floor']:.2f} | "
                     f"{r['cpu'] / r['floor']:.1f}× | {shares} |")
    text = (f"### Where an epoch's CPU time goes, {args.dataset}\n\n"
            f"Command: `python benchmarks/epoch_time.py {' '.join(sys.argv[1:])}`  \n"
            f"Date: {time.strftime('%Y-%m-%d %H:%M')}; {args.threads} torch thread(s), "
            f"{cpu_model()}; load average at the end "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}. One epoch under torch.profiler "
            "(which adds its own overhead to the epoch CPU seconds); shares of self CPU time "
            "by operator group. Floor: dense matmul FLOPs of the epoch (forward + backward) "
            "at the matmul rate measured in this process (`train_speed.py`).\n\n"
            + "\n".join(lines) + "\n")
    suffix = f"_{args.tag}" if args.tag else ""
    write_atomic(RESULTS / f"epoch_profile_{args.dataset}{suffix}.md", text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["ml100k", "beauty"], default="ml100k")
    parser.add_argument("--models", default="esasrec,sasrec_ss,gsasrec")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--tag", default="", help="suffix of the result file name")
    parser.add_argument("--profile", action="store_true",
                        help="one profiled epoch per preset: CPU time by operator group")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset, train = train_part(args.dataset)
    if args.profile:
        profile_main(args, dataset, train)
        return
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
    write_atomic(RESULTS / f"epoch_time_{args.dataset}{suffix}.md", text)
    print(text)


if __name__ == "__main__":
    main()

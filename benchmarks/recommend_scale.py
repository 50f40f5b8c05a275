"""Recommend-all at production scale: top-10 for every user over a large catalogue, in bounded memory.

A synthetic log (``--users`` users, ``--per-user`` interactions each on average, Zipf item
popularity over ``--items`` items; every item is in the catalogue, drawn or not) is indexed, an
eSASRec model (dim ``--dim``, max_seq_len 50) is fitted for one epoch on the first
``--fit-users`` users only (speed and memory do not depend on how well it is trained), every
user's whole history is set as the model's serving state, and
``model.recommend(every user, k=10, filter_viewed=True)`` is timed once: wall and CPU seconds,
and the peak resident set size of the process during the call (``VmHWM`` reset just before it)
next to the resident size before it. The catalogue is scored in chunks chosen from the memory
budget (``seqrec.rank.rank_rows``), so the peak should not grow with the catalogue.

    python benchmarks/recommend_scale.py --users 1000000 --items 1000000 --threads 1

One torch thread: on shared cores a second OpenMP thread mostly spins (measured: 10,000 users
took 157 CPU-s with 2 threads beside two other jobs, 25 CPU-s per 10,000 with 1).

With ``--users`` smaller than the catalogue needs to be realistic, the time for more users is
linear in the users (each block of users is scored alone); the script never extrapolates:
it records what ran.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import busiest_processes, cpu_model, reset_peak, status_kib, synthetic_interactions  # noqa: E402

import seqrec
from seqrec.data.build import build_dataset
from seqrec.data.catalogue import IdIndex
from seqrec.files import write_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "recommend_scale.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--per-user", type=int, default=20, help="mean interactions per user")
    parser.add_argument("--fit-users", type=int, default=2_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    frame = synthetic_interactions(args.users * args.per_user, args.users, args.items)
    catalogue = IdIndex(np.arange(args.items, dtype=np.int64) * 11 + 1, start=1)
    dataset = build_dataset(frame, catalogue=catalogue)
    del frame
    prepare_s = time.perf_counter() - start

    model = seqrec.esasrec(dim=args.dim, max_seq_len=50, epochs=1, patience=0, seed=0)
    fit_rows = np.arange(min(args.fit_users, dataset.sequences.n_sequences))
    model.fit(dataset, dataset.sequences.select(fit_rows))
    model.set_histories(dataset.sequences)
    users = dataset.user_index.ids
    gc.collect()

    peak_reset = reset_peak()
    rss_before = status_kib("VmRSS") / 1024
    wall, cpu = time.perf_counter(), time.process_time()
    recs = model.recommend(users, k=10, filter_viewed=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = status_kib("VmHWM") / 1024
    assert len(recs) == 10 * len(users), len(recs)

    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    rows = [
        ("users / catalogue items", f"{len(users):,} / {dataset.n_items:,}"),
        ("interactions (histories served)", f"{len(dataset.sequences.items):,}"),
        ("model", f"esasrec, dim {args.dim}, max_seq_len 50, {args.threads} torch thread(s)"),
        ("recommend-all wall", f"{wall:,.1f} s"),
        ("recommend-all CPU (user + system)", f"{cpu:,.1f} s"),
        ("users per CPU second", f"{len(users) / cpu:,.0f}"),
        ("resident set before the call", f"{rss_before:,.0f} MiB"),
        ("peak resident set during the call", f"{peak:,.0f} MiB"
         + ("" if peak_reset else " (VmHWM could not be reset: peak of the whole process)")),
        ("peak rise over the resident set before", f"{peak - rss_before:,.0f} MiB"),
        ("preparing the log and the index (not timed above)", f"{prepare_s:,.0f} s"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    text = f"""### Recommend-all, {len(users):,} users × {dataset.n_items:,} items

Command: `python benchmarks/recommend_scale.py {' '.join(sys.argv[1:])}`;
Commit {commit}; date {datetime.datetime.now():%Y-%m-%d %H:%M}; machine: {os.cpu_count()} cores,
{cpu_model()}; seqrec {seqrec.__version__}, torch {torch.__version__}; load average at the end
{load}; busiest other processes: {busiest_processes()}.

Top-10 for every user, seen items filtered, the whole catalogue scored exactly in chunks
(`seqrec.rank.rank_rows`); the answer is a DataFrame of {len(recs):,} rows in external ids.

| measure | value |
|---|---|
{table}
"""
    print(text)
    if not args.no_write:
        write_atomic(RESULTS, text)


if __name__ == "__main__":
    main()

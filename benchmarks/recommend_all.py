"""Time to recommend top-10 for every user of a MovieLens-1M-sized log, seen items filtered.

A synthetic log of ML-1M's shape (6,040 users, 3,706 items, 1,000,209 interactions, Zipf item
popularity, users' lengths drawn like ML-1M's: at least 20 each) is built, eSASRec (dim 64,
max_seq_len 200) is fitted for one epoch (speed does not depend on how well it is trained), and
``model.recommend(all users, k=10, filter_viewed=True)`` is timed: best and median of 5 runs.

    python benchmarks/recommend_all.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import pandas as pd
import torch
from _common import cpu_model  # noqa: E402  (benchmarks/ helper)

import seqrec


def synthetic_ml1m(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_users, n_items, n_total = 6_040, 3_706, 1_000_209
    lengths = 20 + rng.pareto(1.2, n_users)
    lengths = np.maximum(20, np.round(lengths / lengths.sum() * n_total)).astype(np.int64)
    users = np.repeat(np.arange(n_users), lengths)
    popularity = 1.0 / np.arange(1, n_items + 1)
    items = rng.choice(n_items, size=len(users), p=popularity / popularity.sum())
    return pd.DataFrame({"user_id": users, "item_id": items, "timestamp": np.arange(len(users))})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = seqrec.build_dataset(synthetic_ml1m())
    model = seqrec.build_model("esasrec", dim=64, max_seq_len=200, epochs=1, patience=0)
    model.fit(dataset)
    users = dataset.user_index.ids
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        recs = model.recommend(users, k=10, filter_viewed=True)
        times.append(time.perf_counter() - start)
    assert len(recs) == 10 * len(users)
    cpu = cpu_model()
    print(f"### Recommend-all, MovieLens-1M size\n\n"
          f"Command: `python benchmarks/recommend_all.py {' '.join(sys.argv[1:])}`  \n"
          f"Date: {time.strftime('%Y-%m-%d')}; machine: {os.cpu_count()} cores, {cpu}; "
          f"{torch.get_num_threads()} torch threads; seqrec {seqrec.__version__}, torch {torch.__version__}\n\n"
          f"| users | items | interactions | k | best s | median s | target |\n|---|---|---|---|---|---|---|\n"
          f"| {dataset.n_users:,} | {dataset.n_items:,} | {len(dataset.sequences.items):,} | 10 | "
          f"{min(times):.2f} | {statistics.median(times):.2f} | < 2 s |")


if __name__ == "__main__":
    main()

"""Approximate retrieval at 1 M items: recall@10 against exact ranking, speed-up, build time and
memory of the FAISS index (seqrec.ann), through the library's two ranking paths.

The item table is synthetic and *clustered*: 1,000 Gaussian centres in 64 dimensions
(N(0, 1) coordinates), each item a centre plus N(0, 0.6²) noise, its norm then scaled by
lognormal(0, 0.3) (trained tables give popular items larger norms), the whole divided by 8.
Queries (stand-ins for hidden states) are drawn the same way from random centres. Lists are
top-10 by inner product through ``rank.rank_rows`` (exact: every item scored in chunks) and
``ann.rank_rows_ann`` (index candidates, exact masks and rescoring, exact fallback), both with
the seen filter on (each query has 20 "seen" items from its own cluster) and without. The
encoder is left out: it costs the same on both paths. One torch thread and one FAISS thread.

    python benchmarks/ann.py                         # writes benchmarks/results/ann.md
    python benchmarks/ann.py --items 100000 --queries 500 --out -   # a quick look
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from _common import busiest_processes, cpu_model, status_kib  # noqa: E402  (benchmarks/ helper)

import seqrec
from seqrec.ann import AnnConfig, build_index, index_bytes, rank_rows_ann
from seqrec.files import write_atomic
from seqrec.filters import Filters, ItemSets
from seqrec.rank import rank_rows

K = 10


def clustered(n: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(n, dim)`` float32 rows: a random centre + N(0, 0.6²) noise, norm × lognormal(0, 0.3)."""
    rows = centres[rng.integers(len(centres), size=n)]
    rows = rows + 0.6 * rng.standard_normal(rows.shape, dtype=np.float32)
    return rows * np.exp(0.3 * rng.standard_normal((n, 1), dtype=np.float32)) / 8


@dataclass(frozen=True)
class TableScorer:
    """Fixed queries against a fixed table, scored as ``SequentialRecommender`` scores."""

    queries: torch.Tensor  # (n_rows, dim)
    table: torch.Tensor  # (n_items + 1, dim), row 0 = PAD

    def encode(self, rows: np.ndarray) -> torch.Tensor:
        return self.queries[torch.from_numpy(rows)]

    def score(self, query: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        scores = query @ self.table[start:stop].T  # (n, stop - start)
        if start == 0:
            scores[:, 0] = float("-inf")
        return scores

    def score_candidates(self, query: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        scores = (self.table[items] @ query[:, :, None]).squeeze(-1)  # (n, n_candidates)
        return scores.masked_fill(items == 0, float("-inf"))


class FallbackCount(logging.Handler):
    """Counts the rows ``rank_rows_ann`` sent to the exact path (from its debug line)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.rows = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.rows += int(record.args[0])  # type: ignore[index]


def timed(run):  # noqa: ANN001, ANN201
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def recall(approximate: torch.Tensor, exact: torch.Tensor) -> float:
    hits = [len(set(a) & set(e)) / len(e) for a, e in zip(approximate.tolist(), exact.tolist(),
                                                          strict=True)]
    return float(np.mean(hits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--n-probe", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--hnsw", action="store_true", help="also build HNSW32 (slow to build)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ann.md"), help="'-': stdout only")
    args = parser.parse_args()
    import faiss

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    load_before, others = os.getloadavg(), busiest_processes()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((1_000, args.dim), dtype=np.float32)
    table = torch.from_numpy(np.vstack([np.zeros((1, args.dim), np.float32),
                                        clustered(args.items, centres, rng)]))
    queries = torch.from_numpy(clustered(args.queries, centres, rng) * 8)
    scorer = TableScorer(queries, table)
    # the hardest seen sets: each query's exact top 20 (its list is then exact ranks 21..30)
    top_20 = rank_rows(scorer, args.queries, args.items, 20, batch_size=256).items.numpy()
    seen = ItemSets.from_lists(list(top_20))
    cases = {"none": Filters(), "seen = exact top 20": Filters(seen=seen)}
    exact = {}
    rows_out = []
    for name, filters in cases.items():
        exact[name], wall, cpu = timed(lambda f=filters: rank_rows(
            scorer, args.queries, args.items, K, f, batch_size=256))
        rows_out.append(("exact (rank_rows)", "-", name, 1.0, wall, cpu, 0))
    configs = [AnnConfig(kind="ivf", n_probe=max(args.n_probe))]
    if args.hnsw:
        configs.append(AnnConfig(kind="hnsw", hnsw_m=32, ef_construction=200))
    builds = []
    counter = FallbackCount()
    logging.getLogger("seqrec.ann").addHandler(counter)
    logging.getLogger("seqrec.ann").setLevel(logging.DEBUG)
    for config in configs:
        rss = status_kib("VmRSS")
        index, wall, cpu = timed(lambda c=config: build_index(table, c))
        size = len(index_bytes(index, table))
        builds.append((index.config, wall, cpu, (status_kib("VmRSS") - rss) / 1024,
                       size / 2**20))
        param = "n_probe" if config.kind == "ivf" else "ef_search"
        for number in args.n_probe if config.kind == "ivf" else (64, 128, 256):
            variant = replace(index, config=replace(index.config, **{param: number}))
            for name, filters in cases.items():
                counter.rows = 0
                got, wall, cpu = timed(lambda f=filters, v=variant: rank_rows_ann(
                    scorer, v, args.queries, args.items, K, f, batch_size=256))
                label = (f"IVF{index.config.n_lists},Flat" if config.kind == "ivf"
                         else f"HNSW{config.hnsw_m},Flat")
                default = number == getattr(AnnConfig(), param)
                rows_out.append((label, f"{param}={number}{' (default)' if default else ''}", name,
                                 recall(got.items, exact[name].items), wall, cpu, counter.rows))
    load_after = os.getloadavg()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    exact_wall = {name: w for label, _, name, _, w, _, _ in rows_out if label.startswith("exact")}
    lines = [
        "### Approximate retrieval (seqrec.ann) vs exact ranking",
        "",
        f"Command: `python benchmarks/ann.py {' '.join(sys.argv[1:])}`  ",
        f"Commit: {head} (with the working tree of this change); date: "
        f"{time.strftime('%Y-%m-%d %H:%M')}; machine: {os.cpu_count()} cores, {cpu_model()}; "
        f"1 torch thread, 1 FAISS thread; seqrec {seqrec.__version__}, torch "
        f"{torch.__version__}, faiss {faiss.__version__}  ",
        f"Also running on the same 2 cores (at the start): {others} (load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after): wall times are "
        "noisy, CPU seconds less so.  ",
        f"Data: {args.items:,} × {args.dim} clustered synthetic item table (1,000 Gaussian "
        f"clusters, see the script), {args.queries:,} query vectors from the same clusters; "
        f"top-{K}, blocks of 256 rows. Recall@10 = share of the exact list's items in the ANN "
        "list (the final, rescored list).",
        "",
        "| path | search setting | filter | recall@10 | wall s | CPU s | speed-up (wall) | "
        "rows sent to exact |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, setting, name, rec, wall, cpu, fell in rows_out:
        lines.append(f"| {label} | {setting} | {name} | {rec:.4f} | {wall:.2f} | {cpu:.2f} | "
                     f"{exact_wall[name] / wall:.1f}× | {fell} |")
    lines += ["", "| index | build wall s | build CPU s | RSS growth MiB | file MiB |",
              "|---|---|---|---|---|"]
    for config, wall, cpu, rss, size in builds:
        label = f"IVF{config.n_lists},Flat" if config.kind == "ivf" else f"HNSW{config.hnsw_m},Flat"
        lines.append(f"| {label} | {wall:.1f} | {cpu:.1f} | {rss:.0f} | {size:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out != "-":
        write_atomic(args.out, text)


if __name__ == "__main__":
    main()

"""Benchmark: training step cost against catalogue size, sparse vs dense item-table updates.

Run: ``python benchmarks/step_cost.py [--steps 30] [--threads 1] [--sizes 10000,100000,1000000]``

One training step of the esasrec preset (dim 64, 1 LiGR layer, batch 128 sequences of 50 items,
256 negatives drawn per sequence, item-table dropout 0.2) on synthetic sequences whose items are
uniform over the catalogue, for catalogues of 10 k to 10 M items, with ``item_updates="sparse"``
(the rows a step touches, lazy Adam) and ``"dense"`` (the whole table, Adam). The batches are the
same for every catalogue size (indices drawn once and scaled), so only the table grows. Each
configuration runs in its own subprocess (peak RSS belongs to it); 5 warm-up steps, then the
median wall and CPU time of ``--steps`` steps (``train_step``: sampling, forward, backward,
optimiser). Writes ``benchmarks/results/step_cost.md`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import cpu_model, status_kib  # noqa: E402  (benchmarks/ helper)

from seqrec.files import write_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "step_cost.md"
BATCH, SEQ_LEN, WARMUP = 128, 50, 5


def worker(spec: dict) -> dict:
    import numpy as np
    import torch
    from lightning_fabric import Fabric

    from seqrec.build import build_parts
    from seqrec.config import preset
    from seqrec.train import TrainingModule, make_optimizers, train_step

    torch.set_num_threads(spec["threads"])
    n_items = spec["items"]
    rng = np.random.default_rng(0)
    n_rows = BATCH * 4  # four different batches, cycled
    # the same relative positions for every catalogue size: only the table grows
    unit = rng.random(n_rows * (SEQ_LEN + 1))
    items = (1 + np.floor(unit * n_items)).astype(np.int64)
    offsets = np.arange(0, len(items) + 1, SEQ_LEN + 1, dtype=np.int64)
    config = preset("esasrec", dim=64, max_seq_len=SEQ_LEN, batch_size=BATCH,
                    item_updates=spec["updates"], seed=0)
    torch.manual_seed(0)
    parts = build_parts(config, n_items)
    module = TrainingModule(parts)
    optimizers = make_optimizers(module, config)
    fabric = Fabric(accelerator="cpu", devices=1)
    module.train()
    generator = torch.Generator().manual_seed(0)
    batches = [np.arange(i * BATCH, (i + 1) * BATCH) for i in range(4)]
    wall, cpu = [], []
    for step in range(WARMUP + spec["steps"]):
        rows = batches[step % 4]
        start, start_cpu = time.perf_counter(), time.process_time()
        train_step(module, parts, rows, items, offsets, optimizers, fabric, rng, generator)
        if step >= WARMUP:
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    draws = SEQ_LEN + 1 + 256  # per sequence: window and its negatives
    distinct = n_items * (1 - (1 - 1 / n_items) ** (BATCH * draws))  # expected rows touched
    return {**spec, "step_s": statistics.median(wall), "step_cpu_s": statistics.median(cpu),
            "peak_rss_mib": status_kib("VmHWM") / 1024, "rows_touched": distinct}


def _run(spec: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {**spec, "crashed": done.stderr.strip()[-300:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", default="10000,100000,1000000,10000000")
    parser.add_argument("--dense-max", type=int, default=1_000_000,
                        help="largest catalogue timed with dense updates")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    for updates in ("sparse", "dense"):
        for n_items in sizes:
            if updates == "dense" and n_items > args.dense_max:
                continue
            spec = dict(items=n_items, updates=updates, steps=args.steps, threads=args.threads)
            results.append(_run(spec))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    base = {r["updates"]: r["step_s"] for r in results if r["items"] == sizes[0] and "step_s" in r}
    lines = ["| item updates | catalogue | rows a step touches (expected) | step wall (median) | "
             f"step CPU (median) | × the {sizes[0]:,}-item step | peak RSS |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        if "crashed" in r:
            lines.append(f"| {r['updates']} | {r['items']:,} | | crashed: {r['crashed']} | | | |")
            continue
        ratio = r["step_s"] / base[r["updates"]]
        touched = f"{r['rows_touched']:,.0f}" if r["updates"] == "sparse" else "all"
        lines.append(f"| {r['updates']} | {r['items']:,} | {touched} | {r['step_s'] * 1000:.1f} ms | "
                     f"{r['step_cpu_s'] * 1000:.1f} ms | {ratio:.2f}× | "
                     f"{r['peak_rss_mib']:,.0f} MiB |")
    table = "\n".join(lines)
    print(table)
    if args.no_write:
        return
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    load = os.getloadavg()
    write_atomic(RESULTS, f"""## Training step cost against catalogue size

Command: `python benchmarks/step_cost.py {' '.join(sys.argv[1:])}` ({datetime.date.today()},
commit {commit}). Machine: {os.cpu_count()} CPUs ({cpu_model()}), shared (load average at the end
{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}); {args.threads} torch thread(s) per worker.

esasrec preset (dim 64, 1 LiGR layer, batch {BATCH} × {SEQ_LEN} items, 256 negatives per
sequence, item dropout 0.2); synthetic uniform items; the same batches for every catalogue size.
Median of {args.steps} steps after {WARMUP} warm-up steps, each configuration in its own process.
A sparse step's own work grows with the rows it touches (gathers, item dropout, lazy Adam), and
a small catalogue caps those rows (a batch draws about 39 k item indices): from 1 M to 10 M items
both steps touch the same rows, so that ratio is the cost of the table's size alone.

{table}
""")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

"""Benchmark: how cost grows with interactions and catalogue size (issue 5, part 4).

Run: ``python benchmarks/scaling.py [--batches 100] [--softmax-batches 20] [--threads 1] [--quick]``

Synthetic logs: item popularity is power-law (Zipf, exponent 1 over item ranks), users uniform
(``interactions / 20`` users, so about 20 events per user), timestamps increasing per user (the log
is generated in time order: sorted uniform draws over one year). For each grid point, in its own
subprocess (so the peak resident set size belongs to that configuration only):

(a) ``build_dataset`` time (best of ``--build-repeats``) and its extra peak memory (rise of
    ``VmHWM`` over the resident size just before the call, after resetting the peak through
    ``/proc/self/clear_refs``, as in ``benchmarks/build_sequences.py``);
(b) training time of one epoch of the esasrec preset (dim 64, 1 LiGR layer, batch 128,
    max_seq_len 50, 256 negatives per sequence, sparse item-table updates) with sampled softmax
    and, where it fits, full softmax (``loss="softmax"``, dense updates).
    When an epoch has more batches than ``--batches`` (``--softmax-batches`` for full softmax),
    only that many batches are trained, on a random subset of the training rows, and the epoch
    time is **extrapolated** linearly (time × epoch batches / timed batches); the table says which.
    Timing is ``FitResult.history[0].seconds`` (training loop only, first batch included).
    Memory: the process's peak RSS and the rise of the peak over the RSS just before ``fit``;
(c) a full softmax over a catalogue too large for memory is refused by
    ``seqrec.memory.check_softmax_memory`` before training starts; the worker catches the
    ``MemoryError`` and the table prints its message (with the GiB estimate).

Prints a table and writes ``benchmarks/results/scaling.md`` (unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from _common import cpu_model, reset_peak, status_kib, synthetic_interactions  # noqa: E402  (benchmarks/ helper)

from seqrec.files import write_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "scaling.md"
EVENTS_PER_USER = 20

# (interactions, nominal catalogue, losses): interactions grow at 100k items, catalogue grows at 1M
# interactions; full softmax only where it is affordable on 2 CPU cores, and where it is refused.
GRID: list[tuple[int, int, tuple[str, ...]]] = [
    (100_000, 100_000, ("sampled_softmax", "softmax")),
    (1_000_000, 100_000, ("sampled_softmax", "softmax")),
    (10_000_000, 100_000, ("sampled_softmax",)),
    (1_000_000, 10_000, ("sampled_softmax", "softmax")),
    (1_000_000, 1_000_000, ("sampled_softmax", "softmax")),
    (10_000_000, 1_000_000, ("sampled_softmax", "softmax")),
    (50_000_000, 1_000_000, ("sampled_softmax",)),
]
QUICK_GRID: list[tuple[int, int, tuple[str, ...]]] = [
    (100_000, 10_000, ("sampled_softmax", "softmax")),
    (1_000_000, 1_000_000, ("softmax",)),  # ~217k items drawn: refused up front
]





# ---- worker: one configuration in this process -----------------------------------------------
def worker(spec: dict) -> dict:
    import numpy as np
    import torch

    from seqrec.batches import bucketed_batches
    from seqrec.config import preset
    from seqrec.data import build_dataset
    from seqrec.recommender import SequentialRecommender

    torch.set_num_threads(spec["threads"])
    n, n_items_nominal, loss = spec["interactions"], spec["items"], spec["loss"]
    out: dict = {**spec}
    frame = synthetic_interactions(n, max(n // EVENTS_PER_USER, 1), n_items_nominal,
                                   sorted_times=True)

    # (a) build_dataset
    times, extra = [], []
    peak_reset = False
    for _ in range(spec["build_repeats"]):
        gc.collect()
        peak_reset = reset_peak()
        rss_before, hwm_before = status_kib("VmRSS"), status_kib("VmHWM")
        start = time.perf_counter()
        dataset = build_dataset(frame)
        times.append(time.perf_counter() - start)
        extra.append((status_kib("VmHWM") - (rss_before if peak_reset else hwm_before)) / 1024)
        if len(times) < spec["build_repeats"]:
            del dataset
    out.update(build_s=min(times), build_extra_mib=max(extra), peak_reset=peak_reset,
               n_users=dataset.n_users, n_items=dataset.n_items)
    del frame
    gc.collect()

    # (b) training: one epoch, or a fixed number of batches on a random subset of rows
    config = preset("esasrec", dim=64, n_layers=1, n_heads=1, max_seq_len=50, batch_size=128,
                    n_negatives=256, loss=loss, epochs=1, patience=0, seed=0)
    cap = spec["softmax_batches"] if loss == "softmax" else spec["batches"]
    sequences = dataset.sequences
    lengths = np.diff(sequences.offsets)
    eligible = np.flatnonzero(lengths >= 2)  # next_item needs >= 2 items per row
    epoch_batches = len(bucketed_batches(np.where(lengths >= 2, lengths, 0),
                                         config.batch_size, np.random.default_rng(0)))
    rng = np.random.default_rng(1)
    if epoch_batches > cap:
        rows = np.sort(rng.choice(eligible, size=cap * config.batch_size, replace=False))
        train = sequences.select(rows)
    else:
        train = sequences
    timed_batches = len(bucketed_batches(np.where(np.diff(train.offsets) >= 2,
                                                  np.diff(train.offsets), 0),
                                         config.batch_size, np.random.default_rng(0)))
    out.update(epoch_batches=epoch_batches, timed_batches=timed_batches,
               extrapolated=timed_batches < epoch_batches)
    gc.collect()
    reset_peak()
    rss_before = status_kib("VmRSS")
    model = SequentialRecommender(config)
    start = time.perf_counter()
    try:
        result = model.fit(dataset, train)
    except MemoryError as error:
        out.update(refused=str(error), refused_after_s=time.perf_counter() - start)
    else:
        seconds = result.history[0].seconds
        out.update(refused=None, timed_s=seconds, per_batch_s=seconds / timed_batches,
                   epoch_s=seconds * epoch_batches / timed_batches,
                   final_loss=result.history[0].loss)
    out.update(train_extra_mib=(status_kib("VmHWM") - rss_before) / 1024,
               peak_rss_mib=status_kib("VmHWM") / 1024)
    from seqrec.memory import check_softmax_memory

    out["guard_estimate_gib"] = check_softmax_memory(
        config.replace(loss="softmax"), dataset.n_items, available=2**62) / 2**30
    return out


# ---- driver ----------------------------------------------------------------------------------
def _run_worker(spec: dict, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {**spec, "crashed": f"exit {proc.returncode}: {proc.stderr.strip()[-400:]}"}


def _fmt_s(seconds: float) -> str:
    return f"{seconds:,.2f} s" if seconds < 100 else f"{seconds:,.0f} s"


def _table(results: list[dict]) -> str:
    head = ("| interactions | items (nominal → in log) | users | build_dataset | build extra peak "
            "| loss | batches/epoch | timed batches | s/batch | epoch time | train extra peak "
            "| process peak RSS | full-softmax guard estimate |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in results:
        items = f"{r['items']:,} → {r.get('n_items', 0):,}"
        if "crashed" in r:
            lines.append(f"| {r['interactions']:,} | {r['items']:,} | | | | {r['loss']} | | | | "
                         f"crashed: {r['crashed']} | | | |")
            continue
        build = _fmt_s(r["build_s"]) if r["report_build"] else "—"
        build_mem = f"{r['build_extra_mib']:,.0f} MiB" if r["report_build"] else "—"
        loss = "sampled (256)" if r["loss"] == "sampled_softmax" else "full softmax"
        if r["refused"]:
            lines.append(f"| {r['interactions']:,} | {items} | {r['n_users']:,} | {build} | "
                         f"{build_mem} | {loss} | {r['epoch_batches']:,} | — | — | **refused "
                         f"after {r['refused_after_s']:.3f} s**: MemoryError: {r['refused']} | "
                         f"{r['train_extra_mib']:,.0f} MiB | {r['peak_rss_mib']:,.0f} MiB | "
                         f"{r['guard_estimate_gib']:.2f} GiB |")
            continue
        epoch = _fmt_s(r["epoch_s"]) + (" (extrapolated)" if r["extrapolated"] else " (measured)")
        lines.append(
            f"| {r['interactions']:,} | {items} | {r['n_users']:,} | {build} | {build_mem} | {loss} "
            f"| {r['epoch_batches']:,} | {r['timed_batches']:,} | {r['per_batch_s']:.3f} | {epoch} "
            f"| {r['train_extra_mib']:,.0f} MiB | {r['peak_rss_mib']:,.0f} MiB "
            f"| {r['guard_estimate_gib']:.2f} GiB |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100,
                        help="sampled softmax: batches timed when the epoch has more (extrapolate)")
    parser.add_argument("--softmax-batches", type=int, default=20,
                        help="full softmax: batches timed when the epoch has more (extrapolate)")
    parser.add_argument("--build-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per worker (1: stable timings on a shared machine)")
    parser.add_argument("--quick", action="store_true", help="tiny grid (smoke test, ~1 min)")
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return

    results = []
    wall = time.perf_counter()
    for interactions, items, losses in QUICK_GRID if args.quick else GRID:
        for i, loss in enumerate(losses):
            spec = dict(interactions=interactions, items=items, loss=loss, threads=args.threads,
                        batches=args.batches, softmax_batches=args.softmax_batches,
                        # the build is reported once per data size; later losses rebuild once
                        build_repeats=args.build_repeats if i == 0 else 1, report_build=i == 0)
            started = time.perf_counter()
            result = _run_worker(spec, args.threads)
            result["wall_s"] = time.perf_counter() - started
            results.append(result)
            print(f"  {interactions:,} interactions, {items:,} items, {loss}: "
                  f"{result['wall_s']:.0f} s wall", file=sys.stderr, flush=True)
    total = time.perf_counter() - wall
    table = _table(results)
    print(table)
    print(f"total wall time {total:.0f} s")
    if args.no_write:
        return
    import numpy
    import pandas
    import torch

    import seqrec

    load = os.getloadavg()
    command = "python " + " ".join(["benchmarks/scaling.py", *sys.argv[1:]])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
    text = f"""## How cost grows: interactions and catalogue size

Command: `{command}` ({datetime.date.today().isoformat()}, commit {commit or "?"}, total wall
time {total:.0f} s)

Machine: {os.cpu_count()} CPUs ({cpu_model()}), {_mem_total_gib():.0f} GiB RAM, shared with other
jobs (load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}: timings are noisy).
Python {platform.python_version()}, torch {torch.__version__}, numpy {numpy.__version__},
pandas {pandas.__version__}, seqrec {seqrec.__version__}; torch threads per worker:
{args.threads}.

Data: synthetic logs, Zipf item popularity (exponent 1) over the nominal catalogue, so the
catalogue the model sees is the number of distinct items drawn ("in log"); interactions / 20 users
(uniform), timestamps increasing per user. Model: esasrec preset, dim 64, 1 LiGR layer, 1 head,
batch 128, max_seq_len 50; sampled softmax with 256 uniform negatives per sequence and sparse
item-table updates (the preset) vs full softmax.
Each row ran in its own subprocess. build_dataset: best of {args.build_repeats}, extra peak = rise
of VmHWM (reset via clear_refs) over RSS before the call (shown once per data size). Training:
`FitResult.history[0].seconds` (training loop only); where "timed batches" < "batches/epoch" only
that many batches were trained (random subset of rows) and the epoch time is **extrapolated**
linearly (s/batch × batches/epoch), otherwise the full epoch was measured. Train extra peak: rise
of VmHWM over the RSS just before `fit` (model, Adam state, activations, logits); process peak
RSS includes Python, torch and the dataset. Full-softmax guard estimate: what
`check_softmax_memory` computes for this catalogue (3 × 4 B × 128 × 50 × (items + 1)), the
bound it compares with half of MemAvailable. A refused full softmax is the `MemoryError` raised by
`check_softmax_memory` before training, its message printed as is.

{table}
"""
    write_atomic(RESULTS, text)
    print(f"wrote {RESULTS}")


def _mem_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return math.nan


if __name__ == "__main__":
    main()

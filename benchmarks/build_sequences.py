"""Benchmark: build_dataset on a synthetic log (default 10M interactions, 1M users, 100k items).

Run: ``python benchmarks/build_sequences.py [--interactions N] [--users U] [--items I]``

Item popularity is power-law (Zipf-like, exponent 1.0 over item ranks), users uniform, timestamps
uniform over one year. Only ``build_dataset`` is timed (generation excluded). Extra peak memory
is the rise of the process's peak resident set size (``VmHWM`` in ``/proc/self/status``) during
the call: the peak is reset before the call by writing ``5`` to ``/proc/self/clear_refs`` where
the kernel allows it, else the figure is the rise over the peak reached by generation (a lower
bound). tracemalloc would see numpy's allocations too but slows the run several-fold.

Prints a table and writes ``benchmarks/results/build_sequences.md``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import cpu_model, reset_peak, status_kib, synthetic_interactions  # noqa: E402  (benchmarks/ helper)

from seqrec.data import build_dataset
from seqrec.files import write_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "build_sequences.md"





def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    args = parser.parse_args()

    frame = synthetic_interactions(args.interactions, args.users, args.items)
    times, cpu_times, extra_mib = [], [], []
    peak_reset = False
    for _ in range(args.repeats):
        gc.collect()
        peak_reset = reset_peak()
        rss_before = status_kib("VmRSS")
        hwm_before = status_kib("VmHWM")
        start, cpu_start = time.perf_counter(), time.process_time()
        dataset = build_dataset(frame)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        base = rss_before if peak_reset else hwm_before
        extra_mib.append((status_kib("VmHWM") - base) / 1024)
        del dataset
    dataset = build_dataset(frame)
    result_mib = (
        dataset.sequences.items.nbytes
        + dataset.sequences.timestamps.nbytes
        + dataset.sequences.offsets.nbytes
        + dataset.sequences.users.nbytes
    ) / 2**20

    rows = [
        ("interactions", f"{args.interactions:,}"),
        ("users / items", f"{dataset.n_users:,} / {dataset.n_items:,}"),
        ("build_dataset time, best of " + str(args.repeats), f"{min(times):.2f} s"),
        ("build_dataset time, median", f"{float(np.median(times)):.2f} s"),
        ("build_dataset CPU time (user + system), median", f"{float(np.median(cpu_times)):.2f} s"),
        ("extra peak memory (max over runs)", f"{max(extra_mib):,.0f} MiB"),
        ("of which the returned CSR arrays", f"{result_mib:,.0f} MiB"),
        ("peak measured from", "reset VmHWM (clear_refs)" if peak_reset else "prior VmHWM"),
    ]
    width = max(len(name) for name, _ in rows)
    table = "\n".join(f"| {name:<{width}} | {value} |" for name, value in rows)
    print(table)
    if args.no_write:
        return
    import numpy
    import pandas

    command = "python " + " ".join(["benchmarks/build_sequences.py", *sys.argv[1:]])
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    text = f"""## build_dataset on a synthetic log

Command: `{command}` ({datetime.date.today().isoformat()}, commit {commit})

Machine: {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()},
numpy {numpy.__version__}, pandas {pandas.__version__}; load average at the end {load} (the
cores are shared: the CPU time is the steadier figure).

Data: {args.interactions:,} interactions, {args.users:,} users (uniform), {args.items:,} items
(Zipf popularity, exponent 1), integer raw ids, uniform timestamps over a year. Timed:
`build_dataset` only (generation excluded), best and median of {args.repeats} runs. Extra peak
memory: rise of the peak resident set size (`VmHWM`) during the call over the resident size just
before it; target: under 10 s and 2 GB.

| measure | value |
|---|---|
{table}
"""
    write_atomic(RESULTS, text)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

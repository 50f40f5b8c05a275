"""GPU check, one short script for a lent accelerator: the Beauty recipe's epoch time and a
1 M-item training step, fp32 against bf16-mixed, eager against torch.compile.

Run (on a machine with CUDA; `--smoke` runs a tiny version on the CPU to check the script):

    python benchmarks/gpu_check.py [--data ../shared/data/s3rec/Beauty.txt] [--epochs 2]

Prints one JSON line per measurement and writes ``benchmarks/results/gpu.md`` (unless
``--no-write``): device name, torch and CUDA versions, then per configuration the median epoch
time (training loop only, ``FitResult.history``), the validation NDCG@10 after the last epoch,
and the median step time at 1 M items (sparse item updates, 256 negatives per sequence, batch
128 × 50). Without the Beauty file a synthetic log of the same size stands in (said in the
output).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from seqrec.files import write_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "gpu.md"
BEAUTY = Path(__file__).resolve().parents[2] / "shared" / "data" / "s3rec" / "Beauty.txt"


def _dataset(path: Path, smoke: bool):  # noqa: ANN202
    import numpy as np
    import pandas as pd

    from seqrec.data import build_dataset, load_s3rec

    if path.exists() and not smoke:
        return load_s3rec(path), f"Beauty ({path})"
    rng = np.random.default_rng(0)
    users, items = (300, 500) if smoke else (22_363, 12_101)
    lengths = rng.integers(5, 12, users)
    frame = pd.DataFrame({"user_id": np.repeat(np.arange(users), lengths),
                          "item_id": rng.integers(1, items + 1, lengths.sum()),
                          "timestamp": np.arange(lengths.sum())})
    return build_dataset(frame), f"synthetic ({users:,} users, {items:,} items)"


def epoch_times(dataset, runtime, dim: int, epochs: int) -> dict:  # noqa: ANN001
    from seqrec import SequentialRecommender, leave_one_out, preset

    split = leave_one_out(dataset, filter_already_seen=True)
    model = SequentialRecommender(preset("esasrec", dim=dim, epochs=epochs, patience=0),
                                  runtime=runtime)
    result = model.fit(dataset, split.train, split.validation)
    return {"epoch_s": statistics.median(h.seconds for h in result.history),
            "first_epoch_s": result.history[0].seconds,
            "validation_ndcg@10": result.history[-1].validation_ndcg}


def step_time(n_items: int, runtime, steps: int) -> float:  # noqa: ANN001
    import numpy as np
    import torch

    from seqrec.build import build_parts
    from seqrec.config import preset
    from seqrec.train import TrainingModule, make_fabric, make_optimizers, train_step

    fabric = make_fabric(runtime)
    config = preset("esasrec", dim=64, max_seq_len=50, batch_size=128)
    parts = build_parts(config, n_items)
    module = TrainingModule(parts)
    optimizers = make_optimizers(module, config)
    module, *optimizers = fabric.setup(module, *optimizers)
    rng = np.random.default_rng(0)
    items = rng.integers(1, n_items + 1, 128 * 51 * 4).astype(np.int64)
    offsets = np.arange(0, len(items) + 1, 51, dtype=np.int64)
    generator = torch.Generator().manual_seed(0)
    times = []
    for step in range(5 + steps):
        rows = np.arange(128) + 128 * (step % 4)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        train_step(module, parts, rows, items, offsets, optimizers, fabric, rng, generator)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if step >= 5:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=BEAUTY)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="tiny run on the CPU")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import torch

    from seqrec.config import Runtime

    cuda = torch.cuda.is_available() and not args.smoke
    if not cuda and not args.smoke:
        sys.exit("no CUDA device: run with --smoke to check the script on the CPU")
    accelerator = "cuda" if cuda else "cpu"
    dataset, data_name = _dataset(args.data, args.smoke)
    n_items = 20_000 if args.smoke else 1_000_000
    rows = []
    for precision, compile_ in (("32-true", False), ("bf16-mixed", False), ("bf16-mixed", True)):
        runtime = Runtime(accelerator=accelerator, precision=precision, compile=compile_)
        for dim in (64,) if args.smoke else (64, 256):
            row = {"precision": precision, "compile": compile_, "dim": dim,
                   **epoch_times(dataset, runtime, dim, args.epochs)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        step = {"precision": precision, "compile": compile_, "n_items": n_items,
                "step_s": step_time(n_items, runtime, args.steps)}
        rows.append(step)
        print(json.dumps(step), flush=True)
    if args.no_write:
        return
    device = torch.cuda.get_device_name(0) if cuda else "CPU (smoke run)"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    lines = ["| precision | torch.compile | measurement | value |", "|---|---|---|---|"]
    for row in rows:
        if "epoch_s" in row:
            lines.append(f"| {row['precision']} | {row['compile']} | dim {row['dim']}: epoch "
                         f"{row['epoch_s']:.2f} s (first {row['first_epoch_s']:.2f} s), "
                         f"validation NDCG@10 {row['validation_ndcg@10']:.4f} | |")
        else:
            lines.append(f"| {row['precision']} | {row['compile']} | step at "
                         f"{row['n_items']:,} items | {row['step_s'] * 1000:.1f} ms |")
    write_atomic(RESULTS, f"""## GPU check

Command: `python benchmarks/gpu_check.py {' '.join(sys.argv[1:])}` ({datetime.date.today()},
commit {commit}); device {device}, torch {torch.__version__}, CUDA {torch.version.cuda}.
Data: {data_name}; esasrec preset, {args.epochs} epochs, batch 128, max_seq_len 50.

""" + "\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

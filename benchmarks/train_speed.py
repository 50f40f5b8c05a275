"""Training and validation speed of eSASRec on Amazon Beauty, against a naive variant and the
arithmetic floor.

* seqrec: length-bucketed batches padded to their own longest sequence, loss only at real target
  positions, one shared ``(n_negatives,)`` draw scored with one matmul, fused Adam.
* naive: the same encoder with every sequence padded to ``max_seq_len``, random batches, and
  negatives gathered per position ``(batch, seq_len, n_negatives)``, loss computed everywhere and
  masked afterwards — the way most implementations do it. Timed on ``--naive-batches`` batches and
  extrapolated to an epoch (stated in the output).
* floor: dense matmul FLOPs of one epoch (forward + backward ≈ 3 × forward) at this machine's
  measured float32 matmul rate.

    python benchmarks/train_speed.py --dim 64 --dim 256
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _common import status_kib  # noqa: E402  (benchmarks/ helper)

import seqrec
from seqrec.batches import windows
from seqrec.build import build_parts
from seqrec.data import leave_one_out, load_s3rec
from seqrec.evaluation import evaluate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def peak_rss_mib() -> float:
    return status_kib("VmHWM") / 1024


def matmul_rate() -> float:
    """Measured float32 matmul FLOP/s on shapes like the model's (tokens × dim × 4·dim)."""
    a, b = torch.randn(2048, 256), torch.randn(256, 1024)
    for _ in range(3):
        a @ b
    start, n = time.perf_counter(), 50
    for _ in range(n):
        a @ b
    return 2 * 2048 * 256 * 1024 * n / (time.perf_counter() - start)


def epoch_flops(config: seqrec.Config, n_tokens: int, mean_len: float) -> float:
    d, m = config.dim, config.ff_multiplier
    per_token = (3 + 1 + 2 + 3 * m) * d * d  # qkv, out, two gates, SwiGLU (gate+up, down)
    per_token += 2 * mean_len * d  # attention scores and weighted values
    per_token += (1 + config.n_negatives) * d  # sampled softmax logits
    return 3 * 2 * per_token * n_tokens * config.n_layers


def naive_epoch_seconds(config: seqrec.Config, split: seqrec.Split, n_items: int, n_batches: int) -> float:
    parts = build_parts(config, n_items)
    encoder = parts.encoder.train()
    optimizer = torch.optim.Adam(encoder.parameters(), lr=config.lr)
    train = split.train
    rows = np.flatnonzero(train.lengths >= 2)
    rng = np.random.default_rng(0)
    order = rng.permutation(rows)
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    start = time.perf_counter()
    for rows_b in batches[:n_batches]:
        window = windows(train.items, train.offsets, rows_b, config.max_seq_len + 1,
                         pad_to=config.max_seq_len + 1)
        inputs = torch.from_numpy(window[:, :-1].copy())
        targets = torch.from_numpy(window[:, 1:].copy())
        hidden = encoder.encode(inputs, causal=True)  # (batch, seq_len, dim)
        emb = encoder.candidate_embeddings()
        negatives = torch.randint(1, n_items + 1, (*inputs.shape, config.n_negatives))
        positive = (hidden * emb[targets]).sum(-1, keepdim=True)  # (batch, seq_len, 1)
        negative = (hidden.unsqueeze(2) * emb[negatives]).sum(-1)  # (batch, seq_len, n_negatives)
        logits = torch.cat([positive, negative], dim=-1)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                               torch.zeros(logits.shape[0] * logits.shape[1], dtype=torch.int64),
                               reduction="none")
        mask = (inputs != 0).reshape(-1).float()
        loss = (loss * mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    per_batch = (time.perf_counter() - start) / min(n_batches, len(batches))
    return per_batch * len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, action="append", help="repeatable; default 64 and 256")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--naive-batches", type=int, default=40)
    args = parser.parse_args()
    path = SHARED / "s3rec" / "Beauty.txt"
    if not path.exists():
        sys.exit(f"{path} not found: this benchmark needs ../shared/data")
    torch.set_num_threads(args.threads)
    dataset = load_s3rec(path)
    split = leave_one_out(dataset, filter_already_seen=True)
    lengths = np.minimum(split.train.lengths, 51) - 1
    n_tokens = int(lengths[lengths > 0].sum())
    mean_len = float(lengths[lengths > 0].mean())
    rate = matmul_rate()
    rows = []
    for dim in args.dim or [64, 256]:
        config = seqrec.preset("esasrec", dim=dim, epochs=1, patience=0, seed=0)
        model = seqrec.SequentialRecommender(config)
        model.fit(dataset, split.train)
        epoch_s = model.fit_result.history[0].seconds
        start = time.perf_counter()
        evaluate(model, split.validation, k=10, metrics=("ndcg",))
        validation_s = time.perf_counter() - start
        naive_s = naive_epoch_seconds(config, split, dataset.n_items, args.naive_batches)
        floor_s = epoch_flops(config, n_tokens, mean_len) / rate
        rows.append((dim, epoch_s, len(split.train.offsets) / epoch_s, naive_s, naive_s / epoch_s,
                     floor_s, epoch_s / floor_s, validation_s))
    print(f"Beauty LOO train part: {n_tokens:,} target positions; matmul rate {rate / 1e9:.0f} GFLOP/s; "
          f"{torch.get_num_threads()} threads; peak RSS {peak_rss_mib():.0f} MiB")
    print("| dim | seqrec epoch s | seq/s | naive epoch s (extrapolated) | naive / seqrec | floor s | seqrec / floor | validation all users s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.1f} | {r[2]:.0f} | {r[3]:.1f} | {r[4]:.1f}× | {r[5]:.1f} | {r[6]:.1f}× | {r[7]:.2f} |")
    print(f"command: python benchmarks/train_speed.py {' '.join(sys.argv[1:])}; cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()

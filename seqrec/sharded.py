"""What a run on user shards (every process its own users, :mod:`seqrec.data.partitioned`) must
combine across processes: one fingerprint of the data, test metrics over every user, and the
histories the published model serves from.

Only the process of global rank 0 writes; every function here is a collective (all processes
call it, in the same order).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from seqrec.data.catalogue import IdIndex
from seqrec.data.sequences import Dataset, Sequences
from seqrec.lists import Fitted
from seqrec.metrics import ACCURACY_METRICS

SHARDED_METRICS = ACCURACY_METRICS
"""Test metrics of a sharded run: the per-user accuracy metrics, averaged over every process's
users. Coverage, ARP and novelty need every shard's lists at once: evaluate the published model
on one machine for them."""


def global_fingerprint(fabric: Any, local: str) -> str:
    """One digest of every process's data fingerprint (the same on all processes)."""
    parts = [None] * fabric.world_size
    torch.distributed.all_gather_object(parts, local)
    return hashlib.blake2b("".join(parts).encode(), digest_size=16).hexdigest()


def global_means(fabric: Any, means: dict[str, float], n_users: int) -> dict[str, float]:
    """Per-user metric means over every process's users (weighted by their counts)."""
    names = sorted(means)
    local = torch.tensor([means[n] * n_users for n in names] + [float(n_users)],
                         dtype=torch.float64)
    total = fabric.all_reduce(local, reduce_op="sum")
    users = max(float(total[-1]), 1.0)
    return {n: float(total[i] / users) for i, n in enumerate(names)}


def gather_fitted(fabric: Any, shard: Dataset, max_len: int) -> Fitted | None:
    """On rank 0, the model state of every user: the shards' users merged (sorted as
    :func:`~seqrec.data.build.build_dataset` sorts ids), each user's last ``max_len`` items and
    times, and the item counts of the whole log; None on the other processes.

    Args:
        fabric: the launched Fabric of the run.
        shard: this process's users, items indexed by the shared catalogue.
        max_len: items kept per user (the model reads at most ``max_seq_len``).
    """
    seqs = shard.sequences
    counts = torch.from_numpy(seqs.item_counts(shard.n_items))
    counts = fabric.all_reduce(counts, reduce_op="sum").numpy().astype(np.int64)
    keep = np.arange(len(seqs.items)) >= np.repeat(seqs.offsets[1:] - max_len, seqs.lengths)
    lengths = np.minimum(seqs.lengths, max_len)
    local = (shard.user_index.ids, seqs.items[keep], seqs.timestamps[keep], lengths)
    parts: list[Any] = [None] * fabric.world_size
    torch.distributed.all_gather_object(parts, local)
    if fabric.global_rank != 0:
        return None
    ids = np.concatenate([p[0] for p in parts])
    if ids.dtype.kind not in "iu":
        ids = ids.astype(object)
    order = np.argsort(ids, kind="stable")
    all_lengths = np.concatenate([p[3] for p in parts])
    starts = np.concatenate([[0], np.cumsum(all_lengths)[:-1]])
    items, stamps = np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
    offsets = np.concatenate([[0], np.cumsum(all_lengths[order])]).astype(np.int64)
    # flat gather index: each user's old start repeated, plus the position within the row
    gather = (np.repeat(starts[order] - offsets[:-1], all_lengths[order])
              + np.arange(offsets[-1])).astype(np.int64)
    histories = Sequences(items[gather], offsets, np.arange(len(ids)), stamps[gather])
    return Fitted(shard.catalogue, IdIndex(ids[order], start=0), histories, counts, None)

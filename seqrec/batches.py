"""Windows and length-bucketed batches cut straight from CSR sequence arrays (numpy only).

No Python loop runs per sequence: a batch of windows is one fancy-indexing gather.
"""

from __future__ import annotations

import numpy as np

from seqrec.data.catalogue import PAD


def windows(items: np.ndarray, offsets: np.ndarray, rows: np.ndarray, width: int,
            pad_to: int | None = None) -> np.ndarray:
    """The last ``width`` items of each selected row, left-padded with PAD.

    Args:
        items: ``(n_interactions,)`` int64 flat item indices (CSR).
        offsets: ``(n_rows + 1,)`` int64 row offsets.
        rows: ``(batch,)`` int64 rows to cut.
        width: most items kept per row (the most recent ones).
        pad_to: output width; default the longest kept row of this batch (length bucketing), so a
            batch of short sequences costs only its own length.

    Returns:
        ``(batch, pad_to)`` int64, each row ending with the row's most recent item.
    """
    ends = offsets[rows + 1]
    lengths = np.minimum(ends - offsets[rows], width)
    out_width = int(lengths.max(initial=0)) if pad_to is None else pad_to
    # source index of column j in row b: ends[b] - out_width + j, valid when within the row
    source = ends[:, None] - out_width + np.arange(out_width)[None, :]  # (batch, out_width)
    valid = np.arange(out_width)[None, :] >= (out_width - lengths)[:, None]
    out = np.where(valid, items[np.where(valid, source, 0)], PAD)
    return out.astype(np.int64, copy=False)


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                     bucket_batches: int = 64) -> list[np.ndarray]:
    """Shuffle rows, then group rows of similar length into batches.

    Rows are shuffled, cut into chunks of ``bucket_batches × batch_size``, each chunk sorted by
    length and cut into batches, and the batch order shuffled. Every row appears exactly once.

    Args:
        lengths: ``(n_rows,)`` int window length of each row (0-length rows are skipped).
        batch_size: rows per batch.
        rng: the epoch's random generator (seeded by the caller).
        bucket_batches: batches per sorting chunk (larger = tighter buckets, less randomness).

    Returns:
        list of ``(<= batch_size,)`` int64 row arrays.
    """
    order = rng.permutation(np.flatnonzero(lengths > 0))
    chunk = batch_size * bucket_batches
    batches: list[np.ndarray] = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def shard(batches: list[np.ndarray], rank: int, world_size: int) -> list[np.ndarray]:
    """The batches of one rank in data-parallel training: every ``world_size``-th batch.

    All ranks get the same number of batches (the surplus at the end is dropped), so that DDP's
    gradient all-reduce is called equally often everywhere; shards are disjoint.
    """
    per_rank = len(batches) // world_size if world_size > 1 else len(batches)
    return batches[rank::world_size][:per_rank]

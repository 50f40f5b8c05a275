"""Logs larger than one machine's memory: a partitioned Parquet dataset read lazily, one shard of
users per process.

An engine such as Spark writes the log as a directory of Parquet files (any partitioning, e.g.
``df.write.partitionBy("day").parquet(path)``), one row per interaction with user, item and
timestamp columns. Each training process then

1. scans the item column of the whole dataset (:func:`scan_items`) for one catalogue that every
   process numbers alike (it holds one id per item, not the log);
2. reads, batch by batch, only the rows of its own users (:func:`read_shard`): users are
   assigned to processes by a stable hash of their id (:func:`user_shards`), the same on every
   process and machine, so no process ever holds the whole log and every user's sequence is
   whole on one process.

Training on such shards is ``fit(..., sharded=True)``: every process steps on its own sequences
and all processes take the same number of steps (see :mod:`seqrec.train`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from seqrec.data.build import build_dataset
from seqrec.data.catalogue import IdIndex
from seqrec.data.interactions import ITEM_ID, TIMESTAMP, USER_ID, read_interactions
from seqrec.data.sequences import Dataset


def _dataset(source: str | Path):  # noqa: ANN202 - pyarrow type
    import pyarrow.dataset as ds

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"partitioned dataset not found: {path}")
    return ds.dataset(path, format="parquet", partitioning="hive")


def user_shards(user_ids: np.ndarray, world_size: int) -> np.ndarray:
    """``(n,)`` int64 process of each user: a stable 64-bit hash of the id (pandas' hash of
    integers, SipHash with a fixed key for strings) modulo ``world_size``; the same on every
    process, machine and run.

    Raises:
        ValueError: ``world_size < 1``.
    """
    if world_size < 1:
        raise ValueError(f"world_size={world_size}: expected >= 1")
    values = np.asarray(user_ids)
    if values.dtype.kind not in "iu":
        values = values.astype(str).astype(object)
    hashes = pd.util.hash_array(values, categorize=False)
    return (hashes % np.uint64(world_size)).astype(np.int64)


def scan_items(source: str | Path, item_col: str = ITEM_ID,
               batch_size: int = 1 << 20) -> IdIndex:
    """The catalogue of a whole partitioned log: its distinct items, sorted as
    :func:`~seqrec.data.build.build_dataset` sorts them (numbers numerically, strings
    lexicographically), read one column batch at a time.

    Raises:
        FileNotFoundError: no dataset at ``source``.
        ValueError: ``item_col`` missing or holding nulls.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    dataset = _dataset(source)
    if item_col not in dataset.schema.names:
        raise ValueError(f"column {item_col!r} not found; columns: {dataset.schema.names}")
    uniques = []
    for batch in dataset.to_batches(columns=[item_col], batch_size=batch_size):
        column = batch.column(0)
        if column.null_count:
            raise ValueError(f"column {item_col!r} has {column.null_count} nulls")
        uniques.append(pc.unique(column))
    if not uniques:
        raise ValueError(f"partitioned dataset {source} holds no rows")
    ids = pc.unique(pa.chunked_array(uniques)).to_numpy(zero_copy_only=False)
    ids = np.sort(ids.astype(np.int64) if ids.dtype.kind in "iu" else ids.astype(object))
    return IdIndex(ids, start=1)


def read_shard(source: str | Path, *, rank: int, world_size: int,
               catalogue: IdIndex | None = None, user_col: str = USER_ID,
               item_col: str = ITEM_ID, timestamp_col: str | None = TIMESTAMP,
               batch_size: int = 1 << 20) -> Dataset:
    """The interactions of process ``rank``'s users (:func:`user_shards`) as a
    :class:`~seqrec.data.sequences.Dataset`, without reading the other users' rows into memory.

    Args:
        source: directory (or file) of a Parquet dataset; hive-style partition folders
            (``day=2026-01-01/``) are understood.
        rank, world_size: this process and how many there are.
        catalogue: the whole log's items (:func:`scan_items`), so that all shards index items
            alike; default the shard's own items (only for a single process).
        user_col, item_col, timestamp_col: column names (``timestamp_col=None``: row order).
        batch_size: rows per record batch read.

    Returns:
        the shard's :class:`Dataset`: users are the shard's, items the catalogue's.

    Raises:
        ValueError: bad ``rank``, a missing column, bad values (as
            :func:`~seqrec.data.interactions.read_interactions`), or a shard with no user.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank={rank}: expected 0 <= rank < world_size={world_size}")
    dataset = _dataset(source)
    columns = [user_col, item_col] + ([timestamp_col] if timestamp_col else [])
    missing = [c for c in columns if c not in dataset.schema.names]
    if missing:
        raise ValueError(f"columns {missing} not found; columns: {dataset.schema.names}")
    frames = []
    for batch in dataset.to_batches(columns=columns, batch_size=batch_size):
        users = batch.column(0).to_numpy(zero_copy_only=False)
        mine = user_shards(users, world_size) == rank
        if mine.any():
            frames.append(batch.to_pandas().loc[mine])
    if not frames:
        raise ValueError(f"rank {rank} of {world_size}: no user of {source} hashes to it")
    table = read_interactions(pd.concat(frames, ignore_index=True), user_col=user_col,
                              item_col=item_col, timestamp_col=timestamp_col)
    return build_dataset(table, catalogue=catalogue)

"""Interactions table → :class:`~seqrec.data.sequences.Dataset` (id mappings + CSR sequences).

Fully vectorised: ids are factorised once, one stable sort orders every user's events, and the
offsets come from a bincount. No per-user Python work.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from seqrec.data.interactions import ITEM_ID, TIMESTAMP, USER_ID
from seqrec.data.sequences import Dataset, IdIndex, Sequences

logger = logging.getLogger(__name__)


def build_dataset(interactions: pd.DataFrame, item_info: pd.DataFrame | None = None, *,
                  catalogue: IdIndex | None = None) -> Dataset:
    """Map ids to contiguous indices and order each user's interactions by time.

    Index assignment: external ids are **sorted** (numerically for integer ids, lexicographically
    for strings) and numbered in that order, items from 1 (0 is PAD) to ``n_items``, users from 0
    to ``n_users - 1``. So ``n_items`` is the number of distinct items (never the largest raw id),
    the mapping does not depend on row order, and logs whose ids already are ``1..n`` (S3-Rec,
    SASRec files) keep them: index == raw id.

    Ordering: each user's rows are ordered by timestamp with a **stable** sort, so rows with equal
    timestamps keep their input row order (never reordered by item id). Row ``u`` of
    ``Dataset.sequences`` is user index ``u``; every user in the table has at least one item.

    Args:
        interactions: table with columns ``user_id``, ``item_id`` and ``timestamp`` (int64), as
            returned by :func:`~seqrec.data.interactions.read_interactions`. Extra columns are
            ignored.
        item_info: optional per-item table indexed by external item id (e.g. ``title``,
            ``genres``). It is reindexed to catalogue order; items it lacks get missing values and
            rows for items outside the log are dropped.
        catalogue: index items with this catalogue instead of the log's own items (e.g. the
            catalogue of a whole partitioned log, :func:`seqrec.data.partitioned.scan_items`,
            so that every process's shard numbers items alike).

    Returns:
        A :class:`Dataset` whose ``sequences`` hold ``(n_interactions,)`` int64 item indices in
        ``1..n_items`` and int64 timestamps, with ``users == arange(n_users)``.

    Raises:
        ValueError: the table is empty, a column is missing, ids/timestamps hold nulls, or an
            item is missing from ``catalogue`` (the count and a few ids are named).
    """
    for column in (USER_ID, ITEM_ID, TIMESTAMP):
        if column not in interactions.columns:
            raise ValueError(
                f"build_dataset: column {column!r} missing; columns: {list(interactions.columns)}"
            )
    if len(interactions) == 0:
        raise ValueError("build_dataset: interactions are empty")
    user_codes, user_ids = _factorize(interactions[USER_ID], USER_ID)
    if catalogue is None:
        item_codes, item_ids = _factorize(interactions[ITEM_ID], ITEM_ID)
    else:
        item_codes, item_ids = _codes_in(interactions[ITEM_ID], catalogue), catalogue.ids
    timestamps = interactions[TIMESTAMP].to_numpy()
    if not np.issubdtype(timestamps.dtype, np.integer):
        raise ValueError(
            f"build_dataset: {TIMESTAMP!r} must be int64 seconds, got {timestamps.dtype}"
        )
    timestamps = timestamps.astype(np.int64, copy=False)

    order = _user_time_order(user_codes, timestamps, n_users=len(user_ids))
    counts = np.bincount(user_codes, minlength=len(user_ids))
    offsets = np.zeros(len(user_ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    sequences = Sequences(
        items=item_codes[order] + 1,
        offsets=offsets,
        users=np.arange(len(user_ids), dtype=np.int64),
        timestamps=timestamps[order],
    )
    catalogue = IdIndex(item_ids, start=1) if catalogue is None else catalogue
    info = None
    if item_info is not None:
        info = item_info.reindex(pd.Index(item_ids, name=item_info.index.name or ITEM_ID))
        n_missing = int(info.isna().all(axis=1).sum()) if info.shape[1] else 0
        if n_missing:
            logger.warning("item_info has no row for %d of %d items", n_missing, len(item_ids))
    logger.info(
        "built dataset: %d users, %d items, %d interactions",
        len(user_ids),
        len(item_ids),
        len(order),
    )
    return Dataset(sequences, catalogue, IdIndex(user_ids, start=0), info)


def _factorize(values: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(codes int64, sorted unique ids)``; ids int64 when integral, else object (strings)."""
    if values.isna().any():
        raise ValueError(f"build_dataset: column {name!r} has {int(values.isna().sum())} nulls")
    array = values.to_numpy()
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.int64, copy=False)
    else:
        array = values.to_numpy(object)
    try:
        codes, uniques = pd.factorize(array, sort=True)
    except TypeError:  # mixed types that cannot be ordered: order by their string form
        codes, uniques = pd.factorize(array.astype(str), sort=True)
        _, first = np.unique(codes, return_index=True)
        uniques = array[first]
    uniques = np.asarray(uniques)
    if uniques.dtype.kind not in "iu":
        uniques = uniques.astype(object)
    return codes.astype(np.int64, copy=False), uniques


def _codes_in(values: pd.Series, catalogue: IdIndex) -> np.ndarray:
    """0-based positions of ``values`` in ``catalogue`` (index - 1), vectorised."""
    if values.isna().any():
        raise ValueError(f"build_dataset: column {ITEM_ID!r} has {int(values.isna().sum())} nulls")
    codes = pd.Index(catalogue.ids).get_indexer(values.to_numpy(
        np.int64 if catalogue.int_ids and pd.api.types.is_integer_dtype(values.dtype) else object))
    missing = codes < 0
    if missing.any():
        shown = values.to_numpy(object)[missing][:5].tolist()
        raise ValueError(f"build_dataset: {int(missing.sum()):,} interactions with items outside "
                         f"the given catalogue, e.g. {shown}")
    return codes.astype(np.int64)


def _user_time_order(user_codes: np.ndarray, timestamps: np.ndarray, n_users: int) -> np.ndarray:
    """Stable order by (user, timestamp): ties keep input row order."""
    t_min, t_max = int(timestamps.min()), int(timestamps.max())
    span = t_max - t_min + 1
    if n_users * span < 2**62:
        # one int64 key sorts about twice as fast as np.lexsort over two keys
        key = user_codes * span + (timestamps - t_min)
        return np.argsort(key, kind="stable")
    return np.lexsort((timestamps, user_codes))

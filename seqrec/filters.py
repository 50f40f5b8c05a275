"""What each ranked list may contain: per-row item sets and the masks applied before top-K.

Every excluded item gets a score of ``-inf`` before :func:`seqrec.rank.top_k` cuts a list, so a
list never holds PAD, MASK, a seen item (when asked) or a filtered item, and never needs a second
model call to "refill" it. Masks work on a chunk of the catalogue as well as on all of it, so
scoring in bounded memory applies exactly the same filters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from seqrec.data.catalogue import PAD


@dataclass(frozen=True)
class ItemSets:
    """One set of item indices per row, CSR, optionally a view of some rows of another CSR.

    Row ``i`` is ``items[offsets[r]:offsets[r + 1]]`` with ``r = rows[i]`` (``r = i`` when
    ``rows`` is None): selecting rows of a large history table costs no copy of its items.

    Attributes:
        items: ``(n_entries,)`` int64 item indices in ``1..n_items``.
        offsets: ``(n_csr_rows + 1,)`` int64, non-decreasing, from 0.
        rows: ``(n_rows,)`` int64 CSR rows this view shows, or None for all of them.
    """

    items: np.ndarray
    offsets: np.ndarray
    rows: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return len(self.offsets) - 1 if self.rows is None else len(self.rows)

    def csr_rows(self) -> np.ndarray:
        """``(n_rows,)`` int64 the CSR row behind each row."""
        return np.arange(len(self.offsets) - 1) if self.rows is None else self.rows

    def lengths(self) -> np.ndarray:
        """``(n_rows,)`` int64 items per row."""
        rows = self.csr_rows()
        return self.offsets[rows + 1] - self.offsets[rows]

    @classmethod
    def from_lists(cls, lists: Sequence[Sequence[int] | np.ndarray]) -> ItemSets:
        """Rows from Python lists or arrays of item indices."""
        offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum([len(row) for row in lists], out=offsets[1:])
        items = (np.concatenate([np.asarray(row, dtype=np.int64) for row in lists])
                 if len(lists) else np.zeros(0, np.int64))
        return cls(items.astype(np.int64, copy=False), offsets)

    def select(self, rows: np.ndarray) -> ItemSets:
        """A view of ``rows`` (positions ``0..n_rows-1``, in the given order); no copy."""
        return ItemSets(self.items, self.offsets, self.csr_rows()[np.asarray(rows, dtype=np.int64)])

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """``(row, item)`` int64 pairs of every entry: the row position and the item index."""
        rows = self.csr_rows()
        starts, lengths = self.offsets[rows], self.lengths()
        row_of = np.repeat(np.arange(len(rows)), lengths)
        # flat gather index: each row's start repeated, plus the position within the row
        local = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return row_of, self.items[np.repeat(starts, lengths) + local]


@dataclass(frozen=True)
class Filters:
    """What each ranked list may contain, row-aligned with the scores.

    Attributes:
        seen: items masked in each row (the history, when ``filter_viewed``), or None.
        include: only these items stay eligible: per row (:class:`ItemSets`), or one
            ``(n_items + 1,)`` bool mask for every row; None allows every item. An empty
            include set allows nothing (the list is empty).
        exclude: items removed, per row or as one shared bool mask; None removes nothing.
        include_rows: with per-row ``include``, ``(n_rows,)`` bool: the rows it applies to
            (other rows allow every item); None: all rows.
    """

    seen: ItemSets | None = None
    include: ItemSets | Tensor | None = None
    exclude: ItemSets | Tensor | None = None
    include_rows: np.ndarray | None = None

    def select(self, rows: np.ndarray) -> Filters:
        """The filters of ``rows`` (per-row parts selected, shared masks kept)."""
        def pick(part: ItemSets | Tensor | None) -> ItemSets | Tensor | None:
            return part.select(rows) if isinstance(part, ItemSets) else part

        include_rows = None if self.include_rows is None else self.include_rows[rows]
        return Filters(pick(self.seen), pick(self.include), pick(self.exclude), include_rows)


def item_mask(n_items: int, indices: np.ndarray | Sequence[int]) -> Tensor:
    """``(n_items + 1,)`` bool, True at ``indices``."""
    mask = torch.zeros(n_items + 1, dtype=torch.bool)
    mask[torch.from_numpy(np.asarray(indices, dtype=np.int64))] = True
    return mask


def _set_positions(sets: ItemSets, start: int, width: int) -> tuple[Tensor, Tensor]:
    """``(row, column)`` of every set entry whose item falls in the columns ``start..``."""
    rows, items = sets.flat()
    inside = (items >= start) & (items < start + width)
    return (torch.from_numpy(rows[inside]),
            torch.from_numpy((items[inside] - start).astype(np.int64, copy=False)))


def apply_filters(scores: Tensor, filters: Filters | None = None, start: int = 0) -> Tensor:
    """Set every item a list may not contain to ``-inf`` (in place); PAD always.

    Args:
        scores: ``(n_rows, width)`` float scores of items ``start .. start + width - 1`` (the
            whole catalogue when ``start == 0`` and ``width == n_items + 1``: column 0 is PAD),
            row-aligned with ``filters``.
        filters: seen / include / exclude (see :class:`Filters`); None masks PAD only.
        start: the item index of column 0 (a chunk of the catalogue).

    Returns:
        ``scores`` (modified).

    Raises:
        ValueError: per-row filters with another number of rows than ``scores``.
    """
    filters = filters or Filters()
    n_rows, width = scores.shape
    for name in ("seen", "include", "exclude"):
        part = getattr(filters, name)
        if isinstance(part, ItemSets) and part.n_rows != n_rows:
            raise ValueError(f"filters.{name}: {part.n_rows} rows for {n_rows} score rows")
    neg_inf = float("-inf")
    if filters.seen is not None:
        scores[_set_positions(filters.seen, start, width)] = neg_inf
    if isinstance(filters.include, ItemSets):
        allowed = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
        allowed[_set_positions(filters.include, start, width)] = True
        if filters.include_rows is not None:
            allowed[torch.from_numpy(~np.asarray(filters.include_rows, dtype=bool))] = True
        scores.masked_fill_(~allowed, neg_inf)
    elif filters.include is not None:
        scores.masked_fill_(~filters.include[start : start + width].to(scores.device), neg_inf)
    if isinstance(filters.exclude, ItemSets):
        scores[_set_positions(filters.exclude, start, width)] = neg_inf
    elif filters.exclude is not None:
        scores.masked_fill_(filters.exclude[start : start + width].to(scores.device), neg_inf)
    if start == 0:
        scores[:, PAD] = neg_inf
    return scores


def _members(sets: ItemSets, items: Tensor) -> Tensor:
    """``(n_rows, n_candidates)`` bool: whether each candidate is in its row's set."""
    rows, entries = sets.flat()
    if len(entries) == 0:
        return torch.zeros(items.shape, dtype=torch.bool)
    # (row, item) pairs as one int64 key, so membership is one sorted search
    base = int(max(entries.max(), int(items.max()) if items.numel() else 0)) + 1
    keys = rows * base + entries
    candidates = np.arange(items.shape[0])[:, None] * base + items.numpy()
    return torch.from_numpy(np.isin(candidates, keys))


def eligible_candidates(items: Tensor, filters: Filters | None = None) -> Tensor:
    """Which candidate items each list may contain: the masks of :func:`apply_filters`, read at
    given items instead of over catalogue columns (for candidates from an approximate index).

    Args:
        items: ``(n_rows, n_candidates)`` int64 item indices on CPU, row-aligned with
            ``filters``; PAD (0) marks an empty slot.
        filters: seen / include / exclude (see :class:`Filters`); None masks PAD only.

    Returns:
        ``(n_rows, n_candidates)`` bool, True where :func:`apply_filters` would keep the item's
        score; always False at PAD.

    Raises:
        ValueError: per-row filters with another number of rows than ``items``.
    """
    filters = filters or Filters()
    for name in ("seen", "include", "exclude"):
        part = getattr(filters, name)
        if isinstance(part, ItemSets) and part.n_rows != items.shape[0]:
            raise ValueError(f"filters.{name}: {part.n_rows} rows for {items.shape[0]} rows")
    keep = items != PAD
    if filters.seen is not None:
        keep &= ~_members(filters.seen, items)
    if isinstance(filters.include, ItemSets):
        allowed = _members(filters.include, items)
        if filters.include_rows is not None:
            allowed[torch.from_numpy(~np.asarray(filters.include_rows, dtype=bool))] = True
        keep &= allowed
    elif filters.include is not None:
        keep &= filters.include.cpu()[items]
    if isinstance(filters.exclude, ItemSets):
        keep &= ~_members(filters.exclude, items)
    elif filters.exclude is not None:
        keep &= ~filters.exclude.cpu()[items]
    return keep

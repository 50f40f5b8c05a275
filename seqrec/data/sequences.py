"""Per-user chronological sequences stored CSR style: one flat item array plus offsets.

The records here are the contract between the data layer and the models:

* :class:`~seqrec.data.catalogue.IdIndex` maps external ids to contiguous indices (items
  1..n_items, 0 = PAD; users 0..n_users-1) and back.
* :class:`Sequences` holds many sequences at once: ``items[offsets[i]:offsets[i + 1]]`` is the
  chronological item sequence of row ``i``, whose user index is ``users[i]``.
* :class:`HeldOut` pairs model inputs (``histories``) with what must be predicted (``targets``).
* :class:`Dataset` is an interaction log turned into sequences plus both id mappings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqrec.data.catalogue import PAD, IdIndex


@dataclass(frozen=True)
class Sequences:
    """Many item sequences in CSR layout.

    Attributes:
        items: ``(n_interactions,)`` int64 item indices in 1..n_items, each row chronological.
        offsets: ``(n_sequences + 1,)`` int64; row ``i`` is ``items[offsets[i]:offsets[i + 1]]``.
        users: ``(n_sequences,)`` int64 user index of each row.
        timestamps: ``(n_interactions,)`` int64 seconds (or positions for logs without time).
    """

    items: np.ndarray
    offsets: np.ndarray
    users: np.ndarray
    timestamps: np.ndarray

    @property
    def n_sequences(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """``(n_sequences,)`` int64 number of items in each row."""
        return np.diff(self.offsets)

    def item_counts(self, n_items: int) -> np.ndarray:
        """``(n_items + 1,)`` int64 number of interactions with each item index (PAD: 0)."""
        counts = np.bincount(self.items, minlength=n_items + 1).astype(np.int64)
        counts[PAD] = 0
        return counts

    def row(self, i: int) -> np.ndarray:
        """Items of row ``i`` (a view), oldest first."""
        return self.items[self.offsets[i] : self.offsets[i + 1]]

    def select(self, rows: np.ndarray) -> Sequences:
        """A new :class:`Sequences` holding ``rows`` (int indices) in the given order."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, lengths = self.offsets[rows], self.lengths[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # flat gather index: start of each row repeated, plus the position within the row
        gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return Sequences(self.items[gather], offsets, self.users[rows], self.timestamps[gather])


@dataclass(frozen=True)
class HeldOut:
    """Model inputs paired with the items they must predict, row by row.

    Attributes:
        histories: what the model may see for each evaluated user (row ``i``), oldest first.
        targets: held-out item(s) of the same users in the same row order (``targets.users ==
            histories.users``). Duplicates within a row are removed.
    """

    histories: Sequences
    targets: Sequences


@dataclass(frozen=True)
class Dataset:
    """An interaction log as chronological per-user sequences plus id mappings.

    Attributes:
        sequences: one row per user (row ``u`` is user index ``u``), stable-sorted by timestamp.
        catalogue: item ids; indices 1..n_items.
        user_index: user ids; indices 0..n_users-1.
        item_info: optional per-item table indexed by external item id (e.g. ``title``, ``genres``).
    """

    sequences: Sequences
    catalogue: IdIndex
    user_index: IdIndex
    item_info: pd.DataFrame | None = None

    @property
    def n_items(self) -> int:
        return len(self.catalogue)

    @property
    def n_users(self) -> int:
        return len(self.user_index)


__all__ = ["PAD", "Dataset", "HeldOut", "IdIndex", "Sequences"]

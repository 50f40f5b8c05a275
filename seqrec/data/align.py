"""Re-index a data set to another catalogue (a saved model's), so that the model can be evaluated
on, or serve the histories of, a log it was not built from."""

from __future__ import annotations

import warnings

import numpy as np

from seqrec.data.catalogue import PAD, IdIndex
from seqrec.data.sequences import Dataset, Sequences


def align_to_catalogue(dataset: Dataset, catalogue: IdIndex) -> Dataset:
    """``dataset`` with its item indices rewritten as ``catalogue``'s indices.

    Interactions with items ``catalogue`` does not know are dropped, and counted in one
    ``UserWarning``; users keep their indices (a user left with no interaction keeps an empty
    row). ``item_info`` is not carried over (it belongs to the other catalogue).

    Args:
        dataset: any data set (e.g. a new log of the same shop).
        catalogue: the item index to align to (e.g. ``model.catalogue``).

    Returns:
        a :class:`Dataset` whose ``sequences.items`` are indices of ``catalogue``.

    Raises:
        ValueError: none of the data set's items is in ``catalogue`` (another data set, or ids of
            another type).
    """
    same = (len(catalogue) == dataset.n_items and catalogue.int_ids == dataset.catalogue.int_ids
            and bool(np.all(catalogue.ids == dataset.catalogue.ids)))
    if same:
        return Dataset(dataset.sequences, catalogue, dataset.user_index, None)
    # dataset index -> catalogue index (-1: unknown); PAD stays PAD
    mapping = np.concatenate([[PAD], catalogue.to_index(dataset.catalogue.ids, unknown="pad")])
    seqs = dataset.sequences
    items = mapping[seqs.items]
    keep = items > 0
    if not keep.any():
        raise ValueError("none of the data set's items is in the model's catalogue "
                         "(a different data set, or ids of another type?)")
    if not keep.all():
        dropped = int((~keep).sum())
        warnings.warn(f"{dropped:,} interaction{'s' if dropped != 1 else ''} with items unknown "
                      "to the model dropped", stacklevel=2)
    row_of = np.repeat(np.arange(seqs.n_sequences), seqs.lengths)
    offsets = np.zeros(seqs.n_sequences + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_of[keep], minlength=seqs.n_sequences), out=offsets[1:])
    aligned = Sequences(items[keep], offsets, seqs.users, seqs.timestamps[keep])
    return Dataset(aligned, catalogue, dataset.user_index, None)

"""Recommendation lists in external ids: users or histories in, DataFrames out.

What a fitted recommender knows besides its weights (:class:`Fitted`), and the functions both
recommenders' ``recommend`` / ``recommend_for_histories`` call: map external ids to indices
(unknown ids counted, never guessed), build the filters, rank through :mod:`seqrec.rank` (the
one ranking path, with the popular fallback), map the lists back to external ids.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from seqrec.ann import ItemIndex, rank_rows_ann
from seqrec.data.catalogue import PAD, IdIndex
from seqrec.data.sequences import Sequences
from seqrec.errors import NotFittedError, UnknownUserError
from seqrec.filters import Filters, ItemSets, item_mask
from seqrec.rank import TopK, rank_rows

UnknownPolicy = Literal["error", "popular", "skip"]
Retrieval = Literal["exact", "ann", "auto"]


@dataclass(frozen=True)
class Fitted:
    """What a fitted recommender knows besides its weights.

    Attributes:
        catalogue: item ids ↔ indices ``1..n_items``.
        user_index: user ids ↔ indices ``0..n_users - 1``.
        histories: the histories recommendations continue from, one row per user that has one
            (row order = ``histories.users``).
        item_counts: ``(n_items + 1,)`` int64 training interactions per item (the popular
            baseline and fallback rank by ``log(1 + count)``).
        item_info: optional per-item table (titles, genres) indexed by external item id.
    """

    catalogue: IdIndex
    user_index: IdIndex
    histories: Sequences
    item_counts: np.ndarray
    item_info: pd.DataFrame | None = None

    @property
    def n_items(self) -> int:
        return len(self.catalogue)

    def history_rows(self) -> np.ndarray:
        """``(n_users + 1,)`` int64 history row of each user index, -1 for users without one;
        the extra last entry is -1 (a user index that does not exist)."""
        rows = np.full(len(self.user_index) + 1, -1, dtype=np.int64)
        rows[self.histories.users] = np.arange(self.histories.n_sequences)
        return rows

    def popularity_scores(self) -> Tensor:
        """``(n_items + 1,)`` float32 ``log(1 + count)``; PAD ``-inf``."""
        scores = torch.from_numpy(np.log1p(self.item_counts).astype(np.float32))
        scores[PAD] = float("-inf")
        return scores


def check_histories(histories: Sequences, n_items: int, n_users: int) -> None:
    """Raise ``ValueError`` naming what is wrong when ``histories`` cannot belong to a model of
    ``n_items`` items and ``n_users`` users (offsets, item and user ranges, duplicate users)."""
    offsets, items, users = histories.offsets, histories.items, histories.users
    if len(offsets) == 0 or offsets[0] != 0 or np.any(np.diff(offsets) < 0) \
            or offsets[-1] != len(items):
        raise ValueError("histories: offsets must rise from 0 to the number of items")
    if len(items) and (items.min() < 1 or items.max() > n_items):
        raise ValueError(f"histories: item indices outside 1..{n_items} "
                         f"(found {int(items.min())}..{int(items.max())})")
    if len(users) != len(offsets) - 1:
        raise ValueError(f"histories: {len(users)} users for {len(offsets) - 1} rows")
    if len(users) and (users.min() < 0 or users.max() >= n_users):
        raise ValueError(f"histories: user indices outside 0..{n_users - 1}")
    if len(np.unique(users)) != len(users):
        raise ValueError("histories: a user has two rows")


def fitted_state(model: Any) -> Fitted:
    if model.fitted is None:
        raise NotFittedError("the model is not fitted: call fit() or seqrec.load_model() first")
    return model.fitted


def fitted_field(name: str) -> property:
    """A read-only property for field ``name`` of the model's :class:`Fitted` record, shared by
    both recommenders (raises :class:`~seqrec.errors.NotFittedError` before fit/load)."""
    return property(lambda model: getattr(fitted_state(model), name),
                    doc=f"The fitted model's ``{name}`` (see :class:`Fitted`).")


def set_histories(model: Any, histories: Sequences) -> None:
    """Make ``model`` serve from ``histories`` (see ``SequentialRecommender.set_histories``)."""
    data = fitted_state(model)
    check_histories(histories, data.n_items, len(data.user_index))
    model.fitted = replace(data, histories=histories)


def _filters(data: Fitted, include_items: Iterable[Any] | None,
             exclude_items: Iterable[Any] | None) -> tuple[Tensor | None, Tensor | None]:
    """Shared include / exclude masks from external ids; unknown ids are dropped and counted in
    one warning. An empty ``include_items`` allows nothing."""
    masks: list[Tensor | None] = []
    for name, ids in (("include_items", include_items), ("exclude_items", exclude_items)):
        if ids is None:
            masks.append(None)
            continue
        idx = data.catalogue.to_index(list(ids), unknown="pad")
        unknown = int((idx < 0).sum())
        if unknown:
            warnings.warn(f"{name}: {unknown} unknown item id{'s' if unknown != 1 else ''} "
                          "dropped", stacklevel=4)
        masks.append(item_mask(data.n_items, idx[idx >= 0]))
    return masks[0], masks[1]


def use_index(retrieval: str, index: ItemIndex | None, n_items: int,
              include: Tensor | None = None) -> bool:
    """Whether a list request goes through the index: ``"exact"`` never, ``"ann"`` always (an
    index is needed), ``"auto"`` when there is one, the catalogue has ``auto_min_items`` items
    and a shared ``include`` mask (if any) allows at least ``n_items / overfetch`` of them
    (fewer would leave most candidates filtered out and most rows to the exact path).

    Raises:
        ValueError: an unknown ``retrieval``, ``"ann"`` without an index, or an index of
            another catalogue size.
    """
    if retrieval not in ("exact", "ann", "auto"):
        raise ValueError(f"retrieval={retrieval!r}: expected 'exact', 'ann' or 'auto'")
    if retrieval == "exact" or (index is None and retrieval == "auto"):
        return False
    if index is None:
        raise ValueError("retrieval='ann': the model has no ANN index; build one with "
                         "model.ann_index = seqrec.ann.build_index(model.item_embeddings()) (a "
                         "saved one loads only with FAISS: pip install 'seqrec[ann]')")
    if index.n_items != n_items:
        raise ValueError(f"ANN index of {index.n_items} items for a catalogue of {n_items}: "
                         "rebuild it")
    if retrieval == "ann":
        return True
    allowed = n_items if include is None else int(include[1:].sum())
    return n_items >= index.config.auto_min_items and allowed * index.config.overfetch >= n_items


def _check_options(model: Any, on_unknown_user: str, retrieval: str) -> None:
    """Options checked before any work: the unknown-user policy and ``retrieval`` (see
    :func:`use_index`)."""
    use_index(retrieval, getattr(model, "ann_index", None), fitted_state(model).n_items)
    if on_unknown_user not in ("error", "popular", "skip"):
        raise ValueError(f"on_unknown_user={on_unknown_user!r}: expected 'error', 'popular' "
                         "or 'skip'")


def to_frame(catalogue: IdIndex, best: TopK, keys: np.ndarray, key_name: str,
           item_name: str = "item_id") -> pd.DataFrame:
    """Long DataFrame ``(key, item, score, rank)`` without the empty (PAD) slots; keys given as
    Python objects get their own dtype back (int64 for integer ids)."""
    n_rows, width = best.items.shape
    flat_items = best.items.reshape(-1).numpy()
    keep = flat_items != PAD
    return pd.DataFrame({
        key_name: pd.Series(np.repeat(keys, width)[keep]).infer_objects(),
        item_name: catalogue.to_external(flat_items[keep]),
        "score": best.scores.reshape(-1).numpy()[keep],
        "rank": np.tile(np.arange(1, width + 1), n_rows)[keep],
    })


def _skip_warning(count: int, one: str, many: str) -> None:
    if count:
        warnings.warn(f"{count} {one if count == 1 else many} skipped", stacklevel=4)


def recommend_users(model: Any, users: Iterable[Any], k: int = 10, *, filter_viewed: bool = True,
                    include_items: Iterable[Any] | None = None,
                    exclude_items: Iterable[Any] | None = None,
                    on_unknown_user: UnknownPolicy = "error",
                    batch_size: int = 1024, retrieval: Retrieval = "auto") -> pd.DataFrame:
    """Top-``k`` for known users by external id; see :meth:`SequentialRecommender.recommend`."""
    data = fitted_state(model)
    _check_options(model, on_unknown_user, retrieval)
    user_list = np.asarray(list(users), dtype=object)
    user_idx = data.user_index.to_index(user_list, unknown="pad")
    rows = data.history_rows()[user_idx]  # -1 (the extra entry) for unknown ids
    unknown = rows < 0
    if unknown.any() and on_unknown_user == "error":
        raise UnknownUserError(user_list[unknown].tolist())
    if on_unknown_user == "skip":
        _skip_warning(int(unknown.sum()), "unknown user", "unknown users")
        user_list, rows, unknown = user_list[~unknown], rows[~unknown], unknown[~unknown]
    h = data.histories
    offsets = np.append(h.offsets, h.offsets[-1])  # one extra empty row for unknown users
    rows = np.where(unknown, h.n_sequences, rows)
    histories = ItemSets(h.items, offsets, rows)
    best = _rank(model, data, histories, k, filter_viewed, include_items, exclude_items,
                 fallback=unknown, batch_size=batch_size, retrieval=retrieval,
                 timestamps=h.timestamps)
    return to_frame(data.catalogue, best, user_list, "user_id")


def recommend_histories(model: Any, histories: Sequence[Sequence[Any]], k: int = 10, *,
                        filter_viewed: bool = True, include_items: Iterable[Any] | None = None,
                        exclude_items: Iterable[Any] | None = None,
                        on_unknown_user: UnknownPolicy = "error",
                        batch_size: int = 1024, retrieval: Retrieval = "auto",
                        timestamps: Sequence[Sequence[int]] | None = None,
                        query_times: Sequence[int] | None = None) -> pd.DataFrame:
    """Top-``k`` for anonymous histories; see
    :meth:`SequentialRecommender.recommend_for_histories`."""
    data = fitted_state(model)
    _check_options(model, on_unknown_user, retrieval)
    if timestamps is not None and [len(t) for t in timestamps] != [len(h) for h in histories]:
        raise ValueError("timestamps: one time per history item expected")
    asked_at = None
    if query_times is not None:
        if timestamps is None:
            raise ValueError("query_times: give the histories' timestamps too (the gaps between "
                             "them and the query time are what time-aware layers read)")
        asked_at = np.asarray(query_times, dtype=np.int64)
        if asked_at.shape != (len(histories),):
            raise ValueError(f"query_times: one time per history expected ({len(histories)}), "
                             f"got shape {asked_at.shape}")
    indexed = [data.catalogue.to_index(list(h), unknown="pad") for h in histories]
    n_unknown = sum(int((idx < 0).sum()) for idx in indexed)
    if n_unknown:
        warnings.warn(f"histories: {n_unknown} unknown item id{'s' if n_unknown != 1 else ''} "
                      "dropped", stacklevel=3)
    known = [idx[idx >= 0] for idx in indexed]
    times = None if timestamps is None else [np.asarray(t, dtype=np.int64)[idx >= 0]
                                             for t, idx in zip(timestamps, indexed, strict=True)]
    empty = np.array([len(idx) == 0 for idx in known], dtype=bool)
    keys = np.arange(len(known))
    if empty.any() and on_unknown_user == "error":
        positions = np.flatnonzero(empty).tolist()
        raise UnknownUserError(positions, message=(
            f"histories {positions[:5]}{'...' if len(positions) > 5 else ''}: no item known to "
            "the model; such a history is treated as an unknown user (see on_unknown_user)"))
    if on_unknown_user == "skip":
        _skip_warning(int(empty.sum()), "history with no known item",
                      "histories with no known item")
        known, keys, empty = [known[i] for i in keys[~empty]], keys[~empty], empty[~empty]
        times = None if times is None else [times[i] for i in keys]
        asked_at = None if asked_at is None else asked_at[keys]
    stamps = None if times is None else (np.concatenate(times) if times else
                                         np.zeros(0, np.int64))
    best = _rank(model, data, ItemSets.from_lists(known), k, filter_viewed, include_items,
                 exclude_items, fallback=empty, batch_size=batch_size, retrieval=retrieval,
                 timestamps=stamps, query_times=asked_at)
    return to_frame(data.catalogue, best, keys, "history")


def _rank(model: Any, data: Fitted, histories: ItemSets, k: int, filter_viewed: bool,
          include_items: Iterable[Any] | None, exclude_items: Iterable[Any] | None, *,
          fallback: np.ndarray, batch_size: int, retrieval: str,
          timestamps: np.ndarray | None = None, query_times: np.ndarray | None = None) -> TopK:
    index = getattr(model, "ann_index", None)
    include, exclude = _filters(data, include_items, exclude_items)
    approximate = use_index(retrieval, index, data.n_items, include)  # checks retrieval first
    filters = Filters(seen=histories if filter_viewed else None, include=include, exclude=exclude)
    rank = partial(rank_rows_ann, index=index) if approximate else rank_rows
    return rank(HistoryScorer(model, histories, timestamps, query_times), n_rows=histories.n_rows,
                n_items=data.n_items, k=k, filters=filters, lengths=histories.lengths(), fallback=fallback,
                fallback_scores=data.popularity_scores(), batch_size=batch_size)


@dataclass(frozen=True)
class HistoryScorer:
    """A recommender over given histories as a :class:`~seqrec.rank.RowScorer`: rows are
    encoded once per block (``encode_histories``), then scored chunk by chunk
    (``score_items``).

    Attributes:
        model: the recommender.
        histories: the histories (item indices, CSR).
        timestamps: seconds aligned with ``histories.items`` for time-aware layers, or None.
        query_times: ``(histories.n_rows,)`` seconds each row's list is for, or None (the
            model's default: one unit after the last event).
    """

    model: Any
    histories: ItemSets
    timestamps: np.ndarray | None = None
    query_times: np.ndarray | None = None

    def encode(self, rows: np.ndarray) -> Tensor:
        h = self.histories
        if self.timestamps is None:  # time-free models (and the popular baseline) need no times
            return self.model.encode_histories(h.items, h.offsets, h.csr_rows()[rows])
        asked_at = None if self.query_times is None else self.query_times[rows]
        return self.model.encode_histories(h.items, h.offsets, h.csr_rows()[rows],
                                           self.timestamps, asked_at)

    def score(self, query: Tensor, start: int, stop: int) -> Tensor:
        return self.model.score_items(query, start, stop)

    def score_candidates(self, query: Tensor, items: Tensor) -> Tensor:
        return self.model.score_candidates(query, items)



"""The most-popular baseline: the same ranking for every user, ``log(1 + count)`` of training
interactions, with the recommender interface of :class:`~seqrec.recommender.SequentialRecommender`
(its lists come from :mod:`seqrec.lists`, ties by :mod:`seqrec.rank`'s rule)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from seqrec.data.sequences import Dataset, HeldOut, Sequences
from seqrec.lists import (
    Fitted,
    fitted_field,
    fitted_state,
    recommend_histories,
    recommend_users,
    set_histories,
)


class PopularRecommender:
    """Most-interacted items first (the ``popular`` baseline): the same score for every user,
    ``log(1 + count)`` of training interactions; ties by :mod:`seqrec.rank`'s rule.

    Attributes:
        fitted: ids, histories and item counts once fitted or loaded (None before).
        metadata: ``model.json`` of a loaded model (None otherwise).
    """

    config: None = None

    def __init__(self) -> None:
        self.fitted: Fitted | None = None
        self.metadata: dict[str, Any] | None = None

    n_items = fitted_field("n_items")
    catalogue = fitted_field("catalogue")
    user_index = fitted_field("user_index")
    histories = fitted_field("histories")
    item_info = fitted_field("item_info")

    def set_histories(self, histories: Sequences) -> None:
        """Serve from ``histories`` (see ``SequentialRecommender.set_histories``)."""
        set_histories(self, histories)

    def fit(self, dataset: Dataset, train: Sequences | None = None,
            validation: HeldOut | None = None, **_: Any) -> None:
        """Count training interactions per item (``train`` defaults to all of ``dataset``);
        ``validation`` and training options are accepted and unused."""
        train = dataset.sequences if train is None else train
        self.fitted = Fitted(dataset.catalogue, dataset.user_index, train,
                             train.item_counts(dataset.n_items), dataset.item_info)

    def encode_histories(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray,
                         timestamps: np.ndarray | None = None,
                         query_times: np.ndarray | None = None) -> Tensor:
        """``(len(rows), 0)``: popularity reads nothing of a history."""
        return torch.zeros(len(rows), 0)

    def score_items(self, hidden: Tensor, start: int = 0, stop: int | None = None) -> Tensor:
        """``(len(hidden), stop - start)`` float32 ``log(1 + count)`` of items ``start ..``,
        identical rows; PAD ``-inf``."""
        scores = fitted_state(self).popularity_scores()[start:stop]
        return scores.expand(len(hidden), -1).clone()

    def score_block(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> Tensor:
        """``(len(rows), n_items + 1)`` float32, identical rows; PAD ``-inf``."""
        return self.score_items(self.encode_histories(items, offsets, rows))

    def recommend(self, users: Iterable[Any], k: int = 10, **options: Any) -> pd.DataFrame:
        """Same contract as :meth:`SequentialRecommender.recommend`."""
        return recommend_users(self, users, k, **options)

    def recommend_for_histories(self, histories: Sequence[Sequence[Any]], k: int = 10,
                                **options: Any) -> pd.DataFrame:
        """Same contract as :meth:`SequentialRecommender.recommend_for_histories` (the history
        only filters seen items: popularity does not depend on it)."""
        return recommend_histories(self, histories, k, **options)

"""User-facing recommenders: fit on a :class:`~seqrec.data.Dataset`, recommend in external ids.

:class:`SequentialRecommender` wraps the transformer parts (eSASRec and relatives);
:class:`PopularRecommender` is the most-interacted-items baseline with the same interface. Both
produce a score block for a batch of histories, and everything after that — seen-item, include
and exclude masks, top-K, id mapping — is shared (:func:`ranked_frame`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from seqrec.build import Parts, build_parts
from seqrec.config import Config, preset
from seqrec.data.sequences import Dataset, HeldOut, IdIndex, Sequences
from seqrec.recommend import apply_filters, item_mask, mask_seen, top_k
from seqrec.train import FitResult, encode_histories, fit

log = logging.getLogger(__name__)

UnknownUser = Literal["error", "popular", "skip"]


ScoreBlock = Callable[[np.ndarray, np.ndarray, np.ndarray], Tensor]
"""``(items, offsets, rows) -> (len(rows), n_items + 1)`` float32 scores of CSR histories ``rows``,
PAD column ``-inf``: what every recommender provides as ``score_block``."""


def item_popularity(items: np.ndarray, n_items: int) -> np.ndarray:
    """``(n_items + 1,)`` int64 interaction counts per item index (index 0 = PAD, always 0)."""
    counts = np.bincount(items, minlength=n_items + 1).astype(np.int64)
    counts[0] = 0
    return counts


class _FittedState:
    """What every fitted recommender carries: mappings, known histories, popularity."""

    catalogue: IdIndex
    user_index: IdIndex
    histories: Sequences  # one row per known user, row order = histories.users
    popularity: np.ndarray
    item_info: pd.DataFrame | None

    def _remember(self, dataset: Dataset, train: Sequences) -> None:
        self.catalogue = dataset.catalogue
        self.user_index = dataset.user_index
        self.histories = train
        self.popularity = item_popularity(train.items, len(dataset.catalogue))
        self.item_info = dataset.item_info

    @property
    def n_items(self) -> int:
        return len(self.catalogue)

    def _check_fitted(self) -> None:
        if not hasattr(self, "catalogue"):
            raise RuntimeError("the model is not fitted: call fit() or seqrec.load_model() first")


class SequentialRecommender(_FittedState):
    """A transformer sequential recommender assembled from parts (see :mod:`seqrec.build`).

    Args:
        config: the full configuration; default the ``esasrec`` preset.
        parts_override: optional callable ``(parts) -> parts`` to swap any part from Python
            (e.g. ``lambda p: dataclasses.replace(p, loss=MyLoss())``), applied at fit time.

    Example:
        >>> model = SequentialRecommender(preset("esasrec", dim=64))  # doctest: +SKIP
        >>> model.fit(dataset, split.train, validation=split.validation)  # doctest: +SKIP
        >>> model.recommend([user_id], k=10)  # doctest: +SKIP
    """

    def __init__(self, config: Config | None = None, parts_override=None) -> None:
        self.config = config or preset("esasrec")
        self.parts_override = parts_override
        self.parts: Parts | None = None
        self.fit_result: FitResult | None = None

    # ---- training ----------------------------------------------------------------------------
    def fit(self, dataset: Dataset, train: Sequences | None = None, validation: HeldOut | None = None,
            *, checkpoint_dir: str | Path | None = None, resume: bool = False,
            progress: bool = False, fabric: Any = None, eval_k: int = 10) -> FitResult:
        """Train on ``train`` sequences (default: all of ``dataset``), early-stopping on
        ``validation`` NDCG@``eval_k`` (full ranking, seen items filtered) if given.

        Args:
            dataset: supplies the item catalogue, user ids and item info.
            train: training sequences (e.g. ``split.train``), never containing held-out targets.
            validation: held-out validation part (e.g. ``split.validation``).
            checkpoint_dir: write a checkpoint after every epoch there; ``resume`` continues.
            progress: show a progress bar.
            fabric: a launched Lightning Fabric (for DDP); default one built from the config.

        Returns:
            :class:`~seqrec.train.FitResult`.
        """
        train = dataset.sequences if train is None else train
        self._remember(dataset, train)
        # initial weights follow config.seed, not whatever the global generator holds
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            parts = build_parts(self.config, self.n_items)
        if self.parts_override is not None:
            parts = self.parts_override(parts)
        self.parts = parts
        validate = None
        if validation is not None and validation.targets.n_sequences:
            from seqrec.evaluate import evaluate

            def validate(_encoder: torch.nn.Module) -> float:
                return evaluate(self, validation, k=eval_k, metrics=("ndcg",)).means[f"ndcg@{eval_k}"]

        self.fit_result = fit(parts, self.config, train.items, train.offsets, validate=validate,
                              checkpoint_dir=checkpoint_dir, resume=resume, progress=progress,
                              fabric=fabric)
        return self.fit_result

    # ---- scoring -----------------------------------------------------------------------------
    def score_block(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> Tensor:
        """Full-catalogue scores of histories ``rows`` of the CSR arrays.

        Returns:
            ``(len(rows), n_items + 1)`` float32 on CPU; PAD column ``-inf``.
        """
        self._check_fitted()
        assert self.parts is not None
        encoder = self.parts.encoder
        encoder.eval()
        device = next(encoder.parameters()).device
        hidden = encode_histories(encoder, self.parts, items, offsets, rows, device)
        with torch.no_grad():
            return encoder.scores(hidden).cpu()

    def item_embeddings(self) -> Tensor:
        """``(n_items + 1, dim)`` float32 output embeddings (row 0 = PAD)."""
        self._check_fitted()
        assert self.parts is not None
        return self.parts.encoder.candidate_embeddings().detach().float().cpu()

    # ---- recommending ------------------------------------------------------------------------
    def recommend(self, users: Iterable[Any], k: int = 10, *, filter_viewed: bool = True,
                  include_items: Iterable[Any] | None = None,
                  exclude_items: Iterable[Any] | None = None,
                  on_unknown_user: UnknownUser = "error", batch_size: int = 1024) -> pd.DataFrame:
        """Top-``k`` items for known users (external ids), filters applied before ranking."""
        return recommend_users(self, users, k, filter_viewed=filter_viewed,
                               include_items=include_items, exclude_items=exclude_items,
                               on_unknown_user=on_unknown_user, batch_size=batch_size)

    def recommend_for_histories(self, histories: Sequence[Sequence[Any]], k: int = 10, *,
                                filter_viewed: bool = True,
                                include_items: Iterable[Any] | None = None,
                                exclude_items: Iterable[Any] | None = None) -> pd.DataFrame:
        """Top-``k`` for anonymous histories (lists of external item ids, oldest first)."""
        return recommend_histories(self, histories, k, filter_viewed=filter_viewed,
                                   include_items=include_items, exclude_items=exclude_items)

    def similar_items(self, items: Iterable[Any], k: int = 10) -> pd.DataFrame:
        """Item-to-item neighbours by cosine similarity of the item embeddings.

        Returns:
            DataFrame ``(item_id, similar_item_id, score, rank)``; an item is never its own
            neighbour.

        Raises:
            KeyError: an unknown item id (named).
        """
        self._check_fitted()
        query = list(items)
        idx = self.catalogue.to_index(np.asarray(query, dtype=object))
        emb = torch.nn.functional.normalize(self.item_embeddings(), dim=1)
        scores = emb[torch.from_numpy(idx)] @ emb.T  # (n_query, n_items + 1)
        scores[torch.arange(len(idx)), torch.from_numpy(idx)] = float("-inf")
        apply_filters(scores)
        best = top_k(scores, k)
        return _frame(self.catalogue, best.items, best.scores,
                      np.asarray(query, dtype=object), "item_id", "similar_item_id")

    # ---- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path, metrics: dict[str, float] | None = None) -> Path:
        """Write the model directory (see :mod:`seqrec.checkpoint`)."""
        from seqrec.checkpoint import save_model

        return save_model(self, path, metrics=metrics)


class PopularRecommender(_FittedState):
    """Most-interacted items first (the ``popular`` baseline): the same score for every user,
    ``log(1 + count)`` of training interactions."""

    config = None

    def fit(self, dataset: Dataset, train: Sequences | None = None, validation: HeldOut | None = None,
            **_: Any) -> None:
        """Count training interactions per item (``train`` defaults to all of ``dataset``)."""
        self._remember(dataset, dataset.sequences if train is None else train)

    def score_block(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> Tensor:
        """``(len(rows), n_items + 1)`` float32, identical rows; PAD ``-inf``."""
        self._check_fitted()
        return popularity_scores(self.popularity, len(rows))

    def recommend(self, users: Iterable[Any], k: int = 10, **kwargs: Any) -> pd.DataFrame:
        """Same contract as :meth:`SequentialRecommender.recommend`."""
        return recommend_users(self, users, k, **kwargs)

    def recommend_for_histories(self, histories: Sequence[Sequence[Any]], k: int = 10,
                                **kwargs: Any) -> pd.DataFrame:
        """Same contract as :meth:`SequentialRecommender.recommend_for_histories` (the history
        only filters seen items: popularity does not depend on it)."""
        return recommend_histories(self, histories, k, **kwargs)

    def save(self, path: str | Path, metrics: dict[str, float] | None = None) -> Path:
        """Write a model directory (JSON + safetensors, no pickle); see
        :func:`seqrec.checkpoint.save_model` for the layout and errors."""
        from seqrec.checkpoint import save_model

        return save_model(self, path, metrics=metrics)


# ---- shared recommend path ---------------------------------------------------------------------
def _filter_masks(model: _FittedState, include_items, exclude_items) -> tuple[Tensor | None, Tensor | None]:
    masks = []
    for name, ids in (("include_items", include_items), ("exclude_items", exclude_items)):
        if ids is None:
            masks.append(None)
            continue
        values = list(ids)
        idx = model.catalogue.to_index(np.asarray(values, dtype=object), unknown="pad")
        unknown = int((idx < 0).sum())
        if unknown:
            warnings.warn(f"{name}: {unknown} unknown item id(s) dropped", stacklevel=3)
        masks.append(item_mask(model.n_items, idx[idx >= 0]))
    return masks[0], masks[1]


def popularity_scores(popularity: np.ndarray, n_rows: int) -> Tensor:
    """``(n_rows, n_items + 1)`` float32 rows of ``log(1 + count)``; PAD ``-inf``."""
    scores = torch.from_numpy(np.log1p(popularity).astype(np.float32))
    scores = scores.expand(n_rows, -1).clone()
    scores[:, 0] = float("-inf")
    return scores


def ranked_rows(score_block: ScoreBlock, n_items: int, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray, k: int, *,
                filter_viewed: bool, include: Tensor | None, exclude: Tensor | None,
                batch_size: int = 1024) -> tuple[Tensor, Tensor]:
    """Top-``k`` item indices and scores for histories ``rows``: score, mask, rank — one model
    call per block, no refill.

    Returns:
        ``(items, scores)``: ``(len(rows), min(k, n_items))`` int64 / float32; PAD and ``-inf``
        in slots beyond a row's eligible items.
    """
    # blocks of similar history length: each block is padded only to its own longest history
    order = np.argsort(np.minimum(offsets[rows + 1] - offsets[rows], 10_000), kind="stable")
    sorted_rows = rows[order]
    out_items, out_scores = [], []
    for start in range(0, len(rows), batch_size):
        block = sorted_rows[start : start + batch_size]
        scores = score_block(items, offsets, block)
        if filter_viewed:
            mask_seen(scores, items, offsets, block)
        apply_filters(scores, include, exclude)
        best = top_k(scores, k)
        out_items.append(best.items)
        out_scores.append(best.scores)
    if not out_items:
        width = min(k, n_items)
        return torch.zeros(0, width, dtype=torch.int64), torch.zeros(0, width)
    restore = torch.from_numpy(np.argsort(order, kind="stable"))  # back to the caller's row order
    return torch.cat(out_items)[restore], torch.cat(out_scores)[restore]


def _frame(catalogue: IdIndex, items: Tensor, scores: Tensor, keys: np.ndarray,
           key_name: str, item_name: str = "item_id") -> pd.DataFrame:
    """Long DataFrame ``(key, item, score, rank)`` without the empty (PAD) slots."""
    n_rows, width = items.shape
    flat_items = items.reshape(-1).numpy()
    keep = flat_items != 0
    ranks = np.tile(np.arange(1, width + 1), n_rows)[keep]
    return pd.DataFrame({
        key_name: np.repeat(keys, width)[keep],
        item_name: catalogue.to_external(flat_items[keep]),
        "score": scores.reshape(-1).numpy()[keep],
        "rank": ranks,
    })


def recommend_users(model: _FittedState, users: Iterable[Any], k: int = 10, *,
                    filter_viewed: bool = True, include_items: Iterable[Any] | None = None,
                    exclude_items: Iterable[Any] | None = None,
                    on_unknown_user: UnknownUser = "error", batch_size: int = 1024) -> pd.DataFrame:
    """Top-``k`` for known users by external id; see :class:`SequentialRecommender`.

    Args:
        users: external user ids.
        k: list length; each user gets exactly ``min(k, eligible items)`` rows.
        filter_viewed: mask items in the user's training history.
        include_items / exclude_items: external item ids (whitelist / blacklist); unknown ids are
            dropped with a warning that counts them.
        on_unknown_user: ``"error"`` raises naming the ids; ``"popular"`` gives them the most
            popular eligible items (score = log(1 + count)); ``"skip"`` leaves them out.

    Returns:
        DataFrame ``(user_id, item_id, score, rank)`` in external ids, rank 1-based.

    Raises:
        KeyError: unknown users with ``on_unknown_user="error"``.
        ValueError: bad ``k`` or ``on_unknown_user``.
    """
    model._check_fitted()
    if on_unknown_user not in ("error", "popular", "skip"):
        raise ValueError(f"on_unknown_user={on_unknown_user!r}: expected 'error', 'popular' or 'skip'")
    user_list = np.asarray(list(users), dtype=object)
    user_idx = model.user_index.to_index(user_list, unknown="pad")
    # map user index -> row in the histories (users absent from training have no row)
    row_of = np.full(len(model.user_index), -1, dtype=np.int64)
    row_of[model.histories.users] = np.arange(model.histories.n_sequences)
    rows = np.where(user_idx >= 0, row_of[np.maximum(user_idx, 0)], -1)
    unknown = rows < 0
    if unknown.any() and on_unknown_user == "error":
        raise KeyError(f"{int(unknown.sum())} unknown user id(s): {user_list[unknown][:5].tolist()}")
    include, exclude = _filter_masks(model, include_items, exclude_items)
    h = model.histories
    known_items, known_scores = ranked_rows(model.score_block, model.n_items, h.items, h.offsets, rows[~unknown], k,
                                            filter_viewed=filter_viewed, include=include,
                                            exclude=exclude, batch_size=batch_size)
    frames = [_frame(model.catalogue, known_items, known_scores, user_list[~unknown], "user_id")]
    if unknown.any() and on_unknown_user == "popular":
        def popular(_items: np.ndarray, _offsets: np.ndarray, block: np.ndarray) -> Tensor:
            return popularity_scores(model.popularity, len(block))

        empty = np.zeros(int(unknown.sum()) + 1, dtype=np.int64)
        pop_items, pop_scores = ranked_rows(popular, model.n_items, np.zeros(0, dtype=np.int64), empty,
                                            np.arange(int(unknown.sum())), k, filter_viewed=False,
                                            include=include, exclude=exclude)
        frames.append(_frame(model.catalogue, pop_items, pop_scores, user_list[unknown], "user_id"))
    out = pd.concat(frames, ignore_index=True)
    if len(frames) > 1:  # keep the caller's user order
        order = {u: i for i, u in enumerate(user_list.tolist())}
        out = out.sort_values(["user_id", "rank"], key=lambda s: s.map(order) if s.name == "user_id" else s,
                              kind="stable", ignore_index=True)
    return out


def recommend_histories(model: _FittedState, histories: Sequence[Sequence[Any]], k: int = 10, *,
                        filter_viewed: bool = True, include_items: Iterable[Any] | None = None,
                        exclude_items: Iterable[Any] | None = None) -> pd.DataFrame:
    """Top-``k`` for anonymous histories (not in training), oldest item first.

    Unknown item ids inside a history are dropped, with one warning that counts them.

    Returns:
        DataFrame ``(history, item_id, score, rank)``; ``history`` is the position of the history
        in the input list.
    """
    model._check_fitted()
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    flat = [x for h in histories for x in h]
    idx = model.catalogue.to_index(np.asarray(flat, dtype=object), unknown="pad")
    known = idx >= 0
    if not known.all():
        warnings.warn(f"histories: {int((~known).sum())} unknown item id(s) dropped", stacklevel=3)
    row_ids = np.repeat(np.arange(len(histories)), lengths)[known]
    items = idx[known]
    offsets = np.zeros(len(histories) + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_ids, minlength=len(histories)), out=offsets[1:])
    include, exclude = _filter_masks(model, include_items, exclude_items)
    best_items, best_scores = ranked_rows(model.score_block, model.n_items, items, offsets, np.arange(len(histories)), k,
                                          filter_viewed=filter_viewed, include=include, exclude=exclude)
    return _frame(model.catalogue, best_items, best_scores, np.arange(len(histories)), "history")


def esasrec(**overrides: Any) -> SequentialRecommender:
    """eSASRec (arXiv 2508.06450): next-item objective + LiGR layers + sampled softmax (256
    negatives); ``overrides`` change any :class:`~seqrec.config.Config` field."""
    return SequentialRecommender(preset("esasrec", **overrides))


def build_model(preset_name: str = "esasrec", **overrides: Any) -> SequentialRecommender | PopularRecommender:
    """A recommender by preset name (``popular`` or any of :data:`seqrec.config.PRESETS`).

    Raises:
        ValueError: unknown preset or bad override.
    """
    if preset_name == "popular":
        if overrides:
            raise ValueError(f"preset 'popular' takes no settings, got {sorted(overrides)}")
        return PopularRecommender()
    return SequentialRecommender(preset(preset_name, **overrides))

"""User-facing recommenders: fit on a :class:`~seqrec.data.Dataset`, recommend in external ids.

:class:`SequentialRecommender` wraps the transformer parts (eSASRec and relatives);
:class:`PopularRecommender` is the most-interacted-items baseline with the same interface. Both
hold a :class:`~seqrec.lists.Fitted` record (id mappings, histories, item counts) once fitted or
loaded and score blocks of histories; their lists come from :mod:`seqrec.lists`, which ranks
through the one path of :mod:`seqrec.rank` (masks, top-K, tie rule, popular fallback).

Saving and loading are :func:`seqrec.save_model` / :func:`seqrec.load_model`
(:mod:`seqrec.model_dir`), which import this module, never the reverse.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from seqrec.ann import ItemIndex
from seqrec.build import Parts, build_parts
from seqrec.checkpoint import FitResult
from seqrec.config import Config, Runtime, preset
from seqrec.data.sequences import Dataset, HeldOut, Sequences
from seqrec.evaluation import validator
from seqrec.lists import (
    Fitted,
    Retrieval,
    UnknownPolicy,
    fitted_field,
    fitted_state,
    recommend_histories,
    recommend_users,
    set_histories,
    to_frame,
)
from seqrec.objectives import Times
from seqrec.popular import PopularRecommender
from seqrec.rank import TopK
from seqrec.similar import cosine_neighbours
from seqrec.train import OnBatch, OnEpoch, fit, launch, make_fabric


class SequentialRecommender:
    """A transformer sequential recommender assembled from parts (see :mod:`seqrec.build`).

    Args:
        config: the full model configuration; default the ``esasrec`` preset.
        parts_override: optional callable ``(parts) -> parts`` to swap any part from Python
            (e.g. ``lambda p: dataclasses.replace(p, loss=MyLoss())``), applied at fit time.
            :func:`seqrec.save_model` saves such a model only when its encoder and objective
            are still the ones ``config`` builds (training-only parts may differ).
        runtime: devices, precision and threads for training (never saved with the model).

    Attributes:
        config: as given.
        parts: the model's parts once fitted or loaded (None before).
        fitted: ids, histories and item counts once fitted or loaded (None before).
        fit_result: what :meth:`fit` did (None for a loaded model).
        metadata: ``model.json`` of a loaded model (None otherwise).
        ann_index: approximate item index (:mod:`seqrec.ann`), saved with the model.

    Example:
        >>> model = SequentialRecommender(preset("esasrec", dim=64))  # doctest: +SKIP
        >>> model.fit(dataset, split.train, validation=split.validation)  # doctest: +SKIP
        >>> model.recommend([user_id], k=10)  # doctest: +SKIP
    """

    def __init__(self, config: Config | None = None, parts_override: Any = None,
                 runtime: Runtime | None = None) -> None:
        self.config: Config = config or preset("esasrec")
        self.parts_override = parts_override
        self.runtime: Runtime = runtime or Runtime()
        self.parts: Parts | None = None
        self.fitted: Fitted | None = None
        self.fit_result: FitResult | None = None
        self.metadata: dict[str, Any] | None = None
        self._unit_embeddings: Tensor | None = None
        self._columns_cache: tuple[tuple[Any, ...], Tensor] | None = None
        self.ann_index: ItemIndex | None = None

    # ---- state -------------------------------------------------------------------------------
    n_items = fitted_field("n_items")
    catalogue = fitted_field("catalogue")
    user_index = fitted_field("user_index")
    histories = fitted_field("histories")
    item_info = fitted_field("item_info")

    def set_histories(self, histories: Sequences) -> None:
        """Serve from ``histories`` from now on (e.g. each user's whole log after training on
        the train part of a split). Item and user indices must be the model's own (see
        :func:`seqrec.align_to_catalogue` for a log indexed otherwise).

        Raises:
            NotFittedError: before fit/load.
            ValueError: indices outside the model's catalogue or users, or bad offsets.
        """
        set_histories(self, histories)

    # ---- training ----------------------------------------------------------------------------
    def fit(self, dataset: Dataset, train: Sequences | None = None,
            validation: HeldOut | None = None, *, checkpoint_dir: str | Path | None = None,
            resume: bool = False, progress: bool = False, fabric: Any = None, eval_k: int = 10,
            on_epoch: OnEpoch | None = None, on_batch: OnBatch | None = None,
            sharded: bool = False) -> FitResult:
        """Train on ``train`` sequences (default: all of ``dataset``), early-stopping on
        ``validation`` NDCG@``eval_k`` (full ranking, seen items filtered) if given.

        Args:
            dataset: supplies the item catalogue, user ids and item info.
            train: training sequences (e.g. ``split.train``), never containing held-out targets.
            validation: held-out validation part (e.g. ``split.validation``).
            checkpoint_dir: write a checkpoint after every epoch there; ``resume`` continues.
            progress: draw a progress bar and an epoch line on stderr.
            fabric: a launched Lightning Fabric (for DDP); default one from ``self.runtime``.
            eval_k: cutoff of the validation NDCG.
            on_epoch / on_batch: callbacks with an :class:`~seqrec.checkpoint.EpochRecord` /
                :class:`~seqrec.train.BatchRecord` (see :func:`seqrec.train.fit`).
            sharded: ``dataset`` is this process's shard of users of a larger log
                (:func:`seqrec.data.partitioned.read_shard`, indexed with the whole log's
                catalogue); batches are not split across processes and the validation NDCG is
                the mean over every process's users.

        Returns:
            :class:`~seqrec.checkpoint.FitResult`.
        """
        train = dataset.sequences if train is None else train
        self.fitted = Fitted(dataset.catalogue, dataset.user_index, train,
                             train.item_counts(dataset.n_items), dataset.item_info)
        self._unit_embeddings = self.ann_index = None  # both derive from the old item table
        # initial weights follow config.seed, not whatever the global generator holds
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            parts = build_parts(self.config, dataset.n_items)
        self.parts = parts if self.parts_override is None else self.parts_override(parts)
        if sharded and fabric is None:
            fabric = launch(make_fabric(self.runtime))
        validate = (validator(self, validation, eval_k, sharded, fabric)
                    if validation is not None and (validation.targets.n_sequences or sharded)
                    else None)  # a shard may hold no validation user, yet must join the others
        if progress:
            from seqrec.progress import TrainingProgress

            bar = TrainingProgress(bars=True, lines=True)
            on_epoch, on_batch = bar.chain(on_epoch, on_batch)
        self.runtime.apply_threads()
        self.fit_result = fit(self.parts, self.config, train.items, train.offsets,
                              validate=validate, checkpoint_dir=checkpoint_dir, resume=resume,
                              fabric=fabric, runtime=self.runtime, on_epoch=on_epoch,
                              on_batch=on_batch, sharded=sharded, timestamps=train.timestamps)
        return self.fit_result

    # ---- scoring -----------------------------------------------------------------------------
    def encode_histories(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray,
                         timestamps: np.ndarray | None = None,
                         query_times: np.ndarray | None = None) -> Tensor:
        """``(len(rows), dim)`` float32 last-position hidden states (on the model's device) of
        histories ``rows`` of the CSR arrays; the last layer computes that position only.

        Args:
            timestamps: ``(n_interactions,)`` int64 seconds aligned with ``items``, read by
                time-aware layers (HSTU, FuXi-α); None: every time gap counts as 0.
            query_times: ``(len(rows),)`` int64 seconds asked for; default last event + 1.
        """
        fitted_state(self)
        assert self.parts is not None
        encoder, objective = self.parts.encoder, self.parts.objective
        encoder.eval()
        device = next(encoder.parameters()).device
        inputs = torch.from_numpy(objective.inference_inputs(items, offsets, rows)).to(device)
        if inputs.shape[1] == 0:  # all histories empty: one PAD column, the model sees nothing
            inputs = torch.zeros(len(rows), 1, dtype=torch.int64, device=device)
        times = None
        if encoder.uses_times:
            stamps = np.zeros(len(items), np.int64) if timestamps is None else timestamps
            raw = objective.inference_times(stamps, offsets, rows, inputs.shape[1], query_times)
            times = Times(raw.inputs.to(device), raw.queries.to(device))
        with torch.no_grad():
            return encoder.encode(inputs, causal=objective.causal, last_only=True,
                                  times=times).float()

    def score_items(self, hidden: Tensor, start: int = 0, stop: int | None = None) -> Tensor:
        """Scores of items ``start .. stop - 1`` (default: the whole catalogue) for ``hidden``
        ``(n, dim)`` from :meth:`encode_histories`.

        Returns:
            ``(n, stop - start)`` float32 on CPU; PAD (item 0) at ``-inf``.
        """
        assert self.parts is not None
        stop = self.parts.encoder.n_items + 1 if stop is None else stop
        with torch.no_grad():
            scores = (hidden @ self._columns(start, stop)).cpu()  # (n, stop - start)
        if start == 0:
            scores[:, 0] = float("-inf")
        return scores

    def _columns(self, start: int, stop: int) -> Tensor:
        """``(dim, stop - start)`` float32 candidate rows transposed, contiguous (up to 2x faster
        on CPU, same bits); the last (<= 64 MiB) is kept for a ranking call's tiles, keyed by the
        item weights' storage and version, which training bumps after fused optimizer steps."""
        encoder = self.parts.encoder  # type: ignore[union-attr]
        weight = encoder.item_embedding.weight
        key = (start, stop, weight.device, weight.data_ptr(), weight._version)
        if self._columns_cache is not None and self._columns_cache[0] == key:
            return self._columns_cache[1]
        columns = encoder.candidate_embeddings()[start:stop].detach().float().T
        if weight.is_inference() or columns.numel() > 2**24:  # no version counter / too large
            return columns
        self._columns_cache = (key, columns.contiguous())
        return self._columns_cache[1]

    def score_candidates(self, hidden: Tensor, items: Tensor) -> Tensor:
        """``(n, n_candidates)`` float32 CPU scores of ``items (n, n_candidates)`` int64 for
        ``hidden (n, dim)``; PAD ``-inf`` (:meth:`score_items`' up to summation order)."""
        assert self.parts is not None
        table = self.parts.encoder.candidate_embeddings()
        with torch.no_grad():  # (n, n_candidates, dim) @ (n, dim, 1)
            scores = (table[items.to(table.device)].float() @ hidden.float()[:, :, None]).cpu()
        return scores.squeeze(-1).masked_fill(items == 0, float("-inf"))

    def score_block(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> Tensor:
        """Full-catalogue scores of histories ``rows`` of the CSR arrays: ``(len(rows),
        n_items + 1)`` float32 on CPU; PAD column ``-inf``."""
        return self.score_items(self.encode_histories(items, offsets, rows))

    def item_embeddings(self) -> Tensor:
        """``(n_items + 1, dim)`` float32 output embeddings (row 0 = PAD)."""
        fitted_state(self)
        assert self.parts is not None
        return self.parts.encoder.candidate_embeddings().detach().float().cpu()

    def unit_item_embeddings(self) -> Tensor:
        """``(n_items + 1, dim)`` float32 L2-normalised item embeddings (cached)."""
        if self._unit_embeddings is None:
            self._unit_embeddings = torch.nn.functional.normalize(self.item_embeddings(), dim=1)
        return self._unit_embeddings

    # ---- recommending ------------------------------------------------------------------------
    def recommend(self, users: Iterable[Any], k: int = 10, *, filter_viewed: bool = True,
                  include_items: Iterable[Any] | None = None,
                  exclude_items: Iterable[Any] | None = None,
                  on_unknown_user: UnknownPolicy = "error",
                  batch_size: int = 1024, retrieval: Retrieval = "auto") -> pd.DataFrame:
        """Top-``k`` items for known users (external ids), filters applied before ranking.

        Args:
            users: external user ids (read under the id rule of :mod:`seqrec.data.catalogue`).
            k: list length; each user gets exactly ``min(k, eligible items)`` rows.
            filter_viewed: mask the items of the user's history.
            include_items / exclude_items: external item ids (allow list / deny list); unknown
                ids are dropped with a warning that counts them; an empty allow list allows
                nothing.
            on_unknown_user: ``"error"`` raises naming the ids; ``"popular"`` gives them the
                most popular eligible items (score ``log(1 + count)``); ``"skip"`` leaves them
                out with a warning that counts them.
            batch_size: users scored per model call.
            retrieval: ``"exact"`` scores every item; ``"ann"`` takes candidates from
                ``ann_index`` (filters, scores stay exact: :mod:`seqrec.ann`); ``"auto"`` uses
                it when there is one and the catalogue is large (``auto_min_items``).

        Returns:
            DataFrame ``(user_id, item_id, score, rank)`` in external ids, rank 1-based, users
            in the given order; ties ordered by :mod:`seqrec.rank`'s rule.

        Raises:
            UnknownUserError: unknown users with ``on_unknown_user="error"``.
            ValueError: bad ``k`` or ``on_unknown_user``.
            NotFittedError: before fit/load.
        """
        return recommend_users(self, users, k, filter_viewed=filter_viewed,
                               include_items=include_items, exclude_items=exclude_items,
                               on_unknown_user=on_unknown_user, batch_size=batch_size,
                               retrieval=retrieval)

    def recommend_for_histories(self, histories: Sequence[Sequence[Any]], k: int = 10, *,
                                filter_viewed: bool = True,
                                include_items: Iterable[Any] | None = None,
                                exclude_items: Iterable[Any] | None = None,
                                on_unknown_user: UnknownPolicy = "error", batch_size: int = 1024,
                                retrieval: Retrieval = "auto",
                                timestamps: Sequence[Sequence[int]] | None = None,
                                query_times: Sequence[int] | None = None) -> pd.DataFrame:
        """Top-``k`` for anonymous histories (lists of external item ids, oldest first).

        Unknown item ids inside a history are dropped, with one warning that counts them. A
        history with no known item (empty, or all unknown) is treated as an unknown user:
        ``on_unknown_user`` decides (error / popular items / skip); options as in :meth:`recommend`.
        ``timestamps`` (seconds, one per history item) feed time-aware layers (HSTU, FuXi-α);
        without them every time gap counts as 0. ``query_times`` (one per history; needs
        ``timestamps``): when each list is asked for, e.g. now (default: as encode_histories).

        Returns:
            DataFrame ``(history, item_id, score, rank)``; ``history`` is the position of the
            history in the input list.

        Raises:
            UnknownUserError: a history with no known item and ``on_unknown_user="error"``.
            ValueError: ``timestamps`` / ``query_times`` not one per item / history.
        """
        return recommend_histories(self, histories, k, filter_viewed=filter_viewed,
                                   include_items=include_items, exclude_items=exclude_items,
                                   on_unknown_user=on_unknown_user, batch_size=batch_size,
                                   retrieval=retrieval, timestamps=timestamps,
                                   query_times=query_times)

    def similar_items(self, items: Iterable[Any], k: int = 10) -> pd.DataFrame:
        """Item-to-item neighbours by cosine similarity of the item embeddings.

        Returns:
            DataFrame ``(item_id, similar_item_id, score, rank)``, never the item itself.

        Raises:
            UnknownItemError: an unknown item id (named).
        """
        data = fitted_state(self)
        query = np.asarray(list(items), dtype=object)
        best = self.similar_topk(data.catalogue.to_index(query, where="items"), k)
        return to_frame(data.catalogue, best, query, "item_id", "similar_item_id")

    def similar_topk(self, item_indices: np.ndarray, k: int) -> TopK:
        """Cosine neighbours of item indices (never the item itself), ranked by
        :mod:`seqrec.rank`: ``(len(item_indices), k)`` :class:`~seqrec.rank.TopK`."""
        return cosine_neighbours(self.unit_item_embeddings(), item_indices, k)


Recommender = SequentialRecommender | PopularRecommender


def esasrec(**overrides: Any) -> SequentialRecommender:
    """eSASRec (arXiv 2508.06450): next-item objective + LiGR layers + sampled softmax (256
    negatives); ``overrides`` change any :class:`~seqrec.config.Config` field."""
    return SequentialRecommender(preset("esasrec", **overrides))


def build_model(preset_name: str = "esasrec", *, runtime: Runtime | None = None,
                **overrides: Any) -> Recommender:
    """A recommender by preset name (``popular`` or any of :data:`seqrec.config.PRESETS`).

    Raises:
        ValueError: unknown preset or bad override.
    """
    if preset_name == "popular":
        if overrides:
            raise ValueError(f"preset 'popular' takes no settings, got {sorted(overrides)}")
        return PopularRecommender()
    return SequentialRecommender(preset(preset_name, **overrides), runtime=runtime)

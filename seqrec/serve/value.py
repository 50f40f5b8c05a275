"""``POST /rank/value``: a request's candidates ordered by expected revenue, with the calibrator
file the server was started with (``--value-calibrator``).

The path is the library's, :func:`seqrec.value.value_rank.rank_columns_by_value`: **filter**
(candidates known to the model, minus ``exclude_items``) -> **score** (the model's next-item
log-probabilities, ``normalise`` over the catalogue or the eligible candidates) -> **calibrate**
(the saved calibrator) -> **order** (the cascade key, or the exact capped DP with ``cap``). The
request conventions are ``/recommend``'s: ids by the id rule, read once per distinct id
(:func:`~seqrec.serve.ranking.jobs_for`); unknown ids in ``history``, ``candidates`` and
``exclude_items`` dropped and counted; 404 for an unknown user or a history with no known item
(there is no popularity fallback for value ranking: popularity scores are not what the
calibrator maps); the same limits and error format. Histories are read without event times, as
the calibrator was fitted (:func:`seqrec.value.model_scores.fit_model_calibrator`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from seqrec.serve.errors import ApiError
from seqrec.serve.loading import LoadedModel
from seqrec.serve.ranking import jobs_for
from seqrec.serve.schemas import json_bytes, parse_body, value_request_schema
from seqrec.value.calibrator_file import CalibratorMismatchError, SavedCalibrator
from seqrec.value.value_rank import rank_columns_by_value


@dataclass(frozen=True)
class ValueJob:
    """One ``/rank/value`` request, mapped to item indices.

    Attributes:
        calibrator: the calibrator of the model the request started on.
        history: ``(h,)`` int64 item indices the model reads, oldest first.
        columns: ``(n,)`` int64 item indices of the known candidates, in request order.
        prices: ``(n,)`` float64 dollars; continuation: ``(n,)`` float64 in [0, 1].
        is_eligible: ``(n,)`` bool, False for candidates in ``exclude_items``.
        cap: most items to show, or None.
        normalise: "catalogue" or "eligible" (the calibrator's).
        unknown_dropped: unknown ids of the request (history, candidates, exclude_items).
    """

    calibrator: SavedCalibrator
    history: np.ndarray
    columns: np.ndarray
    prices: np.ndarray
    continuation: np.ndarray
    is_eligible: np.ndarray
    cap: int | None
    normalise: str
    unknown_dropped: int


@dataclass(frozen=True)
class _Source:
    """What :func:`~seqrec.serve.ranking.jobs_for` reads of a recommend request."""

    user_id: Any
    history: list[Any] | None
    exclude_items: list[Any] | None
    include_items: None = None
    k: int = 1
    filter_viewed: bool = False


def ready_calibrator(loaded: LoadedModel) -> SavedCalibrator:
    """The calibrator that serves ``loaded``.

    Raises:
        ApiError: 404 when the server has no calibrator file (saying how to give one); 409 when
            the file cannot serve this model version (named) since the last reload.
    """
    if loaded.value_calibrator is not None:
        return loaded.value_calibrator
    error = loaded.value_error
    if error is None:
        raise ApiError(404, "value_calibrator", "value ranking is not enabled on this server: "
                       "start it with `seqrec serve --value-calibrator FILE` (a file written by "
                       "`seqrec simulate calibrate`), or create_app(..., value_calibrator=FILE)",
                       "not_enabled")
    kind = "calibrator_mismatch" if isinstance(error, CalibratorMismatchError) else \
        "calibrator_unavailable"
    raise ApiError(409, "value_calibrator", f"{error}; /rank/value resumes at a reload "
                   f"(POST /admin/reload or SIGHUP) that finds a calibrator fitted for model "
                   f"{loaded.version}", kind)


def calibrator_status(loaded: LoadedModel) -> dict[str, Any] | None:
    """What ``/admin/reload`` says of the calibrator: None when the server has none, else
    ``{"ready": true, "model_version"}`` or ``{"ready": false, "error"}``."""
    if loaded.value_calibrator is not None:
        return {"ready": True, "model_version": loaded.value_calibrator.model_version}
    return None if loaded.value_error is None else {"ready": False, "error": str(loaded.value_error)}


class ValueRanker:
    """Parses, checks and answers ``/rank/value`` requests under this app's limits."""

    def __init__(self, max_items: int, max_ids: int) -> None:
        self.request_model = value_request_schema(max_items)
        self.max_ids = max_ids

    def parse(self, loaded: LoadedModel, body: bytes) -> ValueJob:
        """The job of a request body.

        Raises:
            ApiError: 422 naming the field (types, prices, continuation, cap, duplicate
                candidates, a ``normalise`` the calibrator was not fitted on), 413 past the id
                limits, 404 for an unknown user or a history with no known item, 404/409 as
                :func:`ready_calibrator`.
        """
        saved = ready_calibrator(loaded)
        request = parse_body(self.request_model, body)
        n_ids = len(request.candidates) + sum(
            len(ids) for ids in (request.history, request.exclude_items) if ids)
        if n_ids > self.max_ids:
            raise ApiError(413, "body", f"{n_ids} ids in one request (history, candidates and "
                           f"exclude_items together); at most {self.max_ids}", "too_many_ids")
        if request.normalise not in (None, saved.normalise):
            raise ApiError(422, "normalise", f"the server's calibrator was fitted on "
                           f"{saved.normalise!r} log-probabilities; send {saved.normalise!r} or "
                           "leave normalise out", "normalise_mismatch")
        try:
            [job] = jobs_for(loaded, [_Source(request.user_id, request.history,
                                              request.exclude_items)], "error", batch=False)
        except ApiError as error:
            if error.errors[0]["type"] != "unknown_history":
                raise
            raise ApiError(404, "history", "no item known to the model (treated as an unknown "
                           "user, as by /recommend; value ranking has no popularity fallback)",
                           "unknown_history") from None
        ids = [c.item_id for c in request.candidates]
        index = loaded.fitted.catalogue.to_index(ids, unknown="pad")
        known = np.flatnonzero(index >= 0)
        columns = index[known]
        if len(np.unique(columns)) < len(columns):
            first: dict[int, int] = {}
            for position, column in zip(known.tolist(), columns.tolist(), strict=True):
                if column in first:
                    raise ApiError(422, f"candidates[{position}].item_id", f"{ids[position]!r} "
                                   f"repeats candidates[{first[column]}]", "duplicate_item")
                first[column] = position
        candidates = [request.candidates[i] for i in known.tolist()]
        excluded = np.zeros(0, dtype=np.int64) if job.exclude is None else job.exclude
        return ValueJob(saved, job.history, columns,
                        np.array([c.price for c in candidates], dtype=np.float64),
                        np.array([c.continuation for c in candidates], dtype=np.float64),
                        ~np.isin(columns, excluded), request.cap, saved.normalise,
                        job.unknown_dropped + len(ids) - len(known))

    def answer(self, loaded: LoadedModel, job: ValueJob) -> bytes:
        """Rank ``job`` (one model call; none when no candidate is eligible) and write the
        answer: eligible items only, at most ``cap``, best first."""
        items: list[dict[str, Any]] = []
        revenue = 0.0
        if job.is_eligible.any():
            with torch.inference_mode():
                ranking = rank_columns_by_value(
                    loaded.model, job.history, job.columns, job.prices, job.continuation,
                    job.calibrator.calibrator, cap=job.cap, is_eligible=job.is_eligible,
                    normalise=job.normalise)  # type: ignore[arg-type]
            columns = zip(ranking.item_ids.tolist(), ranking.probabilities.tolist(),
                          ranking.log_probs.tolist(), ranking.prices.tolist(),
                          ranking.continuation.tolist(), ranking.keys.tolist(), strict=True)
            items = [{"item_id": i, "rank": rank + 1, "probability": p, "log_prob": lp,
                      "price": r, "continuation": c, "key": key}
                     for rank, (i, p, lp, r, c, key) in enumerate(columns)]
            revenue = ranking.expected_revenue
        return json_bytes({"items": items, "expected_revenue": revenue,
                           "model_version": loaded.version, "normalise": job.normalise,
                           "unknown_items_dropped": job.unknown_dropped})

    def whole(self, loaded: LoadedModel, body: bytes) -> bytes:
        """Parse, rank and answer in one go (a big body, on the offload thread)."""
        return self.answer(loaded, self.parse(loaded, body))

"""Estimates of ``(p, c)`` for every (session, question) at one step of the survey simulator.

``p`` is the answer probability and ``c = 1 - P(end)`` the continuation probability. The models
are fitted on logs of the random logging policy (:func:`fit_models`): a gradient-boosted answer
model calibrated with Platt scaling and the isotonic-calibrated abandonment model of
:mod:`seqrec.value.abandonment` (features :data:`~seqrec.value.abandonment.ABANDONMENT_FEATURES`:
position, seconds so far, the item's median answer time and type, the user's past completion
rate). :class:`OracleEstimator` returns the true probabilities, for reference runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from seqrec.value.abandonment import (
    ABANDONMENT_FEATURES,
    ClassifierFit,
    ClassifierModel,
    fit_classifier,
    impression_features,
)
from seqrec.value.survey import Questions, StepContext, SurveyConfig, true_probabilities


class Estimator(Protocol):
    """Estimated ``(p, c)``, each ``(batch, n_items) float64`` in [0, 1], for a step."""

    def __call__(self, ctx: StepContext) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class OracleEstimator:
    """The true probabilities (for reference runs, clearly labelled "oracle")."""

    config: SurveyConfig
    questions: Questions

    def __call__(self, ctx: StepContext) -> tuple[np.ndarray, np.ndarray]:
        """True ``(p, c)``, each ``(batch, n_items) float64``."""
        return true_probabilities(self.config, self.questions, ctx)


def step_features(
    positions: np.ndarray, seconds_so_far: np.ndarray, past_rate: np.ndarray, questions: Questions
) -> np.ndarray:
    """Model features of every (row, item) pair, in :data:`ABANDONMENT_FEATURES` order.

    Args:
        positions: ``(n_rows,)`` 1-based positions.
        seconds_so_far: ``(n_rows,)`` seconds spent earlier in the session.
        past_rate: ``(n_rows,)`` the user's past completion rate.
        questions: the catalogue (``n_items`` questions).

    Returns:
        ``(n_rows * n_items, n_features) float64``, row-major over (row, item).
    """
    by_name = {
        "position": np.asarray(positions, dtype=np.float64)[:, None],
        "seconds_so_far": np.asarray(seconds_so_far, dtype=np.float64)[:, None],
        "median_answer_seconds": questions.median_seconds[None, :],
        "is_free_text": questions.is_free_text[None, :],
        "past_completion_rate": np.asarray(past_rate, dtype=np.float64)[:, None],
    }
    n_rows, n_items, n_features = len(positions), len(questions.price), len(ABANDONMENT_FEATURES)
    features = np.empty((n_rows, n_items, n_features))
    for f, name in enumerate(ABANDONMENT_FEATURES):
        features[..., f] = by_name[name]  # broadcast (n_rows, 1) or (1, n_items)
    return features.reshape(n_rows * n_items, n_features)


@dataclass(frozen=True)
class ModelEstimator:
    """Calibrated fitted models: answer model for ``p``, abandonment model for ``c = 1 - P(end)``."""

    questions: Questions
    answer: ClassifierModel
    abandonment: ClassifierModel

    def __call__(self, ctx: StepContext) -> tuple[np.ndarray, np.ndarray]:
        """Estimated ``(p, c)``, each ``(batch, n_items) float64`` clipped to [0, 1]."""
        batch, n_items = len(ctx.seconds_so_far), len(self.questions.price)
        flat = step_features(
            np.full(batch, ctx.position),
            ctx.seconds_so_far,
            ctx.past_completion_rate,
            self.questions,
        )
        p = self.answer.predict(flat).reshape(batch, n_items)
        c = 1.0 - self.abandonment.predict(flat).reshape(batch, n_items)
        return np.clip(p, 0.0, 1.0), np.clip(c, 0.0, 1.0)


@dataclass(frozen=True)
class TabulatedEstimator:
    """A :class:`ModelEstimator` evaluated once on a grid, then read by nearest grid point.

    Gradient-boosted trees cost ~0.1 µs per row per tree; predicting every (session, item) pair at
    every step dominated the run time. The table is exact in ``position`` and item; the two
    continuous features (``seconds_so_far``, ``past_completion_rate``) are rounded to the nearest
    of ``grid_size`` quantiles of the training features. Positions past the table use its last.

    Attributes:
        seconds_grid: ``(g_s,)`` increasing seconds-so-far grid points.
        rate_grid: ``(g_r,)`` increasing past-completion-rate grid points.
        p: ``(max_position, g_s, g_r, n_items)`` float64 answer probabilities.
        c: same shape, continuation probabilities.
    """

    seconds_grid: np.ndarray
    rate_grid: np.ndarray
    p: np.ndarray
    c: np.ndarray

    @staticmethod
    def build(
        model: ModelEstimator, features: pd.DataFrame, max_position: int, grid_size: int = 16
    ) -> TabulatedEstimator:
        """Tabulate ``model`` (one predict call per model); grids from quantiles of ``features``.

        Args:
            model: the estimator to tabulate.
            features: training features with ``seconds_so_far`` and ``past_completion_rate``.
            max_position: positions ``1..max_position`` are tabulated.
            grid_size: quantiles per continuous feature (duplicates dropped).
        """
        quantiles = np.linspace(0.0, 1.0, grid_size)
        seconds_grid = np.unique(np.quantile(features["seconds_so_far"], quantiles))
        rate_grid = np.unique(np.quantile(features["past_completion_rate"], quantiles))
        positions = np.arange(1, max_position + 1)
        pos, sec, rate = np.meshgrid(positions, seconds_grid, rate_grid, indexing="ij")
        shape = (max_position, len(seconds_grid), len(rate_grid), len(model.questions.price))
        # One batch for all grid cells: each cell is a row with its own position.
        flat = step_features(pos.ravel(), sec.ravel(), rate.ravel(), model.questions)
        p = np.clip(model.answer.predict(flat), 0.0, 1.0).reshape(shape)
        c = np.clip(1.0 - model.abandonment.predict(flat), 0.0, 1.0).reshape(shape)
        return TabulatedEstimator(seconds_grid, rate_grid, p, c)

    def __call__(self, ctx: StepContext) -> tuple[np.ndarray, np.ndarray]:
        """Tabulated ``(p, c)``, each ``(batch, n_items) float64``."""
        position = min(ctx.position, self.p.shape[0]) - 1
        s = _nearest(self.seconds_grid, ctx.seconds_so_far)
        r = _nearest(self.rate_grid, ctx.past_completion_rate)
        return self.p[position, s, r], self.c[position, s, r]  # (batch, n_items) each


def _nearest(grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the nearest grid point for each value (grid increasing)."""
    midpoints = (grid[1:] + grid[:-1]) / 2
    return np.searchsorted(midpoints, values)


def fit_models(
    questions: Questions, log: pd.DataFrame, seed: int
) -> tuple[ClassifierFit, ClassifierFit]:
    """Fit the Platt-calibrated answer model and isotonic-calibrated abandonment model on a log,
    split by time when the log has a ``timestamp`` column (the simulator's logs do), else by user.

    Args:
        questions: the catalogue the log's ``item_id`` refer to.
        log: a simulated impression log (:func:`seqrec.value.sessions.simulate`).
        seed: seeds the user splits and the classifiers.

    Returns:
        ``(answer, abandonment)`` fits with their held-out quality.

    Raises:
        ValueError: as :func:`seqrec.value.abandonment.fit_classifier`.
    """
    features = impression_features(log, questions.table())
    users = log["user_id"].to_numpy()
    times = log["timestamp"].to_numpy() if "timestamp" in log.columns else None
    answer = fit_classifier(
        features, log["answered"].to_numpy(), users, "platt", seed=seed, times=times
    )
    abandonment = fit_classifier(
        features, log["ended"].to_numpy(), users, "isotonic", seed=seed, times=times
    )
    return answer, abandonment

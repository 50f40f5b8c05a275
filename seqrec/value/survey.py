r"""The survey world: questions, users and the true answer / abandonment probabilities.

Generative model (randomness from the caller's ``np.random.Generator``; logits use ``sigmoid``):

* **Questions** ``j = 1..n_items``: type ``free_text_j ~ Bernoulli(free_text_share)``; difficulty
  ``d_j ~ Normal(0, 1) + 0.7 free_text_j``; price (dollars) ``r_j = 0.10 + 0.30 exp(0.4 d_j + 0.6 z_j) +
  0.30 free_text_j`` with ``z_j ~ Normal(0, 1)`` the client's budget (hard questions pay more on
  average, but some easy ones pay well); median answer time (seconds)
  ``m_j = 12 exp(0.4 d_j + 0.8 free_text_j)``.
* **Users** ``i``: propensity ``a_i ~ Normal(0, 0.8)`` (likes to answer), patience
  ``b_i ~ Normal(0, 0.8)`` (stays longer) and an arrival time ``tau_i`` (in units of the training
  log's span: training users arrive in [0, 1), evaluation and A/B users in [1, 1.2)).
* **Shown at position t** (1-based) in a session:
  ``P(answer) = sigmoid(answer_base + a_i - answer_difficulty d_j - fatigue (t - 1)
  - fatigue_free_text free_text_j (t - 1) + drift_answer tau_i)``;
  after the item the user **abandons** with
  ``P(end) = sigmoid(abandon_base - b_i + abandon_difficulty d_j + abandon_free_text free_text_j
  + abandon_fatigue (t - 1) + drift_abandon tau_i)``, independently of the answer; time spent is
  ``m_j exp(Normal(0, 0.3))`` seconds, times 0.4 when not answered. ``fatigue_free_text`` makes
  the position effect differ by item (free-text questions are worth asking early), so ordering by
  a position-free index is not exact; ``drift_*`` make the world drift over time, so a model
  calibrated on the past is miscalibrated on the future unless calibration follows time.
* **Sessions**: at most ``max_session_length`` items; no question is shown twice in a session or
  after it was answered; a user starts one session and, after each, returns for another (up to
  ``n_sessions``) with probability ``return_base + return_gain * (answers / shown)`` of the session
  just finished, so a policy's effect on experience carries over to later sessions (the session
  loop is :func:`seqrec.value.sessions.simulate`).

The model is a stylised cascade (Craswell et al. 2008, "An experimental comparison of click
position-bias models") with user heterogeneity and position fatigue; its parameters are
illustrative, not fitted to real data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from seqrec.value.calibrators import sigmoid


@dataclass(frozen=True)
class SurveyConfig:
    """Parameters of the generative model (see the module docstring); checked on creation.

    Raises:
        ValueError: naming the field when a size is not an integer >= 1, a share or return
            probability is outside [0, 1], or ``return_base + return_gain > 1``.
    """

    n_items: int = 40
    max_session_length: int = 10
    n_sessions: int = 3
    free_text_share: float = 0.3
    answer_base: float = 1.8
    answer_difficulty: float = 1.0
    fatigue: float = 0.08
    abandon_base: float = -2.6
    abandon_difficulty: float = 0.8
    abandon_free_text: float = 0.8
    abandon_fatigue: float = 0.12
    fatigue_free_text: float = 0.15
    drift_answer: float = -0.6
    drift_abandon: float = 0.4
    return_base: float = 0.2
    return_gain: float = 0.6

    def __post_init__(self) -> None:
        for name in ("n_items", "max_session_length", "n_sessions"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"SurveyConfig.{name} must be an integer >= 1; got {value!r}")
        for name in ("free_text_share", "return_base", "return_gain"):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"SurveyConfig.{name} must be in [0, 1]; got {value!r}")
        for name, value in vars(self).items():
            if isinstance(value, float) and not np.isfinite(value):
                raise ValueError(f"SurveyConfig.{name} must be finite; got {value!r}")
        if self.return_base + self.return_gain > 1.0:
            raise ValueError(
                f"SurveyConfig.return_base + return_gain must be <= 1; got {self.return_base + self.return_gain!r}"
            )


@dataclass(frozen=True)
class Questions:
    """The catalogue, ``(n_items,)`` arrays: ``price`` float64 dollars, ``is_free_text`` bool,
    ``difficulty`` float64, ``median_seconds`` float64 seconds. Item ids are ``0..n_items-1``."""

    price: np.ndarray
    is_free_text: np.ndarray
    difficulty: np.ndarray
    median_seconds: np.ndarray

    def table(self) -> pd.DataFrame:
        """Item table for :func:`seqrec.value.abandonment.impression_features` (item ids 0..n-1)."""
        return pd.DataFrame(
            {
                "item_id": np.arange(len(self.price)),
                "median_answer_seconds": self.median_seconds,
                "is_free_text": self.is_free_text.astype(np.float64),
            }
        )


@dataclass(frozen=True)
class Users:
    """``(n_users,)`` ids ``user_ids`` (int64), latent float64 ``propensity`` and ``patience``, and
    ``arrival`` times (float64, units of the training log's span)."""

    user_ids: np.ndarray
    propensity: np.ndarray
    patience: np.ndarray
    arrival: np.ndarray


def make_questions(config: SurveyConfig, rng: np.random.Generator) -> Questions:
    """Draw the catalogue as in the module docstring (prices rounded to cents)."""
    free = rng.random(config.n_items) < config.free_text_share
    difficulty = rng.normal(size=config.n_items) + 0.7 * free
    price = (
        0.10 + 0.30 * np.exp(0.4 * difficulty + 0.6 * rng.normal(size=config.n_items)) + 0.30 * free
    )
    median = 12.0 * np.exp(0.4 * difficulty + 0.8 * free)
    return Questions(np.round(price, 2), free, difficulty, median)


def make_users(
    n_users: int, rng: np.random.Generator, first_id: int = 0, arrive: tuple[float, float] = (0, 1)
) -> Users:
    """Draw ``n_users`` users with ids ``first_id ..`` (propensity, patience ~ Normal(0, 0.8)),
    arriving uniformly in ``[arrive[0], arrive[1])``, sorted by id = by arrival.

    Raises:
        ValueError: if ``n_users < 1``.
    """
    if n_users < 1:
        raise ValueError(f"n_users must be >= 1; got {n_users!r}")
    propensity, patience = rng.normal(0.0, 0.8, n_users), rng.normal(0.0, 0.8, n_users)
    arrival = np.sort(rng.uniform(arrive[0], arrive[1], n_users))
    return Users(np.arange(first_id, first_id + n_users), propensity, patience, arrival)


@dataclass(frozen=True)
class StepContext:
    """What is known when choosing the item at ``position`` (1-based) for ``(batch,)`` sessions.

    ``propensity`` / ``patience`` (float64) are the latent truth (only the oracle may read them),
    like ``time`` (the users' arrival: the drift); ``seconds_so_far`` (seconds) and
    ``past_completion_rate`` (in [0, 1]) are observable features.
    """

    position: int
    propensity: np.ndarray
    patience: np.ndarray
    seconds_so_far: np.ndarray
    past_completion_rate: np.ndarray
    time: np.ndarray

    def select(self, rows: np.ndarray) -> StepContext:
        """The context of some sessions: ``rows`` is a ``(batch,)`` bool mask or int64 indices."""
        return StepContext(
            self.position,
            self.propensity[rows],
            self.patience[rows],
            self.seconds_so_far[rows],
            self.past_completion_rate[rows],
            self.time[rows],
        )

    def at(self, position: int) -> StepContext:
        """The same sessions, asked about a later ``position`` (for planning ahead)."""
        return replace(self, position=position)


def true_probabilities(
    config: SurveyConfig, questions: Questions, ctx: StepContext
) -> tuple[np.ndarray, np.ndarray]:
    """True answer and continuation (``1 - P(end)``) probabilities, each ``(batch, n_items) float64``."""
    t = ctx.position - 1
    answer = sigmoid(
        config.answer_base
        + ctx.propensity[:, None]
        - config.answer_difficulty * questions.difficulty[None, :]
        - (config.fatigue + config.fatigue_free_text * questions.is_free_text[None, :]) * t
        + config.drift_answer * ctx.time[:, None]
    )
    end = sigmoid(
        config.abandon_base
        - ctx.patience[:, None]
        + config.abandon_difficulty * questions.difficulty[None, :]
        + config.abandon_free_text * questions.is_free_text[None, :]
        + config.abandon_fatigue * t
        + config.drift_abandon * ctx.time[:, None]
    )
    return answer, 1.0 - end

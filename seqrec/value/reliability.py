"""How honest probabilities are: log-loss, Brier score, ECE and the reliability curve.

All on probabilities ``p`` and 0/1 outcomes ``y``, each ``(n,) float64``:

* log-loss ``-mean(y log p + (1 - y) log(1 - p))`` in nats, with ``p`` clipped to
  ``[1e-15, 1 - 1e-15]``;
* Brier score ``mean((p - y)^2)``;
* expected calibration error (ECE) with ``n_bins`` **equal-width** bins on [0, 1]
  (bin ``b`` holds ``b / n_bins <= p < (b + 1) / n_bins``, the last bin includes 1):
  ``ECE = sum_b (n_b / n) * |mean(y in b) - mean(p in b)|``; empty bins contribute 0;
* ECE with ``n_bins`` **equal-mass** bins (``ece_mass``): the rows sorted by ``p`` (stable) and cut
  into ``n_bins`` runs whose sizes differ by at most one (``np.array_split``), same formula. Small
  probabilities (abandonment rates of a few percent) all fall in the first equal-width bin, where
  the equal-width ECE only compares two means; equal-mass bins resolve them (Nixon et al. 2019,
  "Measuring calibration in deep learning", adaptive calibration error).

Sources: Brier (1950) "Verification of forecasts expressed in terms of probability"; Guo et al.
(2017) "On calibration of modern neural networks" (ECE, reliability diagrams); Naeini et al.
(2015) (binned ECE).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqrec.value._checks import check_binary, check_probabilities, check_same_length

_EPS = 1e-15


@dataclass(frozen=True)
class CalibrationMetrics:
    """Log-loss (nats), Brier score, ECE with equal-width bins (``ece``) and with equal-mass
    bins (``ece_mass``) of ``n`` probabilities vs outcomes."""

    log_loss: float
    brier: float
    ece: float
    n: int
    ece_mass: float = float("nan")


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin statistics for a reliability diagram (equal-width bins on [0, 1]).

    Attributes:
        bin_edges: ``(n_bins + 1,)`` float64 edges.
        mean_predicted: ``(n_bins,)`` float64 mean probability in each bin (NaN where empty).
        observed_rate: ``(n_bins,)`` float64 answer rate in each bin (NaN where empty).
        counts: ``(n_bins,)`` int64 rows per bin.
    """

    bin_edges: np.ndarray
    mean_predicted: np.ndarray
    observed_rate: np.ndarray
    counts: np.ndarray


def reliability_curve(
    probabilities: np.ndarray, outcomes: np.ndarray, n_bins: int = 10
) -> ReliabilityCurve:
    """Bin probabilities into ``n_bins`` equal-width bins and compare with observed rates.

    Args:
        probabilities: ``(n,)`` in [0, 1].
        outcomes: ``(n,)`` 0/1.
        n_bins: number of bins (>= 1).

    Raises:
        ValueError: if probabilities are outside [0, 1] or NaN, outcomes not 0/1, the lengths
            differ, or ``n_bins < 1``.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins!r}")
    p = check_probabilities("probabilities", probabilities)
    y = check_binary("outcomes", outcomes)
    check_same_length(probabilities=p, outcomes=y)
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)  # p = 1 falls in the last bin
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(bins, weights=p, minlength=n_bins) / counts
        rate = np.bincount(bins, weights=y, minlength=n_bins) / counts
    return ReliabilityCurve(np.linspace(0.0, 1.0, n_bins + 1), mean_p, rate, counts)


def calibration_metrics(
    probabilities: np.ndarray, outcomes: np.ndarray, n_bins: int = 10
) -> CalibrationMetrics:
    """Log-loss, Brier score and ECE (see the module docstring for exact definitions).

    Args:
        probabilities: ``(n,)`` in [0, 1].
        outcomes: ``(n,)`` 0/1.
        n_bins: ECE bins (>= 1).

    Raises:
        ValueError: as :func:`reliability_curve`, or for no rows.
    """
    curve = reliability_curve(probabilities, outcomes, n_bins)
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(outcomes, dtype=np.float64)
    if len(p) == 0:
        raise ValueError("probabilities must be non-empty; got 0 rows")
    clipped = np.clip(p, _EPS, 1 - _EPS)
    log_loss = -np.mean(y * np.log(clipped) + (1 - y) * np.log1p(-clipped))
    filled = curve.counts > 0
    gaps = np.abs(curve.observed_rate[filled] - curve.mean_predicted[filled])
    ece = float(np.sum(curve.counts[filled] / len(p) * gaps))
    return CalibrationMetrics(
        float(log_loss), float(np.mean((p - y) ** 2)), ece, len(p), equal_mass_ece(p, y, n_bins)
    )


def equal_mass_ece(probabilities: np.ndarray, outcomes: np.ndarray, n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-mass bins (module docstring); ``(n,)`` inputs, n >= 1.

    Raises:
        ValueError: as :func:`reliability_curve`, or for no rows.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins!r}")
    p = check_probabilities("probabilities", probabilities)
    y = check_binary("outcomes", outcomes)
    check_same_length(probabilities=p, outcomes=y)
    if len(p) == 0:
        raise ValueError("probabilities must be non-empty; got 0 rows")
    order = np.argsort(p, kind="stable")
    gaps = [
        len(part) * abs(y[part].mean() - p[part].mean())
        for part in np.array_split(order, min(n_bins, len(p)))
    ]
    return float(np.sum(gaps) / len(p))

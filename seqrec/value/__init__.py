"""Value-aware ranking: calibrated probabilities, abandonment, cascade ranking, eligibility, A/B.

Revenue per user is ``sum_t r_t p_t prod_{s<t} c_s``: rank by ``r p / (1 - c)`` with calibrated
``p`` (answer) and ``c`` (continuation), filter eligibility *before* scoring, and randomise A/B
tests by user. See docs/value.md.
"""

from seqrec.value.ab import (
    ArpuResult,
    UnitMismatchWarning,
    analyze_arpu,
    assign_group,
    assign_groups,
    session_level_effect,
)
from seqrec.value.abandonment import ABANDONMENT_FEATURES, fit_abandonment, impression_features
from seqrec.value.calibration import (
    CalibrationReport,
    OnlinePlatt,
    Scorer,
    calibrate,
    calibration_metrics,
    fit_calibrator,
    fit_isotonic,
    fit_platt,
    fit_temperature,
    pairwise_scorer,
    reliability_curve,
    split_by_user,
)
from seqrec.value.eligibility import (
    EligibilityState,
    NothingEligible,
    Ranked,
    Served,
    eligibility_mask,
    rank_eligible,
    serve,
)
from seqrec.value.ranking import (
    best_next,
    brute_force_order,
    cascade_keys,
    cascade_order,
    expected_revenue,
    greedy_order,
)

__all__ = [
    "ABANDONMENT_FEATURES",
    "ArpuResult",
    "CalibrationReport",
    "EligibilityState",
    "NothingEligible",
    "OnlinePlatt",
    "Ranked",
    "Scorer",
    "Served",
    "UnitMismatchWarning",
    "analyze_arpu",
    "assign_group",
    "assign_groups",
    "best_next",
    "brute_force_order",
    "calibrate",
    "calibration_metrics",
    "cascade_keys",
    "cascade_order",
    "eligibility_mask",
    "expected_revenue",
    "fit_abandonment",
    "fit_calibrator",
    "fit_isotonic",
    "fit_platt",
    "fit_temperature",
    "greedy_order",
    "impression_features",
    "pairwise_scorer",
    "rank_eligible",
    "reliability_curve",
    "serve",
    "session_level_effect",
    "split_by_user",
]

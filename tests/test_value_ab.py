"""User-level A/B: deterministic hashing, shares, independence, ARPU analysis and unit warnings."""

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency

from seqrec.value.ab import (
    UnitMismatchWarning,
    analyze_arpu,
    assign_group,
    assign_groups,
    session_level_effect,
)

WEIGHTS = {"control": 0.5, "treatment": 0.3, "holdout": 0.2}


def test_same_group_in_another_process():
    ids = ["u1", 42, "alice", 10**12]
    here = [assign_group(u, "exp-1", WEIGHTS) for u in ids]
    code = (
        "from seqrec.value.ab import assign_group;"
        f"print(','.join(assign_group(u, 'exp-1', {WEIGHTS!r}) for u in {ids!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    )
    assert out.stdout.strip().split(",") == here


def test_scalar_and_vector_agree_and_ids_are_canonicalised():
    ids = np.arange(1000)
    groups = assign_groups(ids, "exp", WEIGHTS)
    assert [assign_group(int(u), "exp", WEIGHTS) for u in ids[:50]] == groups[:50].tolist()
    assert (
        assign_group(7, "exp", WEIGHTS)
        == assign_group("7", "exp", WEIGHTS)
        == assign_group(np.int64(7), "exp", WEIGHTS)
    )


def test_shares_within_half_a_point_on_a_million_ids():
    groups = assign_groups(np.arange(1_000_000), "share-test", WEIGHTS)
    for name, weight in WEIGHTS.items():
        assert abs(np.mean(groups == name) - weight) < 0.005


def test_two_experiments_are_independent():
    ids = np.arange(200_000)
    a = assign_groups(ids, "exp-a", {"A": 0.5, "B": 0.5})
    b = assign_groups(ids, "exp-b", {"X": 0.2, "Y": 0.8})
    table = pd.crosstab(a, b).to_numpy()
    assert chi2_contingency(table).pvalue > 0.001


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ({"A": 0.5, "B": 0.6}, "sum to 1"),
        ({"A": float("nan"), "B": 0.5}, "weights must be finite"),
        ({"A": -0.5, "B": 1.5}, ">= 0"),
        ({}, "at least one group"),
    ],
)
def test_bad_weights_raise(weights, match):
    with pytest.raises(ValueError, match=match):
        assign_group("u", "exp", weights)


def test_analyze_arpu_hand_computed_and_no_warning_for_user_split():
    sessions = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 3, 4, 4],
            "group": ["A", "A", "A", "B", "B", "B"],
            "revenue": [1.0, 2.0, 0.0, 4.0, 1.0, 1.0],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = analyze_arpu(sessions, "A", "B", n_boot=200)
    assert result.control.arpu == pytest.approx(1.5)  # users 1 (3.0), 2 (0.0)
    assert result.treatment.arpu == pytest.approx(3.0)  # users 3 (4.0), 4 (2.0)
    assert result.effect == pytest.approx(1.5)
    assert result.randomization_unit == "user" and not result.unit_mismatch
    assert result.effect_ci_low <= result.effect <= result.effect_ci_high


def test_session_randomised_data_warns_and_flags():
    sessions = pd.DataFrame(
        {"user_id": [1, 1, 2, 2], "group": ["A", "B", "A", "B"], "revenue": [1.0, 2.0, 0.0, 1.0]}
    )
    with pytest.warns(UnitMismatchWarning, match="randomised by session"):
        result = analyze_arpu(sessions, "A", "B", n_boot=50)
    assert result.unit_mismatch and result.randomization_unit == "session"
    assert session_level_effect(sessions, "A", "B").unit_mismatch


def test_analyze_arpu_rejects_bad_revenue_and_groups():
    sessions = pd.DataFrame({"user_id": [1, 2], "group": ["A", "B"], "revenue": [np.nan, 1.0]})
    with pytest.raises(ValueError, match="revenue must be finite"):
        analyze_arpu(sessions, "A", "B")
    with pytest.raises(ValueError, match="treatment group 'C'"):
        analyze_arpu(sessions.fillna(0.0), "A", "C")

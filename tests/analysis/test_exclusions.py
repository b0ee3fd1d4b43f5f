"""Every exclusion rule, alone and in the flow table."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis import load_ratings
from analysis.exclusions import ExclusionRules, apply_exclusions
from analysis.simulation import CrossedDesign, simulate_ratings

OFF = ExclusionRules(
    drop_practice=False,
    max_failed_attention=None,
    min_median_rt_ms=None,
    min_response_sd=None,
    min_completion=None,
    require_completed_status=False,
)


@pytest.fixture
def ratings() -> pd.DataFrame:
    df = simulate_ratings(design=CrossedDesign(10, 20, 10), dimensions=("artistry", "symbolism"), scale=(1, 7), seed=1)
    df["is_practice"] = False
    df["is_attention_check"] = False
    df["attention_passed"] = True
    df["participant_status"] = "completed"
    return df


def only(rule: str, **kwargs) -> ExclusionRules:
    return ExclusionRules(**{**OFF.__dict__, **kwargs})


def test_practice_trials_are_dropped(ratings):
    ratings.loc[ratings["trial_index"] < 2, "is_practice"] = True
    n_practice = int(ratings["is_practice"].sum())
    out = apply_exclusions(ratings, only("practice", drop_practice=True))
    assert len(out.ratings) == len(ratings) - n_practice
    assert not out.ratings["is_practice"].any()
    row = out.flow.set_index("step").loc["practice"]
    assert row["ratings_excluded"] == n_practice and row["participants_excluded"] == 0


def test_failed_attention_checks(ratings):
    checks = ratings.groupby("participant").head(2).copy()
    checks["is_attention_check"] = True
    checks.loc[checks["participant"] == "P00003", "attention_passed"] = False  # fails both
    checks.loc[checks.index[checks["participant"] == "P00004"][:1], "attention_passed"] = False  # fails one
    data = pd.concat([ratings, checks], ignore_index=True)
    strict = apply_exclusions(data, only("attention", max_failed_attention=1))
    assert set(strict.excluded["participant"]) == {"P00003", "P00004"}
    lenient = apply_exclusions(data, only("attention", max_failed_attention=2))
    assert set(lenient.excluded["participant"]) == {"P00003"}
    assert not lenient.ratings["is_attention_check"].any()  # check trials never enter the models


def test_fast_responders(ratings):
    ratings.loc[ratings["participant"] == "P00002", "rt_ms"] = 250
    out = apply_exclusions(ratings, only("fast", min_median_rt_ms=400))
    assert out.excluded["participant"].tolist() == ["P00002"]
    assert "median rt 250 ms" in out.excluded["detail"].iloc[0]


def test_straight_liners(ratings):
    mask = (ratings["participant"] == "P00005") & (ratings["dimension"] == "symbolism")
    ratings.loc[mask, "response"] = 4
    out = apply_exclusions(ratings, only("straightline", min_response_sd=0.1))
    assert out.excluded["participant"].tolist() == ["P00005"]
    assert "P00005" not in set(out.ratings["participant"])


def test_incomplete_participants(ratings):
    drop = ratings.index[(ratings["participant"] == "P00007")][5:]
    partial = ratings.drop(drop)
    partial.loc[partial["participant"] == "P00008", "participant_status"] = "in_progress"
    by_count = apply_exclusions(partial, only("incomplete", min_completion=0.5))
    assert by_count.excluded["participant"].tolist() == ["P00007"]
    by_status = apply_exclusions(partial, only("status", require_completed_status=True))
    assert by_status.excluded["participant"].tolist() == ["P00008"]


def test_flow_table_counts_add_up(ratings):
    ratings.loc[ratings["participant"] == "P00002", "rt_ms"] = 100
    ratings.loc[ratings["participant"] == "P00005", "response"] = 3
    out = apply_exclusions(ratings)
    flow = out.flow
    assert flow["step"].tolist()[0] == "export"
    assert flow["ratings_remaining"].iloc[-1] == len(out.ratings)
    assert flow["participants_excluded"].sum() == 2
    assert (flow["ratings_remaining"].iloc[0] - flow["ratings_excluded"].sum()) == len(out.ratings)


def test_parquet_and_missing_columns(ratings, tmp_path):
    from analysis import MissingColumnsError

    path = tmp_path / "ratings.parquet"
    ratings.to_parquet(path)
    assert len(load_ratings(path)) == len(ratings)
    with pytest.raises(MissingColumnsError, match="missing required column\\(s\\): dimension, rt_ms"):
        load_ratings(ratings.drop(columns=["rt_ms", "dimension"]))


def test_boolean_strings_are_understood(ratings):
    ratings["is_practice"] = ["True" if i < 3 else "False" for i in ratings["trial_index"]]
    loaded = load_ratings(ratings)
    assert loaded["is_practice"].dtype == bool
    assert loaded["is_practice"].sum() == (ratings["is_practice"] == "True").sum()


def test_nullable_booleans_with_missing_values_are_understood(ratings):
    """The study app's DataFrame carries `attention_passed` as a nullable boolean, empty off checks."""
    df = ratings.copy()
    first = df["participant"].iloc[0]
    df["is_attention_check"] = pd.array([False] * len(df), dtype="boolean")
    df["attention_passed"] = pd.array([pd.NA] * len(df), dtype="boolean")
    rows = df.index[df["participant"] == first][:2]
    df.loc[rows, "is_attention_check"] = True
    df.loc[rows, "attention_passed"] = False
    checked = load_ratings(df)
    assert checked["attention_passed"].dtype == bool
    outcome = apply_exclusions(checked, ExclusionRules(max_failed_attention=2))
    assert set(outcome.excluded["participant"]) == {first}

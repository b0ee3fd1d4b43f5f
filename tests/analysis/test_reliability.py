"""Reliability statistics against published values and simple invariants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.ordinal import fit_ordinal
from analysis.reliability import dimension_correlation, krippendorff_alpha, reliability_table, split_half
from analysis.simulation import CrossedDesign, simulate_ratings


def krippendorff_example() -> pd.DataFrame:
    """Krippendorff (2011), 'Computing Krippendorff's alpha-reliability': 4 coders x 12 units, with gaps."""
    nan = np.nan
    coders = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
    rows = [(u, c, v) for c, values in enumerate(coders) for u, v in enumerate(values) if not np.isnan(v)]
    return pd.DataFrame(rows, columns=["stimulus", "participant", "response"])


@pytest.mark.parametrize(("level", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_alpha_matches_published_values(level, expected):
    assert krippendorff_alpha(krippendorff_example(), level=level) == pytest.approx(expected, abs=5e-4)


def test_perfect_agreement_gives_alpha_one():
    df = pd.DataFrame(
        {
            "stimulus": np.repeat(np.arange(5), 3),
            "participant": np.tile(np.arange(3), 5),
            "response": np.repeat([1, 2, 3, 4, 5], 3),
        }
    )
    assert krippendorff_alpha(df) == pytest.approx(1.0)
    assert krippendorff_alpha(df, level="ordinal") == pytest.approx(1.0)


@pytest.fixture(scope="module")
def two_dimensions() -> pd.DataFrame:
    return simulate_ratings(
        design=CrossedDesign(40, 30, 30),
        effects={"artistic-1.0": 1.0},
        sd_stimulus=0.8,
        dimensions=("artistry", "symbolism"),
        scale=(1, 7),
        seed=9,
    )


def test_split_half_is_seeded_and_bounded(two_dimensions):
    sub = two_dimensions[two_dimensions["dimension"] == "artistry"]
    first, again = split_half(sub, n_splits=30, seed=1), split_half(sub, n_splits=30, seed=1)
    assert first == again
    assert first["split_half_low"] <= first["split_half"] <= first["split_half_high"] <= 1
    assert first["split_half"] > 0.5  # stimulus SD 0.8 with 40 raters per stimulus: clearly reliable


def test_split_half_of_opposite_halves_is_undefined_not_minus_infinity():
    """Two participants rating three images in opposite orders: r = -1, where Spearman-Brown divides by zero."""
    ratings = pd.DataFrame(
        {"participant": ["a"] * 3 + ["b"] * 3, "stimulus": ["x", "y", "z"] * 2, "response": [1, 2, 3, 3, 2, 1]}
    )
    with np.errstate(all="raise"):
        result = split_half(ratings, n_splits=10)
    assert all(np.isnan(v) for v in result.values()), result


def test_reliability_table_and_correlation(two_dimensions):
    table = reliability_table(two_dimensions, {"artistry": {"icc_participant": 0.3, "icc_stimulus": 0.2}}, n_splits=10)
    assert table["dimension"].tolist() == ["artistry", "symbolism"]
    row = table.set_index("dimension").loc["artistry"]
    k = row["ratings_per_stimulus"]
    assert row["stimulus_mean_reliability"] == pytest.approx(0.2 / (0.2 + 0.8 / k))
    corr = dimension_correlation(two_dimensions)
    assert corr["n_stimuli"] == 30 and corr["ci_low"] < corr["pearson_r"] < corr["ci_high"]


def test_ordinal_model_agrees_in_direction(two_dimensions):
    table = fit_ordinal(two_dimensions, dimension="artistry").set_index("term")
    assert table.loc["condition[T.artistic-1.0]", "log_odds"] > 0
    assert (table["std_error"] > 0).all() and (table["odds_ratio"] > 0).all()

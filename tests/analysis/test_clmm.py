"""The cumulative-link mixed model against ordinal::clmm (R) on vendored data, and its contracts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.clmm import CLMM, fit_clmm
from analysis.engine import ModelFitError
from analysis.ordinal import fit_ordinal, ordinal_analysis
from analysis.simulation import CrossedDesign, simulate_ratings

DATA = Path(__file__).resolve().parent / "data" / "clmm"
THREE_DIGITS = 5e-4  # relative: equal to at least three significant digits


def clmm_term(term: str) -> str:
    """clmm prints `conditionartistic-1.0`, patsy `condition[T.artistic-1.0]`."""
    return f"condition[T.{term.removeprefix('condition')}]"


def read_dataset(name: str) -> pd.DataFrame:
    if name == "validation-artistry":
        data = pd.read_csv(DATA.parent / "validation" / "ratings-reference.csv.gz")
        return data[data["dimension"] == "artistry"]
    return pd.read_csv(DATA / f"{name}.csv")


def ours_by_kind(fit) -> dict[str, dict[str, tuple[float, float]]]:
    return {
        "fixed": {r.term: (r.estimate, r.std_error) for r in fit.to_frame().itertuples()},
        "threshold": {r.term: (r.estimate, r.std_error) for r in fit.thresholds().itertuples()},
        "sd": {g: (s, np.nan) for g, s in fit.sd.items()},
        "loglik": {"logLik": (fit.loglik, np.nan)},
    }


REFERENCE = pd.read_csv(DATA / "clmm-reference.csv")
CASES = [
    pytest.param(ds, link, marks=[pytest.mark.slow] if ds == "validation-artistry" else [])
    for ds, link in REFERENCE[["dataset", "link"]].drop_duplicates().itertuples(index=False)
]


@pytest.mark.parametrize(("dataset", "link"), CASES)
def test_estimates_equal_ordinal_clmm(dataset, link):
    fit = fit_clmm(read_dataset(dataset), link=link)
    ours = ours_by_kind(fit)
    ref = REFERENCE[(REFERENCE["dataset"] == dataset) & (REFERENCE["link"] == link)]
    for row in ref.itertuples():
        term = clmm_term(row.term) if row.kind == "fixed" else row.term
        estimate, std_error = ours[row.kind][term]
        assert estimate == pytest.approx(row.estimate, rel=THREE_DIGITS), (row.kind, term)
        if np.isfinite(row.std_error):
            assert std_error == pytest.approx(row.std_error, rel=1e-3), (row.kind, term, "SE")
    assert len(ref[ref["kind"] == "fixed"]) == len(ours["fixed"])
    assert len(ref[ref["kind"] == "threshold"]) == len(ours["threshold"])
    assert fit.warnings == []


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_analytic_gradient_equals_finite_differences(link):
    data = read_dataset("likert-b")
    y = pd.factorize(data["response"], sort=True)[0]
    X = pd.get_dummies(data["condition"], dtype=float).drop(columns="baseline").to_numpy()
    groups = [(g, pd.factorize(data[g])[0]) for g in ("participant", "stimulus")]
    model = CLMM(y, X, groups, link=link)
    x = model.start()
    x[-2:] = np.log([0.9, 0.3])
    x[model.K - 1] = 0.4
    analytic = model.gradient(x)
    h = 1e-5
    numeric = [(model.objective(x + h * e) - model.objective(x - h * e)) / (2 * h) for e in np.eye(len(x))]
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-5)


def test_slider_responses_are_refused_with_a_sentence():
    data = simulate_ratings(design=CrossedDesign(20, 12, 12), seed=3)
    data["response"] = np.clip(np.round(50 + 15 * data["response"]), 0, 100)
    with pytest.raises(ModelFitError, match=r"distinct values \(a slider"):
        fit_clmm(data, dimension="artistry")


def test_too_few_categories_and_gaps_are_clear_errors():
    data = simulate_ratings(design=CrossedDesign(20, 12, 12), scale=(1, 7), seed=4)
    with pytest.raises(ModelFitError, match="at least 3 response categories"):
        fit_clmm(data.assign(response=(data["response"] > 3).astype(int)), dimension="artistry")
    one = data.assign(participant="P1")
    with pytest.raises(ModelFitError, match="single level"):
        fit_clmm(one, dimension="artistry")


def test_report_ordinal_section_is_the_clmm():
    data = simulate_ratings(design=CrossedDesign(40, 20, 20), effects={"artistic-1.0": 0.8}, scale=(1, 7), seed=5)
    table, notes = ordinal_analysis(data, dimension="artistry")
    assert table["term"].str.startswith("condition[T.").all()
    row = table.set_index("term").loc["condition[T.artistic-1.0]"]
    assert row["log_odds"] > 0 and row["ci_low"] < row["log_odds"] < row["ci_high"]
    assert "random-intercept SDs" in notes[0] and "participant" in notes[0]
    probit = fit_ordinal(data, dimension="artistry", link="probit").set_index("term")
    # The probit scale is about 1/1.7 of the logit scale.
    assert 1.4 < row["log_odds"] / probit.loc["condition[T.artistic-1.0]", "log_odds"] < 2.0


def test_three_crossed_factors_gradient_and_fit():
    """A third random intercept (e.g. the perturbed network) joins the dense Schur block."""
    data = simulate_ratings(design=CrossedDesign(30, 24, 24), scale=(1, 7), seed=12)
    data["network"] = "N" + (data["stimulus"].str[-1].astype(int) % 4).astype(str)
    y = pd.factorize(data["response"], sort=True)[0]
    groups = [(g, pd.factorize(data[g])[0]) for g in ("participant", "stimulus", "network")]
    model = CLMM(y, np.zeros((len(y), 0)), groups)
    x = model.start()
    x[-3:] = np.log([0.9, 0.4, 0.3])
    h = 1e-5
    numeric = [(model.objective(x + h * e) - model.objective(x - h * e)) / (2 * h) for e in np.eye(len(x))]
    np.testing.assert_allclose(model.gradient(x), numeric, rtol=1e-5, atol=1e-5)
    fit = fit_clmm(data, dimension="artistry", groups=("participant", "stimulus", "network"))
    assert list(fit.variance_components()["group"]) == ["participant", "stimulus", "network"]
    assert np.max(np.abs(fit.result.gradient)) < 1e-3

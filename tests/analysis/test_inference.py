"""Random-slopes inference against lmerTest, lme4's fit messages, formula syntax and refusals, Type I error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import ModelFitError, RatingsError, fit_ratings
from analysis.models import parse_formula
from analysis.simulation import CrossedDesign, null_rejection_rates, simulate_ratings

DATA = Path(__file__).resolve().parent / "data" / "slopes"
FORMULAS = {
    "slopes": "response ~ condition + (1 + condition | participant) + (1 | stimulus)",
    "uncorrelated": "response ~ condition + (1 + condition || participant) + (1 | stimulus)",
    "intercepts": "response ~ condition + (1 | participant) + (1 | stimulus)",
}


def lme4_term(term: str) -> str:
    return "Intercept" if term == "(Intercept)" else f"condition[T.{term.removeprefix('condition')}]"


@pytest.fixture(scope="module")
def slopes_data() -> pd.DataFrame:
    return pd.read_csv(DATA / "slopes.csv")


@pytest.fixture(scope="module")
def lmertest() -> pd.DataFrame:
    return pd.read_csv(DATA / "lmertest-slopes.csv").assign(term=lambda d: d["term"].map(lme4_term))


@pytest.mark.parametrize("dataset", ["slopes", "slopes-unbalanced"])
@pytest.mark.parametrize("model", ["slopes", "intercepts", "slopes-kr", "intercepts-kr"])
def test_estimates_df_and_p_values_equal_lmertest(lmertest, dataset, model):
    """Satterthwaite (lmerTest) and Kenward-Roger (lmerTest via pbkrtest: adjusted SEs and df)."""
    data = pd.read_csv(DATA / f"{dataset}.csv")
    kr = model.endswith("-kr")
    fit = fit_ratings(data, FORMULAS[model.removesuffix("-kr")], df_method="kenward-roger" if kr else "satterthwaite")
    ours = fit.to_frame().set_index("term")
    ref = lmertest[(lmertest["model"] == model) & (lmertest["dataset"] == dataset)].set_index("term")
    assert len(ref) == 3
    # Estimates to 1e-4 standard errors (the optimizers stop at slightly different θ), SEs and df to 3-4 digits.
    np.testing.assert_allclose(
        ours.loc[ref.index, "estimate"], ref["estimate"], rtol=0, atol=1e-4 * ref["std_error"].min()
    )
    for column, rel in (("std_error", 1e-4), ("df", 1e-3)):
        np.testing.assert_allclose(ours.loc[ref.index, column], ref[column], rtol=rel, err_msg=column)
    # p-values to 3 digits on the log scale (the intercept's p is ~1e-20)
    np.testing.assert_allclose(np.log(ours.loc[ref.index, "p_value"]), np.log(ref["p_value"]), rtol=1e-3)
    assert fit.loglik == pytest.approx(ref["reml_loglik"].iloc[0], abs=1e-4)
    assert fit.warnings == []  # lme4 gives none either
    assert ("Kenward-Roger" if kr else "Satterthwaite df") in fit.summary()


def test_uncorrelated_terms_expand_like_lme4_and_report_its_singular_fit(slopes_data, lmertest):
    assert (
        parse_formula(FORMULAS["uncorrelated"])[1]
        == parse_formula("response ~ condition + (1 | participant) + (0 + condition | participant) + (1 | stimulus)")[1]
    )
    fit = fit_ratings(slopes_data, FORMULAS["uncorrelated"])
    ref = lmertest[(lmertest["model"] == "uncorrelated") & (lmertest["dataset"] == "slopes")]
    assert bool(ref["singular"].iloc[0])
    assert fit.loglik >= ref["reml_loglik"].iloc[0] - 1e-4  # the same optimum or a better one
    assert any(w.startswith("boundary (singular) fit") for w in fit.warnings)
    assert "warning: boundary (singular) fit" in fit.summary()


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("(1 + x || g)", [("g", "1"), ("g", "0 + x")]),
        ("(x || g)", [("g", "1"), ("g", "0 + x")]),
        ("(0 + x || g)", [("g", "0 + x")]),
        ("(x + z - 1 || g)", [("g", "0 + x"), ("g", "0 + z")]),
        ("(1 | a/b)", [("a", "1"), ("a:b", "1")]),
        ("(1 | a : b)", [("a:b", "1")]),
    ],
)
def test_random_term_syntax_expands_like_lme4(term, expected):
    _, terms = parse_formula(f"response ~ condition + {term}")
    assert [(t.group, t.expr) for t in terms] == expected


def test_unreadable_random_term_is_one_clear_error():
    with pytest.raises(RatingsError, match="cannot read the random-effects term"):
        parse_formula("response ~ condition + (1 | participant | stimulus)")


def test_nested_grouping_terms():
    data = simulate_ratings(design=CrossedDesign(24, 20, 10), effects={"artistic-1.0": 0.5}, seed=8)
    data["site"] = data["participant"].str[-1].map(lambda c: f"site{int(c) % 3}")
    data["site_participant"] = data["site"] + ":" + data["participant"]
    nested = fit_ratings(data, "response ~ condition + (1 | site/participant) + (1 | stimulus)")
    explicit = fit_ratings(data, "response ~ condition + (1 | site) + (1 | site_participant) + (1 | stimulus)")
    colon = fit_ratings(data, "response ~ condition + (1 | site) + (1 | site:participant) + (1 | stimulus)")
    assert nested.loglik == pytest.approx(explicit.loglik, abs=1e-6)
    assert colon.loglik == pytest.approx(explicit.loglik, abs=1e-6)
    assert [t.group for t in nested.random_terms] == ["site", "site:participant", "stimulus"]


def test_unidentifiable_models_are_refused_like_lme4():
    data = simulate_ratings(design=CrossedDesign(12, 10, 10), seed=9)
    with pytest.raises(ModelFitError, match="single level"):
        fit_ratings(data.assign(participant="P1"))
    with pytest.raises(ModelFitError, match="must be < number of observations"):
        fit_ratings(data.assign(row=np.arange(len(data)).astype(str)), "response ~ condition + (1 | row)")
    few = data[data["participant"].isin(["P00000", "P00001"])].groupby("participant").head(2)
    with pytest.raises(ModelFitError, match=r"number of observations \(=4\) <= number of random effects \(=4\)"):
        fit_ratings(few, "response ~ 1 + (1 + trial_index | participant)")


def test_singular_and_convergence_warnings():
    data = simulate_ratings(design=CrossedDesign(30, 20, 20), sd_participant=0.0, seed=11)
    singular = fit_ratings(data)  # no participant variance in the data: the estimate sits at 0, as lme4's would
    assert singular.result.theta[0] == 0 and singular.singular
    assert singular.warnings == [
        "boundary (singular) fit: see help('isSingular') (participant variance estimated as 0)"
    ]
    healthy = fit_ratings(simulate_ratings(design=CrossedDesign(30, 20, 20), seed=11))
    assert not healthy.singular and healthy.warnings == []
    # Away from the optimum, lme4's scaled-gradient check fires.
    wrong = healthy.engine.result_at(healthy.result.theta * 1.6)
    stale = dataclasses.replace(healthy, result=wrong, _satterthwaite_parts=None, _warnings=None)
    assert any(w.startswith("Model failed to converge with max|grad|") for w in stale.warnings)


def test_slopes_model_type1_error_is_nominal():
    """Seeded null simulation; the Wald z rate is the liberal one the issue reported (about 7 %)."""
    design = CrossedDesign(16, 12, 12, conditions=("baseline", "a", "b"))
    rates = null_rejection_rates(design=design, formula=FORMULAS["slopes"], n_datasets=60, seed=500)
    assert rates["n_tests"] == 120
    assert 0.01 <= rates["type1_t"] <= 0.09
    assert rates["type1_z"] >= rates["type1_t"]
    assert rates["median_df"] < 20  # the stimuli, not the 192 ratings, set the df


def test_cli_prints_lme4_warnings_and_fits_the_ordinal_model(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "ratings.csv"
    data = simulate_ratings(design=CrossedDesign(30, 20, 20), sd_participant=0.0, scale=(1, 7), seed=11)
    data.to_csv(path, index=False)
    root = Path(__file__).resolve().parents[2]
    base = [sys.executable, "-m", "analysis", "fit", str(path), "--dimension", "artistry", "--no-exclusions"]
    lmm = subprocess.run(base, cwd=root, capture_output=True, text=True, timeout=300)
    assert lmm.returncode == 0, lmm.stderr
    assert "warning: boundary (singular) fit" in lmm.stderr
    assert "Satterthwaite" in lmm.stdout
    clmm = subprocess.run([*base, "--ordinal", "probit"], cwd=root, capture_output=True, text=True, timeout=300)
    assert clmm.returncode == 0, clmm.stderr
    assert "Cumulative link mixed model" in clmm.stdout and "link: probit" in clmm.stdout
    assert "Thresholds:" in clmm.stdout and "1|2" in clmm.stdout
    assert "warning: ordinal model: boundary (singular) fit" in clmm.stderr

"""The fast engine against lme4 (validation set) and statsmodels MixedLM (small data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from analysis import fit_ratings
from analysis.engine import CrossedLMM, GroupDesign, ModelFitError, RandomTerm
from analysis.simulation import CrossedDesign, simulate_ratings

FOUR_DIGITS = 5e-5  # relative tolerance: agreement to at least four significant digits


def lme4_term(term: str) -> str:
    """lme4 prints `conditionartistic-0.5`, patsy `condition[T.artistic-0.5]`."""
    return "Intercept" if term == "(Intercept)" else f"condition[T.{term.removeprefix('condition')}]"


@pytest.fixture(scope="module")
def reference_fits(reference_ratings: pd.DataFrame) -> dict:
    return {dim: fit_ratings(reference_ratings, dimension=dim) for dim in ("artistry", "symbolism")}


@pytest.mark.parametrize("dimension", ["artistry", "symbolism"])
def test_fixed_effects_match_lme4(reference_fits, validation_dir, dimension):
    lme4 = pd.read_csv(validation_dir / "lme4-fixed-effects.csv")
    lme4 = lme4[lme4["dimension"] == dimension].assign(term=lambda d: d["term"].map(lme4_term)).set_index("term")
    ours = reference_fits[dimension].to_frame().set_index("term")
    assert sorted(ours.index) == sorted(lme4.index)
    np.testing.assert_allclose(ours.loc[lme4.index, "estimate"], lme4["estimate"], rtol=FOUR_DIGITS)
    np.testing.assert_allclose(ours.loc[lme4.index, "std_error"], lme4["std_error"], rtol=FOUR_DIGITS)


@pytest.mark.parametrize("dimension", ["artistry", "symbolism"])
def test_variance_components_and_reml_loglik_match_lme4(reference_fits, validation_dir, dimension):
    lme4 = pd.read_csv(validation_dir / "lme4-variance-components.csv")
    lme4 = lme4[lme4["dimension"] == dimension].set_index("group")
    fit = reference_fits[dimension]
    ours = fit.variance_components().set_index("group")
    for group in ("participant", "stimulus", "Residual"):
        assert ours.loc[group, "variance"] == pytest.approx(lme4.loc[group, "variance"], rel=FOUR_DIGITS)
        assert ours.loc[group, "sd"] == pytest.approx(lme4.loc[group, "sd"], rel=FOUR_DIGITS)
    assert fit.loglik == pytest.approx(lme4["reml_loglik"].iloc[0], rel=1e-8)
    assert fit.result.converged


# lmerTest 3.1-3 (R 4.2.2, lme4 1.1-31) on the validation data, artistry: Satterthwaite df per coefficient.
LMERTEST_DF_ARTISTRY = {
    "Intercept": 308.4297752,
    "condition[T.artistic-0.25]": 195.5485619,
    "condition[T.artistic-0.5]": 195.3302400,
    "condition[T.artistic-1.0]": 195.5295428,
    "condition[T.symbolic]": 194.8341821,
}


def test_satterthwaite_df_match_lmertest(reference_fits):
    frame = reference_fits["artistry"].to_frame().set_index("term")
    for term, df in LMERTEST_DF_ARTISTRY.items():
        assert frame.loc[term, "df"] == pytest.approx(df, rel=1e-3), term
    normal = fit_ratings(reference_fits["artistry"].data, dimension="artistry", df_method="normal").to_frame()
    assert np.isinf(normal["df"]).all()
    assert (normal["ci_high"] - normal["ci_low"] < frame["ci_high"].to_numpy() - frame["ci_low"].to_numpy()).all()


def crossed_statsmodels(data: pd.DataFrame, reml: bool):
    data = data.assign(whole=1)
    model = smf.mixedlm(
        "response ~ C(condition, Treatment('baseline'))",
        data,
        groups="whole",
        re_formula="0",
        vc_formula={"participant": "0 + C(participant)", "stimulus": "0 + C(stimulus)"},
    )
    return model.fit(reml=reml, method=["lbfgs"])


@pytest.mark.parametrize("reml", [True, False])
def test_crossed_fit_matches_statsmodels(reml):
    data = simulate_ratings(
        design=CrossedDesign(24, 20, 10), effects={"artistic-1.0": 0.7, "symbolic": 0.3}, scale=(1, 7), seed=11
    )
    ours = fit_ratings(data, dimension="artistry", reml=reml)
    ref = crossed_statsmodels(data, reml)
    np.testing.assert_allclose(ours.params.to_numpy(), ref.fe_params.to_numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.bse.to_numpy(), ref.bse_fe.to_numpy(), rtol=1e-3)
    vc = ours.variance_components().set_index("group")["variance"]
    np.testing.assert_allclose([vc["participant"], vc["stimulus"]], ref.vcomp, rtol=1e-3, atol=1e-5)
    assert vc["Residual"] == pytest.approx(ref.scale, rel=1e-3)
    assert ours.loglik == pytest.approx(ref.llf, abs=1e-3)


def test_random_slopes_match_statsmodels():
    """(1 + condition | participant): the q > 1 block path of the engine."""
    data = simulate_ratings(
        design=CrossedDesign(40, 30, 30, conditions=("baseline", "artistic-1.0")),
        effects={"artistic-1.0": 0.5},
        sd_stimulus=0.0,
        seed=3,
    )
    rng = np.random.default_rng(1)
    slope = rng.normal(0, 0.4, 40)
    pid = data["participant"].str[1:].astype(int)
    data["response"] += slope[pid] * (data["condition"] == "artistic-1.0")
    ours = fit_ratings(data, "response ~ condition + (1 + condition | participant)", dimension="artistry")
    ref = smf.mixedlm(
        "response ~ C(condition, Treatment('baseline'))",
        data,
        groups="participant",
        re_formula="~C(condition, Treatment('baseline'))",
    ).fit(reml=True, method=["lbfgs"])
    np.testing.assert_allclose(ours.params.to_numpy(), ref.fe_params.to_numpy(), rtol=1e-4)
    np.testing.assert_allclose(ours.bse.to_numpy(), ref.bse_fe.to_numpy(), rtol=1e-3)
    cov = ours.result.covariances[0]
    np.testing.assert_allclose(cov, ref.cov_re.to_numpy(), rtol=2e-3, atol=1e-4)
    assert ours.loglik == pytest.approx(ref.llf, abs=1e-3)
    corr = ours.random_correlations()
    assert len(corr) == 1 and -1 <= corr["correlation"].iloc[0] <= 1


def test_with_response_reuses_the_design():
    data = simulate_ratings(design=CrossedDesign(20, 16, 8), effects={"symbolic": 0.5}, seed=2)
    first = fit_ratings(data, dimension="artistry")
    engine = CrossedLMM(np.zeros(len(data)), np.ones((len(data), 1)), first.result.terms)
    y = data["response"].to_numpy() + 1.0
    engine.with_response(y)
    again = fit_ratings(
        data.assign(response=y), "response ~ 1 + (1 | participant) + (1 | stimulus)", dimension="artistry"
    )
    assert engine.fit().deviance == pytest.approx(again.result.deviance, rel=1e-9)


def test_rank_deficient_design_is_a_clear_error():
    data = simulate_ratings(design=CrossedDesign(10, 10, 5), seed=1).assign(copy=lambda d: d["epsilon"])
    with pytest.raises(ModelFitError, match="rank deficient"):
        fit_ratings(data, "response ~ epsilon + copy + (1 | participant)", dimension="artistry")


def test_group_design_orders_columns_level_major():
    design = GroupDesign(
        RandomTerm("g", "1 + x"),
        np.array([0, 1, 1]),
        np.array(["a", "b"]),
        np.array([[1.0, 2.0], [1.0, 3.0], [1.0, 4.0]]),
        ["Intercept", "x"],
    )
    dense = design.sparse().toarray()
    np.testing.assert_array_equal(dense, [[1, 2, 0, 0], [0, 0, 1, 3], [0, 0, 1, 4]])
    np.testing.assert_array_equal(design.block_crossproducts()[1], [[2, 7], [7, 25]])


def test_unbalanced_designs_take_the_sparse_path_with_the_same_answer(monkeypatch):
    data = simulate_ratings(design=CrossedDesign(30, 24, 12), effects={"symbolic": 0.4}, seed=8)
    data = data.sample(frac=0.7, random_state=1)  # unequal numbers of ratings per participant
    grams = fit_ratings(data, dimension="artistry")
    import analysis.engine as engine_module

    monkeypatch.setattr(engine_module, "_MAX_COUNT_CLASSES", 0)
    sparse = fit_ratings(data, dimension="artistry")
    assert sparse.engine._count_values is None and grams.engine._count_values is not None
    assert sparse.loglik == pytest.approx(grams.loglik, rel=1e-10)
    np.testing.assert_allclose(sparse.bse, grams.bse, rtol=1e-6)
    ref = crossed_statsmodels(data, reml=True)
    assert sparse.loglik == pytest.approx(ref.llf, abs=1e-3)


def test_without_nlopt_lbfgsb_alone_still_matches_lme4(monkeypatch, reference_ratings, validation_dir):
    import analysis.engine as engine_module

    monkeypatch.setattr(engine_module, "_bobyqa", lambda *args: (None, np.inf, False, "nlopt not installed"))
    fit = fit_ratings(reference_ratings, dimension="symbolism")
    lme4 = pd.read_csv(validation_dir / "lme4-variance-components.csv").query("dimension == 'symbolism'")
    ours = fit.variance_components().set_index("group")["variance"]
    np.testing.assert_allclose(ours[lme4["group"]].to_numpy(), lme4["variance"].to_numpy(), rtol=FOUR_DIGITS)
    assert fit.loglik == pytest.approx(lme4["reml_loglik"].iloc[0], rel=1e-8)

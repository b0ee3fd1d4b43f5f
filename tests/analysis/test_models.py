"""The statsmodels-like API: tables, marginal means, contrasts, LRT, recovery and CI coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from analysis import RatingsError, fit_ratings, likelihood_ratio_test
from analysis.models import parse_formula
from analysis.power import PopulationModel, simulate_estimates
from analysis.simulation import CrossedDesign, simulate_ratings


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return simulate_ratings(
        design=CrossedDesign(30, 40, 20),
        effects={"artistic-1.0": 0.8, "symbolic": 0.4},
        dimensions=("artistry", "symbolism"),
        scale=(1, 7),
        seed=4,
    )


def test_parse_formula_splits_random_terms():
    fixed, random = parse_formula(
        "response ~ bs(epsilon, df=3) + condition + (1 + condition | participant) + (1|stimulus)"
    )
    assert fixed == "response ~ bs(epsilon, df=3) + condition"
    assert [t.label for t in random] == ["(1 + condition | participant)", "(1 | stimulus)"]
    with pytest.raises(RatingsError, match="no random-effects term"):
        parse_formula("response ~ condition")


def test_tables_use_patsy_names_and_baseline_reference(small):
    fit = fit_ratings(small, dimension="artistry")
    frame = fit.to_frame()
    assert list(frame.columns) == ["term", "estimate", "std_error", "ci_low", "ci_high", "p_value", "df", "statistic"]
    assert frame["term"].tolist() == [
        "Intercept",
        "condition[T.artistic-0.25]",
        "condition[T.artistic-0.5]",
        "condition[T.artistic-1.0]",
        "condition[T.symbolic]",
    ]
    assert (frame["ci_low"] < frame["estimate"]).all() and (frame["estimate"] < frame["ci_high"]).all()
    assert fit.variance_components()["group"].tolist() == ["participant", "stimulus", "Residual"]
    text = fit.summary()
    assert "Random effects" in text and "condition[T.symbolic]" in text and "participant, 30" in text


def test_emmeans_and_contrasts_are_consistent_with_coefficients(small):
    fit = fit_ratings(small, dimension="artistry")
    emm = fit.emmeans().set_index("condition")
    params = fit.params
    assert emm.loc["baseline", "emmean"] == pytest.approx(params["Intercept"])
    assert emm.loc["symbolic", "emmean"] - emm.loc["baseline", "emmean"] == pytest.approx(
        params["condition[T.symbolic]"]
    )
    contrasts = fit.contrasts().set_index("contrast")
    assert contrasts.loc["artistic-1.0 - baseline", "estimate"] == pytest.approx(params["condition[T.artistic-1.0]"])
    assert contrasts.loc["artistic-1.0 - baseline", "std_error"] == pytest.approx(fit.bse["condition[T.artistic-1.0]"])
    # Holm: adjusted p-values are monotone in the raw ones and never smaller.
    assert (contrasts["p_holm"] >= contrasts["p_value"] - 1e-15).all()
    order = contrasts["p_value"].argsort()
    assert np.all(np.diff(contrasts["p_holm"].to_numpy()[order]) >= -1e-15)
    np.testing.assert_allclose(contrasts["d"], contrasts["estimate"] / np.sqrt(fit.total_variance()))


def test_likelihood_ratio_test_uses_ml_fits(small):
    lrt = likelihood_ratio_test(small, dimension="artistry")
    data = small[small["dimension"] == "artistry"].assign(whole=1)
    vc = {"participant": "0 + C(participant)", "stimulus": "0 + C(stimulus)"}
    full = smf.mixedlm(
        "response ~ C(condition, Treatment('baseline'))", data, groups="whole", re_formula="0", vc_formula=vc
    ).fit(reml=False, method=["lbfgs"])
    null = smf.mixedlm("response ~ 1", data, groups="whole", re_formula="0", vc_formula=vc).fit(
        reml=False, method=["lbfgs"]
    )
    assert lrt.df == 4
    assert lrt.loglik_model == pytest.approx(full.llf, abs=1e-3)
    assert lrt.loglik_null == pytest.approx(null.llf, abs=1e-3)
    assert lrt.p_value == pytest.approx(stats.chi2.sf(2 * (full.llf - null.llf), 4), rel=1e-3)


def test_variants_fit(small):
    dose = small[(small["condition"] == "baseline") | (small["epsilon"] > 0)]
    linear = fit_ratings(dose, "response ~ epsilon + (1 | participant) + (1 | stimulus)", dimension="artistry")
    assert linear.params["epsilon"] > 0
    curve = linear.predict_fixed(pd.DataFrame({"epsilon": [0.0, 1.0]}))
    assert curve["estimate"].diff().iloc[1] == pytest.approx(linear.params["epsilon"])
    spline = fit_ratings(
        dose,
        "response ~ bs(epsilon, df=2, degree=2) + (1 | participant) + (1 | stimulus)",
        dimension="artistry",
        name="dose_spline",
    )
    assert spline.name == "dose_spline" and len(spline.params) == 3
    std = fit_ratings(small, dimension="artistry").standardized_effects()
    assert list(std.columns) == ["term", "d", "d_ci_low", "d_ci_high"]


def test_recovers_known_effects_with_nominal_ci_coverage():
    """250 simulated studies: unbiased estimates and 95% CIs covering the truth at the nominal rate."""
    population = PopulationModel(
        effects={"artistic-0.25": 0.2, "artistic-0.5": 0.4, "artistic-1.0": 0.8, "symbolic": -0.3}
    )
    n_sims = 250
    est, se, truth, names = simulate_estimates(CrossedDesign(40, 100, 25), population, n_sims=n_sims, seed=7)
    z = stats.norm.ppf(0.975)
    covered = (est - z * se <= truth) & (truth <= est + z * se)
    effects = covered[:, 1:]  # the four condition effects
    pooled = effects.mean()
    mc_se = np.sqrt(0.95 * 0.05 / effects.size)
    assert abs(pooled - 0.95) < 3 * mc_se, f"pooled coverage {pooled:.3f}"
    for j, name in enumerate(names):
        rate = covered[:, j].mean()
        assert abs(rate - 0.95) < 4 * np.sqrt(0.95 * 0.05 / n_sims), f"{name}: coverage {rate:.3f}"
        bias = est[:, j].mean() - truth[j]
        assert abs(bias) < 4 * est[:, j].std() / np.sqrt(n_sims), f"{name}: bias {bias:.3f}"
    # SEs are calibrated: their mean matches the empirical spread of the estimates.
    np.testing.assert_allclose(se[:, 1:].mean(axis=0), est[:, 1:].std(axis=0), rtol=0.15)


def test_dimension_must_be_chosen_when_several(small):
    with pytest.raises(RatingsError, match="several dimensions"):
        fit_ratings(small)
    with pytest.raises(RatingsError, match="no ratings for dimension"):
        fit_ratings(small, dimension="beauty")

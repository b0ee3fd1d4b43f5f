"""The report's shortcuts change no number: warm starts and the reused design give the from-scratch results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import fit_ratings, likelihood_ratio_test
from analysis.report import analyse_dimension, warm_start
from analysis.simulation import CrossedDesign, simulate_ratings


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return simulate_ratings(
        design=CrossedDesign(60, 50, 25), effects={"artistic-1.0": 0.5, "symbolic": 0.3}, scale=(1, 7), seed=11
    )


def test_warm_started_fits_reach_the_cold_optimum_in_fewer_evaluations(data):
    main = fit_ratings(data, dimension="artistry")
    formula = "response ~ epsilon + (1 | participant) + (1 | stimulus)"
    cold = fit_ratings(data, formula, dimension="artistry")
    warm = fit_ratings(data, formula, dimension="artistry", **warm_start(main))
    assert warm.result.deviance == pytest.approx(cold.result.deviance, abs=1e-7)
    np.testing.assert_allclose(warm.params, cold.params, rtol=1e-6)
    assert warm.result.n_evaluations < cold.result.n_evaluations
    ml_cold = main.engine.fit(reml=False)
    ml_warm = main.engine.fit(reml=False, **warm_start(main))
    assert ml_warm.deviance == pytest.approx(ml_cold.deviance, abs=1e-7)
    assert ml_warm.n_evaluations < ml_cold.n_evaluations


def test_report_lrt_equals_the_from_scratch_lrt(data):
    analysis = analyse_dimension(data, "artistry", classes=False)
    reference = likelihood_ratio_test(data, dimension="artistry")
    assert analysis.lrt.df == reference.df == 4
    assert analysis.lrt.statistic == pytest.approx(reference.statistic, rel=1e-6)
    assert analysis.lrt.loglik_null == pytest.approx(reference.loglik_null, rel=1e-9)


def test_power_is_an_option_with_its_own_table_and_section(tmp_path):
    from analysis import build_report

    ratings = simulate_ratings(design=CrossedDesign(16, 20, 10), effects={"artistic-1.0": 0.8}, scale=(1, 7), seed=2)
    default = build_report(ratings, tmp_path / "a", n_splits=0)
    assert not (tmp_path / "a" / "power.csv").exists() and 'id="power"' not in default.read_text()
    outcome = build_report(ratings, tmp_path / "b", n_splits=0, power=True, power_sims=4)
    power = pd.read_csv(tmp_path / "b" / "power.csv")
    assert sorted(power["n_participants"].unique()) == [8, 16, 32] and power["power"].between(0, 1).all()
    html = outcome.read_text()
    assert 'id="power"' in html and "Power was estimated from 4 simulated studies" in html
    assert "power simulation" in set(pd.read_csv(tmp_path / "b" / "timings.csv")["section"])

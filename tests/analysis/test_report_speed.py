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
    return simulate_ratings(design=CrossedDesign(60, 50, 25), effects={"artistic-1.0": 0.5, "symbolic": 0.3},
                            scale=(1, 7), seed=11)


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

"""A third crossed grouping factor, the perturbed network, agrees with lme4 (reference made with R, vendored)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import fit_ratings

DATA = Path(__file__).resolve().parent / "data" / "network"
FORMULA = "response ~ condition + (1 | participant) + (1 | stimulus) + (1 | network)"


@pytest.fixture(scope="module")
def fits():
    ratings = pd.read_csv(DATA / "ratings.csv")
    reference = pd.read_csv(DATA / "lme4_reference.csv")
    return fit_ratings(ratings, FORMULA), reference


def _lme4_name(term: str) -> str:
    return "(Intercept)" if term == "Intercept" else term.replace("condition[T.", "condition").rstrip("]")


def test_network_model_matches_lme4(fits):
    fit, reference = fits
    ref = {(k, n): v for k, n, v in reference.itertuples(index=False)}
    names = [_lme4_name(t) for t in fit.term_names]
    np.testing.assert_allclose(fit.params.to_numpy(), [ref["beta", n] for n in names], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fit.bse.to_numpy(), [ref["vcov_se", n] for n in names], rtol=1e-4)
    vc = fit.variance_components().set_index("group")["variance"]
    for group in ("participant", "stimulus", "network", "Residual"):
        assert vc[group] == pytest.approx(ref["variance", group], rel=1e-4), group
    assert fit.loglik == pytest.approx(ref["reml_loglik", "logLik"], rel=1e-7)

"""Ordinal sensitivity analysis: a cumulative-logit model, because ratings are ordered categories, not intervals."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.miscmodels.ordinal_model import OrderedModel

from analysis.ratings import REFERENCE_CONDITION, conditions_in_order


def fit_ordinal(ratings: pd.DataFrame, *, dimension: str, reference: str = REFERENCE_CONDITION,
                alpha: float = 0.05) -> pd.DataFrame:
    """Condition log-odds ratios vs the reference with SEs clustered two-way, by participant and by stimulus.

    Ratings are correlated within a participant and within a stimulus; condition is a stimulus attribute,
    so one-way clustering on participants alone would understate the SEs badly.
    """
    data = ratings[ratings["dimension"] == dimension].dropna(subset=["response", "condition"])
    levels = conditions_in_order(data, reference)
    exog = pd.get_dummies(pd.Categorical(data["condition"], categories=levels), dtype=float)
    exog = exog.drop(columns=[reference] if reference in exog.columns else exog.columns[:1])
    exog.columns = [f"condition[T.{c}]" for c in exog.columns]
    endog = pd.Series(pd.Categorical(data["response"], ordered=True), index=exog.index)
    groups = np.column_stack([pd.factorize(data["participant"])[0], pd.factorize(data["stimulus"])[0]])
    model = OrderedModel(endog.reset_index(drop=True), exog.reset_index(drop=True), distr="logit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model.fit(method="bfgs", disp=False, maxiter=500, cov_type="cluster", cov_kwds={"groups": groups})
    names = list(exog.columns)
    est = np.asarray(result.params[: len(names)])
    se = np.asarray(result.bse[: len(names)])
    z = stats.norm.ppf(1 - alpha / 2)
    return pd.DataFrame({"dimension": dimension, "term": names, "log_odds": est, "std_error": se,
                         "ci_low": est - z * se, "ci_high": est + z * se, "odds_ratio": np.exp(est),
                         "p_value": 2 * stats.norm.sf(np.abs(est / se))})

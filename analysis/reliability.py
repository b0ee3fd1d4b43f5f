"""How consistently participants rate stimuli: ICCs, split-half reliability, Krippendorff's alpha."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def split_half(ratings: pd.DataFrame, *, n_splits: int = 100, seed: int = 0) -> dict[str, float]:
    """Correlation of stimulus means between random halves of participants, stepped up with Spearman-Brown."""
    rng = np.random.default_rng(seed)
    codes_p, participants = pd.factorize(ratings["participant"])
    stim_codes, _ = pd.factorize(ratings["stimulus"])
    n_stim = stim_codes.max() + 1
    y = ratings["response"].to_numpy(float)
    values = []
    for _ in range(n_splits):
        half = rng.permutation(len(participants)) < len(participants) // 2
        in_a = half[codes_p]
        means = []
        for mask in (in_a, ~in_a):
            total = np.bincount(stim_codes[mask], weights=y[mask], minlength=n_stim)
            count = np.bincount(stim_codes[mask], minlength=n_stim)
            with np.errstate(invalid="ignore", divide="ignore"):
                means.append(total / count)
        ok = np.isfinite(means[0]) & np.isfinite(means[1])
        if ok.sum() < 3 or np.std(means[0][ok]) == 0 or np.std(means[1][ok]) == 0:
            continue  # no correlation is defined (e.g. one condition on a coarse scale, or one participant)
        r = np.corrcoef(means[0][ok], means[1][ok])[0, 1]
        if not r > -1:  # perfectly opposite halves (a few stimuli): the step-up 2r/(1+r) is undefined, not -inf
            continue
        values.append(2 * r / (1 + r))
    arr = np.asarray(values)
    if arr.size == 0:
        return {"split_half": np.nan, "split_half_low": np.nan, "split_half_high": np.nan}
    return {
        "split_half": float(arr.mean()),
        "split_half_low": float(np.quantile(arr, 0.025)),
        "split_half_high": float(np.quantile(arr, 0.975)),
    }


def krippendorff_alpha(
    ratings: pd.DataFrame,
    *,
    level: str = "interval",
    unit: str = "stimulus",
    coder: str = "participant",
    value: str = "response",
) -> float:
    """Krippendorff's alpha; handles missing ratings (incomplete designs). Memory is linear in the ratings.

    With o_ck = Σ_u n_uc (n_uk - [c = k]) / (m_u - 1) the coincidences, the disagreements Σ o_ck δ_ck and
    Σ n_c n_k δ_ck are sums of squares for the interval metric, so no k x k matrix over the distinct values is
    built (a 0-100 slider with fractional values has thousands). The ordinal metric δ_ck = (Σ_{g=c..k} n_g -
    (n_c + n_k)/2)² is the interval metric on mid-ranks F_c = Σ_{g<c} n_g + n_c/2; nominal uses Σ n_uc².
    """
    df = ratings[[unit, coder, value]].dropna()
    df = df.drop_duplicates(subset=[unit, coder])
    sizes = df.groupby(unit)[value].transform("size")
    df = df[sizes >= 2]
    if df.empty:
        return np.nan
    v = df[value].to_numpy(dtype=float)
    if level == "ordinal":
        _, inverse, n_c = np.unique(v, return_inverse=True, return_counts=True)
        mid_rank = np.cumsum(n_c) - n_c + n_c / 2.0
        v = mid_rank[inverse]
    elif level not in {"interval", "nominal"}:
        raise ValueError(f"unknown level of measurement {level!r}")
    u_idx, _ = pd.factorize(df[unit])
    m_u = np.bincount(u_idx).astype(float)
    n = float(len(v))
    if level == "nominal":
        codes = np.unique(v, return_inverse=True)[1]
        per_unit_value = pd.Series(1.0, index=pd.MultiIndex.from_arrays([u_idx, codes])).groupby(level=[0, 1]).sum()
        squares_u = (per_unit_value**2).groupby(level=0).sum().reindex(range(len(m_u)), fill_value=0.0).to_numpy()
        observed = float(np.sum((m_u**2 - squares_u) / (m_u - 1)))
        n_c = np.bincount(codes).astype(float)
        expected = (n**2 - float(np.sum(n_c**2))) / (n - 1)
    else:
        # Σ_ck n_uc n_uk (v_c - v_k)² = 2 (m_u Σ v² - (Σ v)²) within a unit, and likewise over all values for the
        # expected disagreement; centring first keeps the differences exact for large values.
        v = v - v.mean()
        s1 = np.bincount(u_idx, weights=v)
        s2 = np.bincount(u_idx, weights=v * v)
        observed = float(np.sum(2.0 * (m_u * s2 - s1**2) / (m_u - 1)))
        expected = 2.0 * n * float(v @ v) / (n - 1)
    return 1.0 - observed / expected if expected > 0 else np.nan


def stimulus_means(ratings: pd.DataFrame) -> pd.DataFrame:
    """Mean rating per stimulus and dimension, wide (one column per dimension)."""
    return ratings.pivot_table(index="stimulus", columns="dimension", values="response", aggfunc="mean")


def dimension_correlation(ratings: pd.DataFrame, first: str = "artistry", second: str = "symbolism") -> dict:
    """Pearson (Fisher-z CI) and Spearman correlation of two dimensions' stimulus means."""
    means = stimulus_means(ratings)
    if first not in means.columns or second not in means.columns:
        return {}
    pair = means[[first, second]].dropna()
    n = len(pair)
    if n < 4 or pair[first].std() == 0 or pair[second].std() == 0:
        return {}
    r, p = stats.pearsonr(pair[first], pair[second])
    z, half = np.arctanh(r), stats.norm.ppf(0.975) / np.sqrt(n - 3)
    rho = stats.spearmanr(pair[first], pair[second])[0]
    return {
        "first": first,
        "second": second,
        "n_stimuli": n,
        "pearson_r": float(r),
        "ci_low": float(np.tanh(z - half)),
        "ci_high": float(np.tanh(z + half)),
        "p_value": float(p),
        "spearman_rho": float(rho),
    }


def reliability_table(
    ratings: pd.DataFrame, iccs: dict[str, dict[str, float]], *, n_splits: int = 100, seed: int = 0
) -> pd.DataFrame:
    """One row per dimension: model ICCs, reliability of stimulus means, split-half, alpha (interval, ordinal)."""
    rows = []
    for dim, sub in ratings.groupby("dimension", sort=True):
        icc = iccs.get(str(dim), {})
        per_stimulus = sub.groupby("stimulus").size().mean()
        icc_s, icc_p = icc.get("icc_stimulus", np.nan), icc.get("icc_participant", np.nan)
        resid_share = 1.0 - icc_s - icc_p
        # Reliability of a stimulus mean over k raters, the "ICC(k)" of the design:
        # sigma²_s / (sigma²_s + (sigma²_p + sigma²_e)/k).
        mean_rel = icc_s / (icc_s + (icc_p + resid_share) / per_stimulus) if np.isfinite(icc_s) else np.nan
        rows.append(
            {
                "dimension": dim,
                "icc_participant": icc_p,
                "icc_stimulus": icc_s,
                "ratings_per_stimulus": per_stimulus,
                "stimulus_mean_reliability": mean_rel,
                **split_half(sub, n_splits=n_splits, seed=seed),
                "alpha_interval": krippendorff_alpha(sub, level="interval"),
                "alpha_ordinal": krippendorff_alpha(sub, level="ordinal"),
            }
        )
    return pd.DataFrame(rows)

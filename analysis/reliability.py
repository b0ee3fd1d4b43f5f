"""How consistently participants rate stimuli: ICCs, split-half reliability, Krippendorff's alpha."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def split_half(ratings: pd.DataFrame, *, n_splits: int = 100, seed: int = 0) -> dict[str, float]:
    """Correlation of stimulus means between random halves of participants, stepped up with Spearman-Brown."""
    rng = np.random.default_rng(seed)
    participants = ratings["participant"].unique()
    codes_p = pd.Categorical(ratings["participant"], categories=participants).codes
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
        if ok.sum() < 3:
            continue
        r = np.corrcoef(means[0][ok], means[1][ok])[0, 1]
        values.append(2 * r / (1 + r))
    arr = np.asarray(values)
    if arr.size == 0:
        return {"split_half": np.nan, "split_half_low": np.nan, "split_half_high": np.nan}
    return {"split_half": float(arr.mean()), "split_half_low": float(np.quantile(arr, 0.025)),
            "split_half_high": float(np.quantile(arr, 0.975))}


def krippendorff_alpha(ratings: pd.DataFrame, *, level: str = "interval", unit: str = "stimulus",
                       coder: str = "participant", value: str = "response") -> float:
    """Krippendorff's alpha from the coincidence matrix; handles missing ratings (incomplete designs)."""
    df = ratings[[unit, coder, value]].dropna()
    df = df.drop_duplicates(subset=[unit, coder])
    sizes = df.groupby(unit)[value].transform("size")
    df = df[sizes >= 2]
    if df.empty:
        return np.nan
    levels = np.sort(df[value].unique())
    v_idx = np.searchsorted(levels, df[value].to_numpy())
    u_idx, _ = pd.factorize(df[unit])
    k = len(levels)
    counts = np.zeros((u_idx.max() + 1, k))
    np.add.at(counts, (u_idx, v_idx), 1.0)
    m_u = counts.sum(axis=1)
    # o_ck = Σ_u n_uc (n_uk - [c = k]) / (m_u - 1)
    weighted = counts / (m_u - 1)[:, None]
    coincidence = weighted.T @ counts - np.diag(weighted.sum(axis=0))
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    if level == "interval":
        delta = (levels[:, None] - levels[None, :]) ** 2
    elif level == "ordinal":
        cum = np.cumsum(n_c)
        lo = np.minimum.outer(np.arange(k), np.arange(k))
        hi = np.maximum.outer(np.arange(k), np.arange(k))
        between = cum[hi] - np.where(lo > 0, cum[lo - 1], 0.0)
        delta = (between - (n_c[lo] + n_c[hi]) / 2) ** 2
    elif level == "nominal":
        delta = 1.0 - np.eye(k)
    else:
        raise ValueError(f"unknown level of measurement {level!r}")
    observed = float((coincidence * delta).sum())
    expected = float((np.outer(n_c, n_c) * delta).sum()) / (n - 1)
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
    if n < 4:
        return {}
    r, p = stats.pearsonr(pair[first], pair[second])
    z, half = np.arctanh(r), stats.norm.ppf(0.975) / np.sqrt(n - 3)
    rho = stats.spearmanr(pair[first], pair[second])[0]
    return {"first": first, "second": second, "n_stimuli": n, "pearson_r": float(r), "ci_low": float(np.tanh(z - half)),
            "ci_high": float(np.tanh(z + half)), "p_value": float(p), "spearman_rho": float(rho)}


def reliability_table(ratings: pd.DataFrame, iccs: dict[str, dict[str, float]], *, n_splits: int = 100,
                      seed: int = 0) -> pd.DataFrame:
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
        rows.append({
            "dimension": dim, "icc_participant": icc_p, "icc_stimulus": icc_s,
            "ratings_per_stimulus": per_stimulus, "stimulus_mean_reliability": mean_rel,
            **split_half(sub, n_splits=n_splits, seed=seed),
            "alpha_interval": krippendorff_alpha(sub, level="interval"),
            "alpha_ordinal": krippendorff_alpha(sub, level="ordinal"),
        })
    return pd.DataFrame(rows)

"""Scaling of pairwise comparisons: Bradley-Terry and Thurstone Case V with a weak prior.

One row of the comparisons table is one choice between two stimuli. Per stimulus we fit the
maximum a-posteriori scale under an isotropic Gaussian prior (so sparse or disconnected graphs
stay well posed, as in pwcmp), with bootstrap CIs over participants. Scores are centred (mean 0):

* Bradley-Terry: P(i beats j) = logistic(s_i - s_j), scores in logits (as `choix`).
* Thurstone Case V: P(i beats j) = Phi(k (s_i - s_j)) with k = Phi^-1(0.75), so one unit is a JOD (just
  objectionable difference: 75 % prefer the better), the unit pwcmp reports.

Condition effects come from a Bradley-Terry model with condition as covariate and a random
effect for stimulus, s_i = beta_cond(i) + u_i, u_i ~ N(0, sigma^2), fitted by Laplace approximation like
glmer: stimuli are a sample from their condition, so the effect's CI reflects stimulus variation
and not only the precision of the comparisons (scaling first and averaging scores would not).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special, stats
from tqdm.auto import tqdm

from analysis.pairs import ScalePosterior, draw_pairs, random_pairs

JOD = float(stats.norm.ppf(0.75))
MODELS = ("bradley-terry", "thurstone")

# The long-format comparisons table, one row per choice (the study export writes it). The required columns
# first; then what the export adds about the choice and the participant; then each image's stimulus columns
# suffixed `_left` / `_right` (e.g. `condition_left`). An empty `chosen` is a "no difference" answer.
COMPARISON_COLUMNS = ("participant", "left", "right", "chosen", "dimension", "rt_ms", "trial_index", "pair_source")
COMPARISON_DETAIL_COLUMNS = (
    "study",
    "is_pilot",
    "group",
    "chosen_side",
    "trial_rt_ms",
    "block",
    "is_practice",
    "is_attention_check",
    "expected_side",
    "attention_passed",
    "shown_at",
    "answered_at",
    "shown_count",
    "posterior_seq",
    "participant_status",
    "participant_seed",
    "consented_at",
    "completed_at",
    "duration_s",
    "attention_failures",
    "age_band",
    "gender",
    "art_training",
    "art_expertise",
    "comment",
)
PAIR_STIMULUS_COLUMNS = (
    "condition",
    "epsilon",
    "class_index",
    "class_name",
    "seed",
    "draw",
    "stimulus_set",
    "colorfulness",
    "saturation",
    "rms_contrast",
    "luminance_entropy",
    "edge_density",
    "compression_ratio",
    "image_path",
)
COMPARISON_EXPORT_COLUMNS = (
    *COMPARISON_COLUMNS,
    *COMPARISON_DETAIL_COLUMNS,
    *(f"{column}_{side}" for side in ("left", "right") for column in PAIR_STIMULUS_COLUMNS),
)


class PairwiseError(ValueError):
    """Comparisons that cannot be scaled; the message says what to change."""


@dataclass(frozen=True)
class Comparisons:
    """Choices of one dimension as item indices: `first` was preferred to `second` with `weight`."""

    items: tuple[str, ...]
    first: np.ndarray
    second: np.ndarray
    weight: np.ndarray
    participant: np.ndarray
    participants: tuple[str, ...]

    @property
    def n_items(self) -> int:
        return len(self.items)

    def subset(self, rows: np.ndarray) -> Comparisons:
        return Comparisons(
            self.items,
            self.first[rows],
            self.second[rows],
            self.weight[rows],
            self.participant[rows],
            self.participants,
        )


def comparisons_from_frame(df: pd.DataFrame, *, items: list[str] | None = None) -> Comparisons:
    """Read one dimension's rows; a "no difference" answer (empty `chosen`) is half a win each way."""
    missing = [c for c in ("participant", "left", "right", "chosen") if c not in df.columns]
    if missing:
        raise PairwiseError(f"the comparisons table lacks column(s) {', '.join(missing)}")
    df = df.dropna(subset=["participant", "left", "right"])
    left, right = df["left"].astype(str).to_numpy(), df["right"].astype(str).to_numpy()
    chosen = df["chosen"].astype("string").fillna("").to_numpy(dtype=object)
    valid = (chosen == left) | (chosen == right) | (chosen == "")
    if not valid.all():
        bad = int((~valid).sum())
        raise PairwiseError(f"{bad} comparison(s) chose a stimulus that was not shown: fix `chosen`")
    names = items if items is not None else sorted(set(left) | set(right))
    index = {name: i for i, name in enumerate(names)}
    li = np.array([index[v] for v in left], dtype=int)
    ri = np.array([index[v] for v in right], dtype=int)
    tie = chosen == ""
    left_won = chosen == left
    first = np.where(left_won | tie, li, ri)
    second = np.where(left_won | tie, ri, li)
    weight = np.where(tie, 0.5, 1.0)
    # A tie adds the mirrored half win too.
    first = np.concatenate([first, ri[tie]])
    second = np.concatenate([second, li[tie]])
    weight = np.concatenate([weight, np.full(int(tie.sum()), 0.5)])
    pcodes, puniq = pd.factorize(df["participant"].astype(str))
    participant = np.concatenate([pcodes, pcodes[tie]])
    return Comparisons(tuple(names), first, second, weight, participant, tuple(puniq))


def _link(model: str) -> tuple[float, Callable, Callable]:
    """Scale factor, log P(win | z) and its first two derivatives for the model's link."""
    if model == "bradley-terry":

        def logp(z):
            return -np.logaddexp(0.0, -z)

        def derivs(z):
            p = special.expit(z)
            return 1.0 - p, p * (1.0 - p)

        return 1.0, logp, derivs
    if model == "thurstone":

        def logp(z):
            return special.log_ndtr(z)

        def derivs(z):
            lam = np.exp(-0.5 * z * z - 0.5 * np.log(2 * np.pi) - special.log_ndtr(z))
            return lam, lam * (lam + z)

        return JOD, logp, derivs
    raise PairwiseError(f"unknown scaling model {model!r}: use one of {', '.join(MODELS)}")


def _pair_information(a: np.ndarray, b: np.ndarray, curvature: np.ndarray, n: int) -> np.ndarray:
    """Minus the Hessian of a pairwise log-likelihood in the n scores: a weighted graph Laplacian."""
    out = np.zeros((n, n))
    np.add.at(out, (a, a), curvature)
    np.add.at(out, (b, b), curvature)
    np.add.at(out, (a, b), -curvature)
    np.add.at(out, (b, a), -curvature)
    return out


@dataclass(frozen=True)
class ScaleFit:
    """MAP scale of one dimension with Laplace SEs (bootstrap CIs are added by `scale_table`)."""

    model: str
    items: tuple[str, ...]
    scores: np.ndarray
    se: np.ndarray
    log_likelihood: float
    prior_sd: float
    iterations: int


def fit_scale(
    comps: Comparisons, *, model: str = "bradley-terry", prior_sd: float = 3.0, start: np.ndarray | None = None
) -> ScaleFit:
    """Newton iterations on the penalised log-likelihood (concave: the maximum is unique)."""
    k, logp, derivs = _link(model)
    n = comps.n_items
    if n < 2:
        raise PairwiseError(f"scaling needs at least 2 stimuli, got {n}")
    a, b, w = comps.first, comps.second, comps.weight
    s = np.zeros(n) if start is None else np.asarray(start, dtype=float).copy()
    precision = 1.0 / prior_sd**2

    def penalised(x):
        return float((w * logp(k * (x[a] - x[b]))).sum() - 0.5 * precision * (x @ x))

    value = penalised(s)
    iterations = 0
    while iterations < 100:
        iterations += 1
        d1, d2 = derivs(k * (s[a] - s[b]))
        g1, g2 = w * d1 * k, w * d2 * k * k
        grad = np.bincount(a, g1, n) - np.bincount(b, g1, n) - precision * s
        hess = _pair_information(a, b, g2, n)
        hess[np.diag_indices(n)] += precision
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while True:  # the objective is concave, so halving always finds an ascent
            candidate = s + t * step
            new = penalised(candidate)
            if new >= value - 1e-12 or t < 1e-8:
                break
            t /= 2
        s, change, value = candidate, new - value, new
        if np.max(np.abs(t * step)) < 1e-9 or abs(change) < 1e-12:
            break
    d1, d2 = derivs(k * (s[a] - s[b]))
    g2 = w * d2 * k * k
    hess = _pair_information(a, b, g2, n)
    hess[np.diag_indices(n)] += precision
    # SEs of the centred scores: the overall level is set by the prior alone and is not reported.
    cov = np.linalg.inv(hess)
    cov = cov - cov.mean(axis=0, keepdims=True)
    cov = cov - cov.mean(axis=1, keepdims=True)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    loglik = float((w * logp(k * (s[a] - s[b]))).sum())
    return ScaleFit(model, comps.items, s - s.mean(), se, loglik, prior_sd, iterations)


def bootstrap_scale(
    comps: Comparisons,
    *,
    fit: ScaleFit,
    reps: int = 200,
    level: float = 0.95,
    seed: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CIs from resampling participants (their choices stay together)."""
    rng = np.random.default_rng(seed)
    n_part = len(comps.participants)
    by_part = [np.flatnonzero(comps.participant == p) for p in range(n_part)]
    draws = np.empty((reps, comps.n_items))
    for r in tqdm(range(reps), desc="bootstrap", disable=not progress, leave=False):
        pick = rng.integers(0, n_part, n_part)
        rows = np.concatenate([by_part[p] for p in pick]) if n_part else np.array([], dtype=int)
        draws[r] = fit_scale(comps.subset(rows), model=fit.model, prior_sd=fit.prior_sd, start=fit.scores).scores
    alpha = (1 - level) / 2
    return np.quantile(draws, alpha, axis=0), np.quantile(draws, 1 - alpha, axis=0)


@dataclass(frozen=True)
class ConditionEffects:
    """Bradley-Terry condition effects vs the reference with a random stimulus effect."""

    conditions: tuple[str, ...]
    estimate: np.ndarray
    se: np.ndarray
    sd_stimulus: float
    reference: str

    def table(self, *, level: float = 0.95) -> pd.DataFrame:
        z = stats.norm.ppf(0.5 + level / 2)
        return pd.DataFrame(
            {
                "condition": self.conditions,
                "estimate": self.estimate,
                "ci_low": self.estimate - z * self.se,
                "ci_high": self.estimate + z * self.se,
            }
        )


def fit_condition_effects(comps: Comparisons, *, conditions: list[str], reference: str) -> ConditionEffects:
    """Laplace fit of s_i = beta_cond(i) + u_i (beta_reference = 0), sigma chosen by the marginal likelihood."""
    levels = [reference, *sorted(set(conditions) - {reference})]
    if reference not in set(conditions):
        raise PairwiseError(f"reference condition {reference!r} has no stimulus in the comparisons")
    if len(levels) < 2:
        raise PairwiseError("condition effects need at least two conditions")
    code = np.array([levels.index(c) for c in conditions])
    n, q = comps.n_items, len(levels) - 1
    X = np.zeros((n, q))
    for j in range(1, len(levels)):
        X[code == j, j - 1] = 1.0
    a, b, w = comps.first, comps.second, comps.weight

    def mode(log_sd: float, start: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        prec = np.exp(-2 * log_sd)
        theta = start.copy()  # (beta, u)
        Z = np.hstack([X, np.eye(n)])

        def objective(t):
            s = Z @ t
            return float((w * -np.logaddexp(0.0, -(s[a] - s[b]))).sum() - 0.5 * prec * (t[q:] @ t[q:]))

        value = objective(theta)
        for _ in range(100):
            s = Z @ theta
            p = special.expit(s[a] - s[b])
            g1, g2 = w * (1 - p), w * p * (1 - p)
            grad_s = np.bincount(a, g1, n) - np.bincount(b, g1, n)
            hs = _pair_information(a, b, g2, n)
            grad = Z.T @ grad_s
            grad[q:] -= prec * theta[q:]
            hess = Z.T @ hs @ Z
            hess[q:, q:] += prec * np.eye(n)
            hess[:q, :q] += 1e-8 * np.eye(q)
            step = np.linalg.solve(hess, grad)
            t = 1.0
            while True:
                cand = theta + t * step
                new = objective(cand)
                if new >= value - 1e-12 or t < 1e-8:
                    break
                t /= 2
            theta, done = cand, abs(new - value) < 1e-10
            value = new
            if done:
                break
        # Laplace approximation of the marginal log-likelihood in sigma (beta profiled at its mode).
        _sign, logdet = np.linalg.slogdet(hess[q:, q:])
        marginal = value + 0.5 * n * np.log(prec) - 0.5 * logdet
        return theta, hess, marginal

    start = np.zeros(q + n)
    cache: dict[float, tuple] = {}

    def negative(log_sd: float) -> float:
        theta, hess, marginal = mode(log_sd, cache.get("last", start))
        cache["last"] = theta
        cache[log_sd] = (theta, hess)
        return -marginal

    best = optimize.minimize_scalar(
        negative, bounds=(np.log(0.02), np.log(10.0)), method="bounded", options={"xatol": 1e-4}
    )
    theta, hess, _ = mode(float(best.x), cache.get("last", start))
    cov = np.linalg.inv(hess)
    return ConditionEffects(tuple(levels[1:]), theta[:q], np.sqrt(np.diag(cov)[:q]), float(np.exp(best.x)), reference)


def participant_agreement(comps: Comparisons, *, fit: ScaleFit, z_cut: float = -2.5) -> pd.DataFrame:
    """Per participant: how often their choices follow the consensus scale, and outliers among them.

    The consensus is refitted without the participant (leave-one-out), so a lone contrarian does
    not pull the scale toward themself; an outlier has a mean log-likelihood per choice more than
    |z_cut| robust SDs below the median, the criterion pwcmp's outlier analysis uses in spirit.
    """
    k, logp, _ = _link(fit.model)
    rows = []
    for p, name in enumerate(comps.participants):
        mine = comps.participant == p
        others = (
            fit_scale(
                comps.subset(np.flatnonzero(~mine)), model=fit.model, prior_sd=fit.prior_sd, start=fit.scores
            ).scores
            if (~mine).any()
            else fit.scores
        )
        a, b, w = comps.first[mine], comps.second[mine], comps.weight[mine]
        diff = others[a] - others[b]
        agree = float((w * (diff > 0)).sum() / w.sum()) if w.sum() else np.nan
        rows.append(
            {
                "participant": name,
                "n_choices": float(w.sum()),
                "agreement": agree,
                "loglik_per_choice": float((w * logp(k * diff)).sum() / w.sum()) if w.sum() else np.nan,
            }
        )
    out = pd.DataFrame(rows)
    ll = out["loglik_per_choice"]
    mad = float(stats.median_abs_deviation(ll.dropna(), scale="normal")) if ll.notna().sum() > 2 else 0.0
    out["z"] = (ll - ll.median()) / mad if mad > 0 else 0.0
    out["outlier"] = out["z"] < z_cut
    return out


def scale_table(
    df: pd.DataFrame,
    *,
    model: str = "bradley-terry",
    prior_sd: float = 3.0,
    reps: int = 200,
    level: float = 0.95,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """`dimension, stimulus, condition, score, se, ci_low, ci_high, n_comparisons` for every dimension."""
    frames = []
    for dimension, part in df.groupby("dimension", sort=True):
        comps = comparisons_from_frame(part)
        fit = fit_scale(comps, model=model, prior_sd=prior_sd)
        low, high = bootstrap_scale(comps, fit=fit, reps=reps, level=level, seed=seed, progress=progress)
        conditions = stimulus_conditions(part)
        counts = np.bincount(comps.first, comps.weight, comps.n_items) + np.bincount(
            comps.second, comps.weight, comps.n_items
        )
        frames.append(
            pd.DataFrame(
                {
                    "dimension": dimension,
                    "stimulus": list(comps.items),
                    "condition": [conditions.get(s, "") for s in comps.items],
                    "score": fit.scores,
                    "se": fit.se,
                    "ci_low": low,
                    "ci_high": high,
                    "n_comparisons": counts,
                }
            )
        )
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(
            columns=["dimension", "stimulus", "condition", "score", "se", "ci_low", "ci_high", "n_comparisons"]
        )
    )


def stimulus_conditions(df: pd.DataFrame) -> dict[str, str]:
    """Stimulus → condition from the `condition_left` / `condition_right` columns, when present."""
    out: dict[str, str] = {}
    for side in ("left", "right"):
        col = f"condition_{side}"
        if col in df.columns:
            for stim, cond in zip(df[side].astype(str), df[col].astype(str), strict=True):
                out.setdefault(stim, cond)
    return out


# ---- simulation: truth recovery and the comparison of designs ----------------------------------------


@dataclass(frozen=True)
class DesignPoint:
    design: str
    comparisons: int
    rmse: float
    mean_ci_width: float


def simulate_design(
    *,
    truth: np.ndarray,
    design: str,
    budgets: list[int],
    batch: int = 20,
    seed: int = 0,
    conditions: np.ndarray | None = None,
    model: str = "thurstone",
    prior_sd: float = 3.0,
) -> list[DesignPoint]:
    """Collect comparisons in batches (one participant each) and score the scale at each budget.

    Answers come from the Thurstone model with the given true scale (in JOD for `thurstone`);
    the adaptive design updates its posterior after every answer, as the study app does.
    """
    rng = np.random.default_rng(seed)
    n = len(truth)
    k = JOD if model == "thurstone" else 1.0
    posterior = ScalePosterior.prior(n_items=n, prior_sd=prior_sd * k if model == "thurstone" else prior_sd)
    firsts: list[int] = []
    seconds: list[int] = []
    counts = np.zeros(n)
    points = []
    goal = sorted(budgets)
    while goal:
        pairs = draw_pairs(
            design=design, n_items=n, n_pairs=batch, rng=rng, conditions=conditions, counts=counts, posterior=posterior
        )
        for a, b in pairs:
            p_a = (
                special.ndtr(k * (truth[a] - truth[b])) if model == "thurstone" else special.expit(truth[a] - truth[b])
            )
            win, lose = (a, b) if rng.random() < p_a else (b, a)
            firsts.append(int(win))
            seconds.append(int(lose))
            counts[[a, b]] += 1
            if design == "adaptive":
                # The posterior lives on the probit scale of the answers (unit noise).
                posterior.update(winner=int(win), loser=int(lose))
            if goal and len(firsts) >= goal[0]:
                m = len(firsts)
                comps = Comparisons(
                    tuple(map(str, range(n))),
                    np.array(firsts),
                    np.array(seconds),
                    np.ones(m),
                    np.zeros(m, dtype=int),
                    ("sim",),
                )
                fit = fit_scale(comps, model=model, prior_sd=prior_sd)
                centred = truth - truth.mean()
                points.append(
                    DesignPoint(
                        design,
                        m,
                        float(np.sqrt(np.mean((fit.scores - centred) ** 2))),
                        float(np.mean(2 * stats.norm.ppf(0.975) * fit.se)),
                    )
                )
                goal.pop(0)
    return points


def compare_designs(
    *,
    truth: np.ndarray,
    budgets: list[int],
    designs: tuple[str, ...] = ("random", "adaptive"),
    reps: int = 5,
    batch: int = 20,
    seed: int = 0,
    progress: bool = True,
    model: str = "thurstone",
) -> pd.DataFrame:
    """Mean RMSE and CI width per design and budget over `reps` simulated studies."""
    rows = []
    total = len(designs) * reps
    with tqdm(total=total, desc="designs", disable=not progress, leave=False) as bar:
        for design in designs:
            for r in range(reps):
                for point in simulate_design(
                    truth=truth, design=design, budgets=budgets, batch=batch, seed=seed + 1000 * r, model=model
                ):
                    rows.append(point.__dict__ | {"rep": r})
                bar.update()
    return pd.DataFrame(rows).groupby(["design", "comparisons"], as_index=False)[["rmse", "mean_ci_width"]].mean()


def comparisons_to_reach(curve: pd.DataFrame, *, design: str, rmse: float, metric: str = "rmse") -> float:
    """Comparisons a design needs for a target `metric` (`rmse` or `mean_ci_width`), on the log budget scale."""
    part = curve[curve["design"] == design].sort_values("comparisons")
    x, y = np.log(part["comparisons"].to_numpy(float)), part[metric].to_numpy(float)
    if rmse > y[0]:
        return float(part["comparisons"].iloc[0])
    if rmse < y[-1]:
        return float("nan")
    # The metric decreases with the budget: interpolate log(budget) against -metric.
    return float(np.exp(np.interp(-rmse, -y, x)))


def pairwise_power(
    *,
    stimuli: list[int],
    participants: list[int],
    pairs_per_participant: list[int],
    scale_sd: float = 1.0,
    design: str = "balanced",
    target_ci_width: float | None = None,
    reps: int = 5,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Scale precision (JOD) per stimuli x participants x pairs per participant, by simulation.

    Each simulated study draws a true Thurstone scale with SD `scale_sd`, collects `participants` batches of
    `pairs_per_participant` pairs from `design`, and fits the scale; the table gives the mean 95 % CI width
    (Laplace) and RMSE over `reps` studies, and whether the CI width meets `target_ci_width`.
    """
    rows = []
    grid = [(n, k) for n in stimuli for k in pairs_per_participant]
    for cell, (n_items, pairs) in enumerate(tqdm(grid, desc="pairwise power", disable=not progress, leave=False)):
        if n_items < 2:
            raise PairwiseError(f"a pairwise design needs at least 2 stimuli, got {n_items}")
        budgets = sorted({n_p * pairs for n_p in participants})
        points: list[DesignPoint] = []
        for r in range(reps):
            truth = random_truth(n_items=n_items, sd=scale_sd, seed=seed + 7919 * r + cell)
            points += simulate_design(truth=truth, design=design, budgets=budgets, batch=pairs, seed=seed + 1000 * r)
        frame = pd.DataFrame([p.__dict__ for p in points]).groupby("comparisons")[["rmse", "mean_ci_width"]].mean()
        for n_p in participants:
            budget = n_p * pairs
            rows.append(
                {
                    "design": design,
                    "n_stimuli": n_items,
                    "n_participants": n_p,
                    "pairs_per_participant": pairs,
                    "comparisons": budget,
                    "comparisons_per_stimulus": 2 * budget / n_items,
                    "mean_ci_width": float(frame.loc[budget, "mean_ci_width"]),
                    "rmse": float(frame.loc[budget, "rmse"]),
                    "meets_target": bool(frame.loc[budget, "mean_ci_width"] <= target_ci_width)
                    if target_ci_width is not None
                    else None,
                    "reps": reps,
                }
            )
    return pd.DataFrame(rows)


def comparison_information(*, difference: np.ndarray) -> np.ndarray:
    """Fisher information of one Thurstone comparison about s_i - s_j (JOD^-2), at true differences in JOD."""
    x = JOD * np.asarray(difference, dtype=float)
    # phi(x)^2 / (Phi(x) Phi(-x)) in logs: far-apart pairs carry almost nothing and must not divide 0 by 0.
    log_phi = -0.5 * x * x - 0.5 * np.log(2 * np.pi)
    return JOD**2 * np.exp(2 * log_phi - special.log_ndtr(x) - special.log_ndtr(-x))


def optimal_pair_shares(
    *, truth: np.ndarray, tol: float = 1e-4, max_iter: int = 10_000
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The A-optimal shares of comparisons over all pairs of a known scale: pairs, shares, tr L+ and its lower bound.

    Asymptotically the scale's covariance per comparison is L+, L the Laplacian with weight share_ij * I(d_ij);
    the shares that minimise tr L+ (the squared error) come from the multiplicative algorithm. The last value is
    certified (no allocation has a smaller tr L+), also where `max_iter` stops the algorithm short of `tol`.
    """
    truth = np.asarray(truth, dtype=float)
    n = len(truth)
    if n < 2:
        raise PairwiseError(f"a pairwise design needs at least 2 stimuli, got {n}")
    a, b = np.triu_indices(n, k=1)
    info = comparison_information(difference=truth[a] - truth[b])
    centre = np.full((n, n), 1.0 / n)

    def evaluate(shares: np.ndarray) -> tuple[float, np.ndarray, float]:
        # L+ of a connected graph is inv(L + J/n) - J/n (J all ones): cheaper than an SVD.
        cov = np.linalg.inv(_pair_information(a, b, shares * info, n) + centre) - centre
        gram = cov @ cov
        trace = float(np.trace(cov))
        # How fast tr L+ falls as each pair's share grows (the A-optimality "variance function").
        sensitivity = info * (gram[a, a] + gram[b, b] - 2 * gram[a, b])
        # tr L+ is convex and homogeneous of degree -1 in the shares, so trace^2 / max sensitivity bounds the
        # optimum from below; the gap closes at the optimum, where no pair's sensitivity exceeds the trace.
        return trace, sensitivity, trace * trace / float(sensitivity.max())

    shares = np.full(len(a), 1.0 / len(a))
    trace, sensitivity, lower = evaluate(shares)
    for _ in range(max_iter):
        if trace - lower <= tol * trace:
            break
        # Multiplicative algorithm with exponent 1/2, monotone for A-optimality (Yu 2010).
        shares = shares * np.sqrt(sensitivity / trace)
        shares /= shares.sum()
        trace, sensitivity, lower = evaluate(shares)
    return np.column_stack([a, b]), shares, trace, lower


def max_design_saving(*, truth: np.ndarray) -> float:
    """The largest share of comparisons any pair design can save against random pairs at equal squared error.

    Large-sample argument: random pairs give every pair the same share, and no design, not even one that knows
    the truth, has a smaller tr L+ than the A-optimal shares (`optimal_pair_shares`, certified lower bound).
    Not 1 - mean I(d_ij) / I(0): random pairs also spread their information unevenly (outlying stimuli are far
    from most others), and a design cannot put every comparison on a near tie and still link the whole scale.
    For the mean CI width the bound is approximate (that averages SEs, not variances).
    """
    truth = np.asarray(truth, dtype=float)
    pairs, _, _, lower = optimal_pair_shares(truth=truth)
    n = len(truth)
    info = comparison_information(difference=truth[pairs[:, 0]] - truth[pairs[:, 1]])
    centre = np.full((n, n), 1.0 / n)
    laplacian = _pair_information(pairs[:, 0], pairs[:, 1], info / len(pairs), n)
    random_trace = float(np.trace(np.linalg.inv(laplacian + centre) - centre))
    return max(0.0, 1.0 - lower / random_trace)


def random_truth(*, n_items: int, sd: float, seed: int = 0) -> np.ndarray:
    """A latent scale for simulations (normal scores, centred)."""
    truth = np.random.default_rng(seed).normal(0.0, sd, n_items)
    return truth - truth.mean()


__all__ = [
    "COMPARISON_COLUMNS",
    "COMPARISON_EXPORT_COLUMNS",
    "PAIR_STIMULUS_COLUMNS",
    "Comparisons",
    "ConditionEffects",
    "PairwiseError",
    "ScaleFit",
    "bootstrap_scale",
    "compare_designs",
    "comparison_information",
    "comparisons_from_frame",
    "fit_condition_effects",
    "fit_scale",
    "max_design_saving",
    "optimal_pair_shares",
    "pairwise_power",
    "participant_agreement",
    "random_pairs",
    "scale_table",
    "simulate_design",
]

"""Crossed linear mixed models of ratings: the statsmodels-like API over the fast engine.

Tests and CIs use t statistics with Satterthwaite degrees of freedom (as lmerTest does) for every model,
random slopes included: condition is a stimulus attribute, so its effective df follow the number of stimuli,
not of ratings, and z would be liberal for small stimulus sets. Fits carry lme4's messages (singular fit,
gradient and Hessian checks) in ``fit.warnings``; power simulations use z.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import patsy
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis.engine import CrossedLMM, EngineResult, GroupDesign, ModelFitError, RandomTerm, single_threaded_blas
from analysis.ratings import REFERENCE_CONDITION, RatingsError, conditions_in_order

DEFAULT_FORMULA = "response ~ condition + (1 | participant) + (1 | stimulus)"


class _Standardize(patsy.state.Standardize):
    """patsy's standardize with the sample SD (n - 1), as R's scale(); patsy's own divides by n."""

    def memorize_chunk(self, x, center=True, rescale=True, ddof=1):
        super().memorize_chunk(x, center=center, rescale=rescale, ddof=ddof)

    def transform(self, x, center=True, rescale=True, ddof=1):
        return super().transform(x, center=center, rescale=rescale, ddof=ddof)


# Formulas are evaluated in this module's namespace, which patsy searches before its built-ins: this
# `standardize` replaces patsy's in every model formula.
standardize = patsy.stateful_transform(_Standardize)

_NAME = r"[A-Za-z_][\w.]*"
_RANDOM_TERM = re.compile(rf"^\(\s*(?P<expr>[^|]+?)\s*(?P<bars>\|\|?)\s*(?P<group>{_NAME}(?:\s*[:/]\s*{_NAME})*)\s*\)$")


def _split_top_level(text: str, sep: str = "+") -> list[str]:
    parts, depth, current = [], 0, []
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == sep and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _expand_random(expr: str, bars: str, group: str) -> list[RandomTerm]:
    """lme4's expansions: ``a/b`` → ``a`` and ``a:b``; ``(x || g)`` → ``(1 | g) + (0 + x | g)`` (one term each)."""
    group = re.sub(r"\s+", "", group)
    if "/" in group:
        names = group.split("/")
        groups = [":".join(names[: i + 1]) for i in range(len(names))]
    else:
        groups = [group]
    if bars == "|":
        return [RandomTerm(group=g, expr=expr) for g in groups]
    minus_one = re.compile(r"-\s*1(?![\w.])")  # "x - 1" drops the intercept, as "0 + x" does
    parts = _split_top_level(minus_one.sub("", expr))
    intercept = "0" not in parts and not minus_one.search(expr)
    slopes = [p for p in parts if p not in {"0", "1"}]
    out = []
    for g in groups:
        if intercept:
            out.append(RandomTerm(group=g, expr="1"))
        out.extend(RandomTerm(group=g, expr=f"0 + {p}") for p in slopes)
    return out


def parse_formula(formula: str) -> tuple[str, list[RandomTerm]]:
    """Split an lme4-style formula into the patsy fixed-effects formula and its random terms.

    Random terms: ``(expr | g)``, uncorrelated ``(expr || g)``, nested ``(1 | a:b)`` and ``(1 | a/b)``.
    """
    if "~" not in formula:
        raise RatingsError(f"formula needs a '~': {formula!r}")
    lhs, rhs = formula.split("~", 1)
    fixed, random = [], []
    for part in _split_top_level(rhs):
        match = _RANDOM_TERM.match(part)
        if match:
            random.extend(_expand_random(match["expr"], match["bars"], match["group"]))
        elif "|" in part:
            raise RatingsError(f"cannot read the random-effects term {part!r} (expected e.g. (1 | participant))")
        else:
            fixed.append(part)
    if not random:
        raise RatingsError(f"formula has no random-effects term like (1 | participant): {formula!r}")
    return f"{lhs.strip()} ~ {' + '.join(fixed) or '1'}", random


SINGULAR_TOLERANCE = 1e-4  # lme4's check.conv.singular tol
GRADIENT_TOLERANCE = 2e-3  # lme4's check.conv.grad tol (deviance units, scaled by the Hessian)
HESSIAN_TOLERANCE = 1e-6  # lme4's check.conv.hess tol


def _scaled_gradient(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """solve(chol(H), g) as lme4 scales the gradient (raises LinAlgError when H is not positive definite)."""
    upper = np.linalg.cholesky(H).T
    return np.linalg.solve(upper, g)


def _ci(estimate: np.ndarray, se: np.ndarray, df: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """t intervals; df = inf gives the normal interval."""
    crit = stats.t.ppf(1 - alpha / 2, df)
    return estimate - crit * se, estimate + crit * se


def _p_value(statistic: np.ndarray, df: np.ndarray) -> np.ndarray:
    return 2 * stats.t.sf(np.abs(statistic), df)


def _central_hessian(f, x: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference gradient and Hessian (2k² + 1 evaluations; the gradient comes free)."""
    k = len(x)
    H = np.empty((k, k))
    g = np.empty(k)
    f0 = f(x)
    for i in range(k):
        e_i = np.zeros(k)
        e_i[i] = steps[i]
        f_plus, f_minus = f(x + e_i), f(x - e_i)
        g[i] = (f_plus - f_minus) / (2 * steps[i])
        H[i, i] = (f_plus - 2 * f0 + f_minus) / steps[i] ** 2
        for j in range(i):
            e_j = np.zeros(k)
            e_j[j] = steps[j]
            H[i, j] = H[j, i] = (f(x + e_i + e_j) - f(x + e_i - e_j) - f(x - e_i + e_j) + f(x - e_i - e_j)) / (
                4 * steps[i] * steps[j]
            )
    return g, H


def _hessian_messages(H: np.ndarray) -> list[str]:
    """lme4's checkHess: negative eigenvalues, or a very large eigenvalue ratio."""
    ev = np.linalg.eigvalsh(H)
    if np.any(ev < -HESSIAN_TOLERANCE):
        n_neg = int(np.sum(ev < -HESSIAN_TOLERANCE))
        return [f"Model failed to converge with {n_neg} negative eigenvalue{'s' if n_neg > 1 else ''}: {ev.min():.2g}"]
    if ev.max() <= 0 or ev.min() / ev.max() < HESSIAN_TOLERANCE:
        return ["Model is nearly unidentifiable: large eigenvalue ratio - Rescale variables?"]
    return []


@dataclass
class RatingsFit:
    """A fitted crossed LMM with the tables a paper reports."""

    formula: str
    name: str
    dimension: str | None
    result: EngineResult
    term_names: list[str]
    design_info: patsy.DesignInfo
    data: pd.DataFrame = field(repr=False)
    random_terms: list[RandomTerm] = field(default_factory=list)
    alpha: float = 0.05
    x_mean: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    engine: CrossedLMM | None = field(default=None, repr=False)
    df_method: str = "satterthwaite"
    _satterthwaite_parts: tuple | None = field(default=None, repr=False)
    _kr_parts: object | None = field(default=None, repr=False)
    _warnings: list[str] | None = field(default=None, repr=False)

    def _uses_satterthwaite(self) -> bool:
        return self.df_method == "satterthwaite" and self.engine is not None

    def _varpar_derivatives(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Gradient g and Hessian H of the deviance in (θ, sigma), and ∂vcov(β)/∂(θ, sigma), at the optimum (cached).

        lmerTest's Satterthwaite df and lme4's convergence checks both need them; one set of finite
        differences serves both (the θ-Hessian of the profiled deviance is H's Schur complement on sigma).
        """
        if self._satterthwaite_parts is None:
            engine, reml = self.engine, self.result.reml
            with single_threaded_blas():
                x = np.append(self.result.theta, self.result.sigma)
                steps = 1e-3 * np.maximum(np.abs(x), 0.1)
                g, H = _central_hessian(lambda v: engine.varpar_deviance(v, reml), x, steps)
                jac = np.stack(
                    [
                        (
                            engine.fixed_vcov(x + np.eye(len(x))[i] * steps[i])
                            - engine.fixed_vcov(x - np.eye(len(x))[i] * steps[i])
                        )
                        / (2 * steps[i])
                        for i in range(len(x))
                    ]
                )
            self._satterthwaite_parts = (x, g, H, jac)
        return self._satterthwaite_parts

    def degrees_of_freedom(self, L: np.ndarray) -> np.ndarray:
        """Satterthwaite df of each contrast row of L (inf with ``df_method="normal"``), for every model.

        df = 2 (l'Vl)^2 / (g'Ag) with g the gradient of l'Vl in (θ, sigma) and A = 2 H^-1 the asymptotic
        covariance of (θ, sigma) from the Hessian H of the deviance (Kuznetsova et al. 2017, lmerTest).
        """
        L = np.atleast_2d(L)
        if self.df_method == "kenward-roger":
            return self.kenward_roger().degrees_of_freedom(L)
        if not self._uses_satterthwaite():
            return np.full(len(L), np.inf)
        _, _, H, jac = self._varpar_derivatives()
        try:
            A = 2 * np.linalg.inv(H)
        except np.linalg.LinAlgError:
            A = 2 * np.linalg.pinv(H)
        variance = np.einsum("ij,jk,ik->i", L, self.result.vcov, L)
        grad = np.einsum("ij,mjk,ik->im", L, jac, L)
        denom = np.einsum("im,mn,in->i", grad, A, grad)
        with np.errstate(divide="ignore", invalid="ignore"):
            df = 2 * variance**2 / denom
        return np.where(np.isfinite(df) & (df > 0), df, np.inf)

    @property
    def singular(self) -> bool:
        """lme4's isSingular: a variance (a diagonal element of a relative covariance factor) at ~0."""
        lower = np.array(
            [b[0] if b[0] is not None else -np.inf for b in (self.engine.theta_bounds() if self.engine else [])]
        )
        theta = self.result.theta
        return bool(len(lower) and np.any(np.isfinite(lower) & (theta[: len(lower)] < SINGULAR_TOLERANCE)))

    @property
    def warnings(self) -> list[str]:
        """lme4's fit messages: boundary (singular) fit, or else gradient and Hessian convergence checks."""
        if self._warnings is None:
            self._warnings = self._check_fit()
        return self._warnings

    def _check_fit(self) -> list[str]:
        out = []
        if not self.result.converged:
            out.append(f"optimizer did not report convergence ({self.result.optimizer_message})")
        if self.singular:
            zero = [
                row.group
                for row in self.variance_components().itertuples()
                if row.group != "Residual" and row.variance < 1e-10 * max(self.result.sigma**2, 1e-300)
            ]
            detail = f" ({', '.join(zero)} variance estimated as 0)" if zero else ""
            return [*out, f"boundary (singular) fit: see help('isSingular'){detail}"]
        if self.engine is None:
            return out
        # lme4 checks the profiled deviance in θ: at the optimum sigma-hat, its gradient is ∂D/∂θ and its Hessian
        # the Schur complement of the (θ, sigma) Hessian on sigma.
        _, g, H, _ = self._varpar_derivatives()
        grad, h_tt = g[:-1], H[:-1, :-1] - np.outer(H[:-1, -1], H[-1, :-1]) / H[-1, -1]
        try:
            scaled = _scaled_gradient(h_tt, grad)
            worst = np.minimum(np.abs(scaled), np.abs(grad))
            if worst.max() > GRADIENT_TOLERANCE:
                out.append(
                    f"Model failed to converge with max|grad| = {worst.max():.3g} "
                    f"(tol = {GRADIENT_TOLERANCE}, component {int(worst.argmax()) + 1})"
                )
        except np.linalg.LinAlgError:
            out.append("unable to evaluate scaled gradient")
        out.extend(_hessian_messages(h_tt))
        return out

    def kenward_roger(self):
        """pbkrtest's adjusted covariance and df (``df_method="kenward-roger"``; REML fits; cached)."""
        if self._kr_parts is None:
            from analysis.kenward_roger import kenward_roger

            with single_threaded_blas():
                self._kr_parts = kenward_roger(self.engine, self.result)
        return self._kr_parts

    def _inference(self, L: np.ndarray) -> dict[str, np.ndarray]:
        est = L @ self.result.beta
        vcov = self.kenward_roger().vcov_adjusted if self.df_method == "kenward-roger" else self.result.vcov
        se = np.sqrt(np.einsum("ij,jk,ik->i", L, vcov, L))
        df = self.degrees_of_freedom(L)
        low, high = _ci(est, se, df, self.alpha)
        return {
            "estimate": est,
            "std_error": se,
            "df": df,
            "ci_low": low,
            "ci_high": high,
            "statistic": est / se,
            "p_value": _p_value(est / se, df),
        }

    # -- coefficients --------------------------------------------------------------------------
    @property
    def params(self) -> pd.Series:
        return pd.Series(self.result.beta, index=self.term_names)

    @property
    def bse(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.result.vcov)), index=self.term_names)

    @property
    def cov_params(self) -> pd.DataFrame:
        return pd.DataFrame(self.result.vcov, index=self.term_names, columns=self.term_names)

    @property
    def loglik(self) -> float:
        return self.result.loglik

    @property
    def nobs(self) -> int:
        return self.result.n_obs

    def to_frame(self) -> pd.DataFrame:
        """Fixed effects: term, estimate, std_error, ci_low, ci_high, p_value, df, statistic (t; z when df = inf)."""
        inf = self._inference(np.eye(len(self.term_names)))
        return pd.DataFrame(
            {
                "term": self.term_names,
                **{k: inf[k] for k in ("estimate", "std_error", "ci_low", "ci_high", "p_value", "df", "statistic")},
            }
        )

    def variance_components(self) -> pd.DataFrame:
        """One row per variance (lme4's VarCorr): group, name, variance, sd; slopes named ``group name``."""
        rows = []
        for design, cov in zip(self.result.terms, self.result.covariances, strict=True):
            for i, col in enumerate(design.column_names):
                group = design.term.group if col == "Intercept" else f"{design.term.group} {col}"
                rows.append({"group": group, "name": col, "variance": cov[i, i], "sd": np.sqrt(cov[i, i])})
        rows.append({"group": "Residual", "name": "", "variance": self.result.sigma**2, "sd": self.result.sigma})
        return pd.DataFrame(rows)

    def random_correlations(self) -> pd.DataFrame:
        """Correlations among a term's random effects (slopes models)."""
        rows = []
        for design, cov in zip(self.result.terms, self.result.covariances, strict=True):
            sd = np.sqrt(np.diag(cov))
            for i in range(design.q):
                for j in range(i):
                    corr = cov[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan
                    rows.append(
                        {
                            "group": design.term.group,
                            "name_1": design.column_names[j],
                            "name_2": design.column_names[i],
                            "correlation": corr,
                        }
                    )
        return pd.DataFrame(rows, columns=["group", "name_1", "name_2", "correlation"])

    def total_variance(self) -> float:
        """Variance of a single rating around the fixed part (random intercepts + residual)."""
        vc = self.variance_components()
        intercepts = vc[vc["name"].isin(["Intercept", ""])]
        return float(intercepts["variance"].sum())

    def standardized_effects(self) -> pd.DataFrame:
        """Effects in SDs of a single rating (Westfall, Kenny & Judd 2014's d for crossed designs)."""
        frame = self.to_frame()
        frame = frame[frame["term"] != "Intercept"].copy()
        scale = np.sqrt(self.total_variance())
        for source, target in (("estimate", "d"), ("ci_low", "d_ci_low"), ("ci_high", "d_ci_high")):
            frame[target] = frame[source] / scale
        return frame[["term", "d", "d_ci_low", "d_ci_high"]]

    # -- marginal means and contrasts ------------------------------------------------------------
    def _contrast_rows(self, factor: str) -> tuple[list[str], np.ndarray]:
        """Rows L with Lβ = the mean prediction when every rating is set to one level (observed weights)."""
        if factor not in self.data.columns:
            raise RatingsError(f"model has no variable {factor!r}")
        levels = (
            list(self.data[factor].cat.categories)
            if isinstance(self.data[factor].dtype, pd.CategoricalDtype)
            else sorted(self.data[factor].unique())
        )
        categorical = isinstance(self.data[factor].dtype, pd.CategoricalDtype)
        slices = [sl for name, sl in self.design_info.term_name_slices.items() if factor in name]
        if len(slices) == 1 and not any(factor in n and ":" in n for n in self.design_info.term_names):
            # Main effect only: the other columns sit at their means, the factor's columns take each level's coding.
            grid = self.data.iloc[[0] * len(levels)].copy()
            grid[factor] = pd.Categorical(levels, categories=levels) if categorical else levels
            (X_levels,) = patsy.build_design_matrices([self.design_info], grid)
            L = np.tile(self.x_mean, (len(levels), 1))
            L[:, slices[0]] = np.asarray(X_levels)[:, slices[0]]
            return [str(v) for v in levels], L
        rows = []
        for level in levels:
            counterfactual = self.data.copy()
            counterfactual[factor] = (
                pd.Categorical([level] * len(counterfactual), categories=levels) if categorical else level
            )
            (X,) = patsy.build_design_matrices([self.design_info], counterfactual)
            rows.append(np.asarray(X).mean(axis=0))
        return [str(v) for v in levels], np.vstack(rows)

    def emmeans(self, factor: str = "condition") -> pd.DataFrame:
        """Estimated marginal means per level with Wald CIs."""
        levels, L = self._contrast_rows(factor)
        inf = self._inference(L)
        return pd.DataFrame(
            {
                factor: levels,
                "emmean": inf["estimate"],
                "std_error": inf["std_error"],
                "df": inf["df"],
                "ci_low": inf["ci_low"],
                "ci_high": inf["ci_high"],
            }
        )

    def contrasts(self, factor: str = "condition", reference: str = REFERENCE_CONDITION) -> pd.DataFrame:
        """Every level minus the reference, Wald z tests with Holm's step-down adjustment."""
        levels, L = self._contrast_rows(factor)
        if reference not in levels:
            raise RatingsError(f"reference level {reference!r} not among {levels}")
        ref = L[levels.index(reference)]
        others = [lv for lv in levels if lv != reference]
        D = np.vstack([L[levels.index(lv)] - ref for lv in others])
        inf = self._inference(D)
        p = inf["p_value"]
        holm = multipletests(p, method="holm")[1] if len(p) else p
        return pd.DataFrame(
            {
                "contrast": [f"{lv} - {reference}" for lv in others],
                "estimate": inf["estimate"],
                "std_error": inf["std_error"],
                "df": inf["df"],
                "ci_low": inf["ci_low"],
                "ci_high": inf["ci_high"],
                "p_value": p,
                "p_holm": holm,
                "d": inf["estimate"] / np.sqrt(self.total_variance()),
            }
        )

    def icc(self) -> dict[str, float]:
        """Shares of rating variance due to participants and to stimuli (random intercepts)."""
        vc = self.variance_components().set_index("group")["variance"]
        total = self.total_variance()
        return {f"icc_{g}": float(vc[g] / total) for g in vc.index if g != "Residual" and " " not in g}

    def predict_fixed(self, newdata: pd.DataFrame) -> pd.DataFrame:
        """Fixed-part predictions with Wald CIs for new covariate values (dose-response curves)."""
        (X,) = patsy.build_design_matrices([self.design_info], newdata)
        inf = self._inference(np.asarray(X))
        out = newdata.copy()
        for key in ("estimate", "std_error", "df", "ci_low", "ci_high"):
            out[key] = inf[key]
        return out

    # -- text ------------------------------------------------------------------------------------
    def summary(self) -> str:
        """A plain-text table in lme4's layout."""
        r = self.result
        groups = ", ".join(f"{d.term.group}, {d.n_levels}" for d in r.terms)
        crit = "REML criterion at convergence" if r.reml else "-2 log-likelihood"
        lines = [
            f"Linear mixed model fit by {'REML' if r.reml else 'maximum likelihood'} (analysis fast engine)",
            f"Formula: {self.formula}" + (f"   [dimension: {self.dimension}]" if self.dimension else ""),
            f"{crit}: {r.deviance:.4f}   logLik: {r.loglik:.4f}",
            "",
            "Random effects:",
            self.variance_components().to_string(index=False, float_format=lambda v: f"{v:.5f}"),
            f"Number of obs: {r.n_obs}, groups: {groups}",
            "",
            {
                "satterthwaite": "Fixed effects (t tests, Satterthwaite df):",
                "kenward-roger": "Fixed effects (t tests, Kenward-Roger adjusted SEs and df):",
            }.get(self.df_method if self.engine is not None else "", "Fixed effects (Wald z, normal reference):"),
            self.to_frame().to_string(
                index=False,
                float_format=lambda v: f"{v:.5f}",
                formatters={"p_value": lambda v: f"{v:.3g}", "df": lambda v: f"{v:.1f}"},
            ),
        ]
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _group_columns(group: str) -> list[str]:
    """``a:b`` (a nested or interaction grouping) is the combination of columns a and b."""
    return [g.strip() for g in group.split(":")]


def _grouping(data: pd.DataFrame, group: str) -> pd.Series:
    columns = _group_columns(group)
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise RatingsError(f"random-effects grouping column {missing[0]!r} not in the data")
    if len(columns) == 1:
        return data[columns[0]]
    return data[columns].astype(str).agg(":".join, axis=1)


def _group_design(data: pd.DataFrame, term: RandomTerm) -> GroupDesign:
    codes, levels = pd.factorize(_grouping(data, term.group), sort=True)
    if term.expr.strip() == "1":
        columns, names = np.ones((len(data), 1)), ["Intercept"]
    else:
        Z = patsy.dmatrix(term.expr, data, return_type="dataframe", NA_action="raise")
        columns, names = Z.to_numpy(dtype=float), list(Z.columns)
    return GroupDesign(
        term=term, codes=codes.astype(np.intp), levels=np.asarray(levels), columns=columns, column_names=names
    )


def prepare_model_data(ratings: pd.DataFrame, *, dimension: str | None, reference: str) -> pd.DataFrame:
    """Rows of one dimension with ``condition`` as a categorical whose first level is the reference."""
    data = ratings
    if dimension is not None:
        data = data[data["dimension"] == dimension]
        if data.empty:
            raise RatingsError(f"no ratings for dimension {dimension!r}")
    elif "dimension" in data.columns and data["dimension"].nunique() > 1:
        raise RatingsError("ratings span several dimensions; pass dimension=…")
    data = data.reset_index(drop=True).copy()
    if "condition" in data.columns:
        data["condition"] = pd.Categorical(
            data["condition"].astype(str), categories=conditions_in_order(data, reference)
        )
    return data


def fit_ratings(
    ratings: pd.DataFrame,
    formula: str = DEFAULT_FORMULA,
    *,
    dimension: str | None = None,
    reml: bool = True,
    reference: str = REFERENCE_CONDITION,
    name: str = "main",
    alpha: float = 0.05,
    theta0: np.ndarray | None = None,
    df_method: str = "satterthwaite",
    initial_step: np.ndarray | float | None = None,
) -> RatingsFit:
    """Fit ``formula`` (lme4 syntax) to one dimension's ratings with the fast crossed-LMM engine.

    ``df_method``: "satterthwaite" (default, every model), "kenward-roger" (pbkrtest's adjusted covariance and
    df; REML, up to a few thousand random-effect columns) or "normal" (Wald z). Models lme4 would refuse (a
    grouping factor with one level, as many levels or random effects as observations) raise ModelFitError.
    ``theta0``, ``initial_step``: a warm start (see ``CrossedLMM.fit``).
    """
    if df_method not in {"satterthwaite", "kenward-roger", "normal"}:
        raise RatingsError(f"df_method must be 'satterthwaite', 'kenward-roger' or 'normal', not {df_method!r}")
    if df_method == "kenward-roger" and not reml:
        raise RatingsError("Kenward-Roger needs a REML fit")
    fixed_formula, random_terms = parse_formula(formula)
    data = prepare_model_data(ratings, dimension=dimension, reference=reference)
    group_columns = sorted({c for t in random_terms for c in _group_columns(t.group)})
    absent = [c for c in group_columns if c not in data.columns]
    if absent:
        raise RatingsError(f"random-effects grouping column {absent[0]!r} not in the data")
    data = data.dropna(subset=group_columns)
    try:
        y, X = patsy.dmatrices(fixed_formula, data, return_type="dataframe")
    except patsy.PatsyError as exc:
        raise RatingsError(f"cannot build the model {fixed_formula!r}: {str(exc).splitlines()[0]}") from exc
    if not np.isfinite(y.to_numpy(dtype=float)).all():
        n_bad = int((~np.isfinite(y.to_numpy(dtype=float))).sum())
        raise RatingsError(f"the response has {n_bad} infinite value(s); drop them first (the report's exclusions do)")
    data = data.loc[X.index].reset_index(drop=True)
    groups = [_group_design(data, t) for t in random_terms]
    with single_threaded_blas():  # small dense factorisations: BLAS threads only add contention
        engine = CrossedLMM(y.to_numpy(dtype=float).ravel(), X.to_numpy(dtype=float), groups)
        result = engine.fit(reml=reml, theta0=theta0, initial_step=initial_step)
    return RatingsFit(
        formula=formula,
        name=name,
        dimension=dimension,
        result=result,
        term_names=list(X.columns),
        design_info=X.design_info,
        data=data,
        random_terms=random_terms,
        alpha=alpha,
        x_mean=X.to_numpy(dtype=float).mean(axis=0),
        engine=engine,
        df_method=df_method,
    )


@dataclass(frozen=True)
class LikelihoodRatioTest:
    """ML likelihood-ratio test of nested fixed effects (REML likelihoods are not comparable across X)."""

    model: str
    null: str
    loglik_model: float
    loglik_null: float
    df: int
    statistic: float
    p_value: float

    def to_dict(self) -> dict[str, float | str | int]:
        return self.__dict__.copy()


def likelihood_ratio_test(
    ratings: pd.DataFrame,
    formula: str = DEFAULT_FORMULA,
    null_formula: str | None = None,
    *,
    dimension: str | None = None,
    reference: str = REFERENCE_CONDITION,
) -> LikelihoodRatioTest:
    """Compare ``formula`` with ``null_formula`` (default: intercept only, same random terms) by ML."""
    if null_formula is None:
        _, random_terms = parse_formula(formula)
        lhs = formula.split("~", 1)[0].strip()
        null_formula = f"{lhs} ~ 1 + " + " + ".join(t.label for t in random_terms)
    full = fit_ratings(ratings, formula, dimension=dimension, reml=False, reference=reference)
    null = fit_ratings(ratings, null_formula, dimension=dimension, reml=False, reference=reference)
    if full.nobs != null.nobs:
        raise ModelFitError("nested models were fitted to different rows (missing covariates?)")
    df = full.result.n_params - null.result.n_params
    stat = max(0.0, 2 * (full.loglik - null.loglik))
    return LikelihoodRatioTest(
        model=formula,
        null=null_formula,
        loglik_model=full.loglik,
        loglik_null=null.loglik,
        df=df,
        statistic=stat,
        p_value=float(stats.chi2.sf(stat, df)),
    )

"""A fast linear mixed-model engine for crossed random effects (lme4's profiled-deviance method).

The deviance is profiled over the relative covariance factors θ (Bates et al. 2015, "Fitting linear
mixed-effects models using lme4"). For each θ the penalized least-squares system is solved with a
Cholesky factorisation of ``[ΛᵀZᵀZΛ + I, ΛᵀZᵀX, ΛᵀZᵀy; …]``. The grouping factor with the most
random-effect columns (participants, usually) is block-diagonal in ``ZᵀZ``; it is eliminated analytically
block by block and only the Schur complement on the other factors plus ``X`` and ``y`` is factorised
densely. All cross-products are computed once, so one deviance evaluation costs
O(n_levels · q² + m³) with m = columns of the smaller factors + fixed effects, independent of n.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla
import scipy.optimize as sopt
import scipy.sparse as sp

_MAX_COUNT_CLASSES = 12
_DENSE_OVERHEAD = 30.0  # measured: dense wins up to m² ≈ 30·nnz² per row (300 participants, 200 stimuli, q = 5)
_DENSE_MAX_ELEMENTS = 4_000_000  # 32 MB of dense W at most


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """The dense blocks here are small: BLAS threads only add contention (10-30x slower on a busy 2-core box)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1):
        yield


def _bobyqa(
    objective, start: np.ndarray, lower: np.ndarray, step: np.ndarray | None = None
) -> tuple[np.ndarray | None, float, bool, str]:
    """nlopt's BOBYQA with lme4's tolerances tightened a little; (None, inf, …) when nlopt is unavailable."""
    try:
        import nlopt
    except ImportError:
        return None, np.inf, False, "nlopt not installed"
    opt = nlopt.opt(nlopt.LN_BOBYQA, len(start))
    opt.set_min_objective(lambda theta, _grad: objective(theta))
    opt.set_lower_bounds(lower)
    opt.set_ftol_rel(1e-12)
    opt.set_ftol_abs(1e-10)
    opt.set_xtol_rel(1e-8)
    opt.set_maxeval(100_000)
    opt.set_initial_step(np.full(len(start), 0.75) if step is None else np.broadcast_to(step, start.shape))
    try:
        theta = opt.optimize(np.maximum(start, lower))
    except (RuntimeError, ValueError) as exc:
        return None, np.inf, False, f"BOBYQA failed: {exc}"
    code = opt.last_optimize_result()
    return (
        np.asarray(theta),
        float(opt.last_optimum_value()),
        code > 0 and code != nlopt.MAXEVAL_REACHED,
        f"BOBYQA result code {code}",
    )


class ModelFitError(ValueError):
    """The model cannot be fitted as specified (rank-deficient fixed effects, empty groups, …)."""


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | group)``, e.g. ``(1 | stimulus)`` or ``(1 + condition | participant)``."""

    group: str
    expr: str = "1"

    @property
    def label(self) -> str:
        return f"({self.expr} | {self.group})"


@dataclass
class GroupDesign:
    """The model matrix of one random-effects term: level codes plus the raw per-observation columns."""

    term: RandomTerm
    codes: np.ndarray  # (n,) int level index
    levels: np.ndarray  # (n_levels,) labels
    columns: np.ndarray  # (n, q) raw Z columns
    column_names: list[str]

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def q(self) -> int:
        return self.columns.shape[1]

    def sparse(self) -> sp.csr_matrix:
        """Z for this term with columns ordered level-major (level j, column a) → j*q + a."""
        n, q = self.columns.shape
        rows = np.repeat(np.arange(n), q)
        cols = (self.codes[:, None] * q + np.arange(q)[None, :]).ravel()
        return sp.csr_matrix((self.columns.ravel(), (rows, cols)), shape=(n, self.n_levels * q))

    def block_crossproducts(self) -> np.ndarray:
        """Per-level ZⱼᵀZⱼ blocks, shape (n_levels, q, q)."""
        q = self.q
        out = np.empty((self.n_levels, q, q))
        for a in range(q):
            for b in range(a, q):
                s = np.bincount(self.codes, weights=self.columns[:, a] * self.columns[:, b], minlength=self.n_levels)
                out[:, a, b] = s
                out[:, b, a] = s
        return out


def _tril_size(q: int) -> int:
    return q * (q + 1) // 2


def _lambda_from_theta(theta: np.ndarray, q: int) -> np.ndarray:
    """Lower-triangular relative covariance factor, θ filled column by column as lme4 does."""
    lam = np.zeros((q, q))
    rows, cols = np.tril_indices(q)
    order = np.lexsort((rows, cols))  # column-major
    lam[rows[order], cols[order]] = theta
    return lam


def _theta_lower_bounds(q: int) -> list[float | None]:
    rows, cols = np.tril_indices(q)
    order = np.lexsort((rows, cols))
    return [0.0 if r == c else None for r, c in zip(rows[order], cols[order], strict=True)]


@dataclass
class EngineResult:
    """Everything a fitted crossed LMM reports; variances are on the response scale."""

    theta: np.ndarray
    beta: np.ndarray
    vcov: np.ndarray
    sigma: float
    deviance: float
    reml: bool
    n_obs: int
    n_fixed: int
    covariances: list[np.ndarray]  # per term, qxq (σ² ΛΛᵀ)
    terms: list[GroupDesign]
    converged: bool
    n_evaluations: int
    optimizer_message: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def loglik(self) -> float:
        """REML criterion log-likelihood for REML fits, ordinary log-likelihood for ML fits (lme4's logLik)."""
        return -0.5 * self.deviance

    @property
    def n_params(self) -> int:
        return self.n_fixed + len(self.theta) + 1


def check_identifiable(groups: list[GroupDesign], n_obs: int) -> None:
    """Refuse what lme4 refuses: a grouping factor with one level, or no fewer levels/effects than observations."""
    for g in groups:
        if g.n_levels < 2:
            raise ModelFitError(
                f"grouping factor {g.term.group!r} has a single level, so its variance is not identifiable "
                f"(lme4: 'grouping factors must have > 1 sampled level'); drop {g.term.label} or collect more data"
            )
        if g.n_levels >= n_obs:
            raise ModelFitError(
                f"number of levels of each grouping factor must be < number of observations (problems: "
                f"{g.term.group}: {g.n_levels} levels, {n_obs} observations)"
            )
        if g.q > 1 and n_obs <= g.n_levels * g.q:
            raise ModelFitError(
                f"number of observations (={n_obs}) <= number of random effects (={g.n_levels * g.q}) for term "
                f"{g.term.label}; the random-effects parameters and the residual variance are probably unidentifiable"
            )


class CrossedLMM:
    """``y = Xβ + Zb + ε`` with any number of (crossed or nested) random-effects terms.

    Build it once per design; :meth:`with_response` swaps in a new ``y`` cheaply (simulation studies).
    """

    def __init__(self, y: np.ndarray, X: np.ndarray, groups: list[GroupDesign]):
        if not groups:
            raise ModelFitError("a mixed model needs at least one random-effects term")
        check_identifiable(groups, np.shape(X)[0])
        self.X = np.asarray(X, dtype=float)
        self.n, self.p = self.X.shape
        self.groups = groups
        sizes = [g.n_levels * g.q for g in groups]
        self.elim = int(np.argmax(sizes))
        self.rest = [i for i in range(len(groups)) if i != self.elim]
        g1 = groups[self.elim]
        self.q1, self.n1 = g1.q, g1.n_levels
        self.A1 = g1.block_crossproducts()
        self.Z1 = g1.sparse().tocsc()
        z_rest = [groups[i].sparse() for i in self.rest]
        self.q_rest = int(sum(z.shape[1] for z in z_rest))
        self.F0 = sp.hstack([*z_rest, sp.csr_matrix(self.X)], format="csc")
        self.F0tF0 = (self.F0.T @ self.F0).toarray()
        # Rank from XᵀX (already in F0ᵀF0): an SVD of the n x p X cost seconds on large studies with many columns.
        if np.linalg.matrix_rank(self.F0tF0[self.q_rest :, self.q_rest :], hermitian=True) < self.p:
            raise ModelFitError("the fixed-effects design is rank deficient (a level or covariate is redundant)")
        self.W0 = (self.Z1.T @ self.F0).tocsr()
        self.m = self.q_rest + self.p + 1
        # With random intercepts only, a level's weight depends on θ only through its count nⱼ; balanced
        # designs have few distinct counts, so WᵀDW = Σ_c w(c)·W_cᵀW_c with the W_cᵀW_c precomputed.
        self._count_values: np.ndarray | None = None
        if self.q1 == 1:
            values, inverse = np.unique(self.A1[:, 0, 0], return_inverse=True)
            if len(values) <= _MAX_COUNT_CLASSES:
                self._count_values, self._count_index = values, inverse
        self.theta_sizes = [_tril_size(g.q) for g in groups]
        self._rest_scalar = all(groups[i].q == 1 for i in self.rest)
        self.with_response(y)

    def with_response(self, y: np.ndarray) -> CrossedLMM:
        """Replace the response, recomputing only the cross-products that involve it."""
        y = np.asarray(y, dtype=float)
        if y.shape != (self.n,):
            raise ModelFitError("response length does not match the design")
        self.y = y
        fty = self.F0.T @ y
        yty = float(y @ y)
        ftf = np.empty((self.m, self.m))
        ftf[:-1, :-1] = self.F0tF0
        ftf[:-1, -1] = fty
        ftf[-1, :-1] = fty
        ftf[-1, -1] = yty
        self.FtF = ftf
        self.W = sp.hstack([self.W0, sp.csr_matrix((self.Z1.T @ y)[:, None])], format="csr")
        # Random slopes: dense per-level blocks (one GEMM, n1·q1·m² flops) beat scipy.sparse (≈ n1·q1·nnz² flops
        # but much overhead per call) unless the reduced system is wide compared with each level's row.
        self._W_dense = None
        if self.q1 > 1:
            rows_of_level = sp.csr_matrix(
                (np.ones(self.n1 * self.q1), (np.repeat(np.arange(self.n1), self.q1), np.arange(self.n1 * self.q1)))
            )
            nnz_row = (rows_of_level @ abs(self.W)).nnz / self.n1  # columns one level's block row touches
            if self.m**2 <= _DENSE_OVERHEAD * nnz_row**2 and self.n1 * self.q1 * self.m <= _DENSE_MAX_ELEMENTS:
                self._W_dense = self.W.toarray().reshape(self.n1, self.q1, self.m)
        if self._count_values is not None:
            self._count_grams = []
            for c in range(len(self._count_values)):
                rows = self.W[self._count_index == c]
                self._count_grams.append((rows.T @ rows).toarray())
        return self

    # -- θ bookkeeping -------------------------------------------------------------------------
    def split_theta(self, theta: np.ndarray) -> list[np.ndarray]:
        return np.split(np.asarray(theta, dtype=float), np.cumsum(self.theta_sizes)[:-1])

    def theta_start(self) -> np.ndarray:
        parts = []
        for g in self.groups:
            rows, cols = np.tril_indices(g.q)
            order = np.lexsort((rows, cols))
            parts.append((rows[order] == cols[order]).astype(float))
        return np.concatenate(parts)

    def theta_bounds(self) -> list[tuple[float | None, None]]:
        return [(lb, None) for g in self.groups for lb in _theta_lower_bounds(g.q)]

    # -- the profiled deviance -----------------------------------------------------------------
    def _factor(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """log|L_Z|² of the eliminated block and the dense Cholesky factor of the reduced system."""
        thetas = self.split_theta(theta)
        lam1 = _lambda_from_theta(thetas[self.elim], self.q1)
        q1 = self.q1
        if q1 == 1:
            lam = lam1[0, 0]
            g = lam * lam * self.A1[:, 0, 0] + 1.0
            logdet1 = float(np.sum(np.log(g)))
            if self._count_values is not None:
                weights = lam * lam / (lam * lam * self._count_values + 1.0)
                reduction = sum(w * gram for w, gram in zip(weights, self._count_grams, strict=True))
            else:
                T = sp.diags(lam / np.sqrt(g)) @ self.W
                reduction = (T.T @ T).toarray()
        else:
            G = np.einsum("ba,jbc,cd->jad", lam1, self.A1, lam1) + np.eye(q1)
            Lg = np.linalg.cholesky(G)
            logdet1 = 2.0 * float(np.sum(np.log(np.diagonal(Lg, axis1=1, axis2=2))))
            blocks = np.linalg.solve(Lg, np.broadcast_to(lam1.T, Lg.shape))
            if self._W_dense is not None:
                T = np.einsum("jab,jbm->jam", blocks, self._W_dense).reshape(self.n1 * q1, self.m)
                reduction = T.T @ T
            else:
                B = sp.bsr_matrix((blocks, np.arange(self.n1), np.arange(self.n1 + 1)), shape=(self.n1 * q1,) * 2)
                T = (B @ self.W).tocsr()
                reduction = (T.T @ T).toarray()
        S = self.FtF - reduction
        if self._rest_scalar:
            scale = np.ones(self.m)
            offset = 0
            for i in self.rest:
                gi = self.groups[i]
                scale[offset : offset + gi.n_levels] = thetas[i][0]
                offset += gi.n_levels
            S *= np.outer(scale, scale)
        else:
            lam_full = self._lambda_rest(thetas)
            S = np.asarray(lam_full.T @ np.asarray(lam_full.T @ S).T)
        S[np.arange(self.q_rest), np.arange(self.q_rest)] += 1.0
        try:
            L = sla.cholesky(S, lower=True, check_finite=False)
        except np.linalg.LinAlgError as exc:
            raise ModelFitError("the mixed-model equations are not positive definite") from exc
        return logdet1, L

    def _lambda_rest(self, thetas: list[np.ndarray]) -> sp.csr_matrix:
        blocks = [
            sp.kron(sp.identity(self.groups[i].n_levels), _lambda_from_theta(thetas[i], self.groups[i].q))
            for i in self.rest
        ]
        return sp.block_diag([*blocks, sp.identity(self.p + 1)], format="csr")

    def deviance(self, theta: np.ndarray, reml: bool = True) -> float:
        """-2 x (restricted) log-likelihood profiled over β and sigma, as lme4 defines it."""
        try:
            logdet1, L = self._factor(theta)
        except ModelFitError:
            return np.inf
        d = np.diag(L)
        ld_l2 = logdet1 + 2.0 * float(np.sum(np.log(d[: self.q_rest])))
        pwrss = float(d[-1] ** 2)
        if reml:
            ld_rx2 = 2.0 * float(np.sum(np.log(d[self.q_rest : self.q_rest + self.p])))
            dof = self.n - self.p
            return ld_l2 + ld_rx2 + dof * (1.0 + np.log(2.0 * np.pi * pwrss / dof))
        return ld_l2 + self.n * (1.0 + np.log(2.0 * np.pi * pwrss / self.n))

    def varpar_deviance(self, varpar: np.ndarray, reml: bool = True) -> float:
        """The deviance as a function of (θ, sigma), not profiled over sigma: what Satterthwaite's df need."""
        theta, sigma2 = varpar[:-1], varpar[-1] ** 2
        logdet1, L = self._factor(theta)
        d = np.diag(L)
        ld_l2 = logdet1 + 2.0 * float(np.sum(np.log(d[: self.q_rest])))
        pwrss = float(d[-1] ** 2)
        if reml:
            ld_rx2 = 2.0 * float(np.sum(np.log(d[self.q_rest : self.q_rest + self.p])))
            return ld_l2 + ld_rx2 + pwrss / sigma2 + (self.n - self.p) * np.log(2.0 * np.pi * sigma2)
        return ld_l2 + pwrss / sigma2 + self.n * np.log(2.0 * np.pi * sigma2)

    def fixed_vcov(self, varpar: np.ndarray) -> np.ndarray:
        """Covariance of the fixed effects at given (θ, sigma)."""
        _, L = self._factor(varpar[:-1])
        qr, p = self.q_rest, self.p
        lxx_inv = sla.solve_triangular(L[qr : qr + p, qr : qr + p], np.eye(p), lower=True)
        return varpar[-1] ** 2 * (lxx_inv.T @ lxx_inv)

    def fit(
        self, reml: bool = True, theta0: np.ndarray | None = None, initial_step: np.ndarray | float | None = None
    ) -> EngineResult:
        """Minimise the profiled deviance over θ.

        BOBYQA (derivative-free, bounded; lme4's default optimizer) when nlopt is installed, then — with more
        than two parameters, where BOBYQA can stop early on flat ridges — an L-BFGS-B polish from its optimum.
        ``initial_step``: BOBYQA's first trust-region radius (default 0.75); a small one after a warm start from a
        related model's θ (a variant, the ML refit of a REML fit) needs about half the deviance evaluations.
        """
        start = self.theta_start() if theta0 is None else np.asarray(theta0, dtype=float)
        counter = {"n": 0}

        def objective(theta: np.ndarray) -> float:
            counter["n"] += 1
            return self.deviance(theta, reml)

        lower = np.array([b[0] if b[0] is not None else -np.inf for b in self.theta_bounds()])
        step = None if initial_step is None else np.asarray(initial_step, dtype=float)
        theta, value, converged, message = _bobyqa(objective, start, lower, step)
        if theta is None or len(start) > 2:
            opt = sopt.minimize(
                objective,
                start if theta is None else theta,
                method="L-BFGS-B",
                jac="3-point",
                bounds=self.theta_bounds(),
                options={"ftol": 1e-11, "gtol": 1e-5, "maxiter": 500},
            )
            if theta is None or opt.fun < value:
                theta, value = np.asarray(opt.x), float(opt.fun)
                converged, message = bool(opt.success), str(opt.message)
        # Values within rounding of the boundary are the boundary (singular fit), as lme4 reports them.
        theta = np.where(np.isfinite(lower) & (theta < 1e-6), 0.0, theta)
        return self.result_at(theta, reml, converged=converged, n_evaluations=counter["n"], message=message)

    def result_at(
        self, theta: np.ndarray, reml: bool = True, *, converged: bool = True, n_evaluations: int = 0, message: str = ""
    ) -> EngineResult:
        """Fixed effects, their covariance and sigma at a given θ."""
        _, L = self._factor(theta)
        qr, p = self.q_rest, self.p
        lxx = L[qr : qr + p, qr : qr + p]
        lyx = L[-1, qr : qr + p]
        beta = sla.solve_triangular(lxx.T, lyx, lower=False)
        pwrss = float(L[-1, -1] ** 2)
        sigma2 = pwrss / (self.n - p if reml else self.n)
        lxx_inv = sla.solve_triangular(lxx, np.eye(p), lower=True)
        vcov = sigma2 * (lxx_inv.T @ lxx_inv)
        covs = []
        for g, th in zip(self.groups, self.split_theta(theta), strict=True):
            lam = _lambda_from_theta(th, g.q)
            covs.append(sigma2 * lam @ lam.T)
        return EngineResult(
            theta=np.asarray(theta, dtype=float),
            beta=beta,
            vcov=vcov,
            sigma=float(np.sqrt(sigma2)),
            deviance=self.deviance(theta, reml),
            reml=reml,
            n_obs=self.n,
            n_fixed=p,
            covariances=covs,
            terms=self.groups,
            converged=converged,
            n_evaluations=n_evaluations,
            optimizer_message=message,
        )

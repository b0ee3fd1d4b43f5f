"""Cumulative-link mixed models for ordered ratings (ordinal::clmm's model and Laplace approximation).

``P(Y ≤ j) = F(alpha_j - xβ - Σ_t τ_t u_t[group])`` with flexible thresholds alpha, a logit or probit link F and
independent random intercepts ``u_t ~ N(0, 1)`` per grouping factor (crossed participants and stimuli).
The marginal likelihood is approximated as clmm does (Laplace at the conditional mode of u, with the
observed information of the conditional log-likelihood):

    -log L ≈ -Σ log p_i(û) + ½ ûᵀû + ½ log|D|,   D = I + ΛZᵀΦZΛ.

D has the crossed structure of the linear engine: the largest factor (participants) is diagonal and is
eliminated, leaving a dense Schur complement over the other factors (stimuli), so one Newton step costs
O(n + n_stimuli³) whatever the number of participants. The outer optimisation over (alpha, β, log τ) is
quasi-Newton with analytic gradients: by the envelope theorem only ½ log|D| needs the mode's derivative,
and that needs diag(ZΛD⁻¹ΛZᵀ) and one solve with D per parameter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.optimize as sopt
import scipy.sparse as sp
from scipy import special, stats

from analysis.engine import ModelFitError

LINKS = ("logit", "probit")
_LOG_TAU_BOUNDS = (-12.0, 6.0)


def _link_functions(link: str):
    """F, its density f and the density's derivative df, each vectorised and safe at ±inf."""
    if link == "logit":

        def cdf(x):
            return special.expit(x)

        def pdf(x):
            e = special.expit(x)
            return e * (1.0 - e)

        def dpdf(x):
            e = special.expit(x)
            return e * (1.0 - e) * (1.0 - 2.0 * e)

        def d2pdf(x):
            e = special.expit(x)
            f = e * (1.0 - e)
            return f * (1.0 - 6.0 * f)
    elif link == "probit":
        cdf = special.ndtr

        def pdf(x):
            return np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)

        def dpdf(x):
            with np.errstate(invalid="ignore"):
                out = -x * pdf(x)
            return np.where(np.isfinite(x), out, 0.0)

        def d2pdf(x):
            with np.errstate(invalid="ignore"):
                out = (x * x - 1.0) * pdf(x)
            return np.where(np.isfinite(x), out, 0.0)
    else:
        raise ModelFitError(f"link must be one of {LINKS}, not {link!r}")
    return cdf, pdf, dpdf, d2pdf


@dataclass
class _Mode:
    """The conditional mode of u and everything the Laplace value and its gradient need there."""

    u: np.ndarray
    value: float
    d1: np.ndarray
    C: sp.csr_matrix
    S_chol: np.ndarray
    eta1: np.ndarray
    eta2: np.ndarray
    prob: np.ndarray
    f1: np.ndarray
    f2: np.ndarray
    g1: np.ndarray
    g2: np.ndarray
    phi2: np.ndarray
    inverse: tuple | None = None


class CLMM:
    """A cumulative-link mixed model with random intercepts; :meth:`fit` gives a :class:`CLMMFitResult`."""

    def __init__(
        self,
        y: np.ndarray,
        X: np.ndarray,
        groups: list[tuple[str, np.ndarray]],
        *,
        link: str = "logit",
        n_categories: int | None = None,
    ):
        self.y = np.asarray(y, dtype=np.intp)  # category index 0..K-1
        self.X = np.asarray(X, dtype=float).reshape(len(self.y), -1)
        self.n, self.p = self.X.shape
        self.K = int(n_categories or self.y.max() + 1)
        if self.K < 3:
            raise ModelFitError("an ordinal model needs at least 3 response categories")
        if np.bincount(self.y, minlength=self.K).min() == 0:
            raise ModelFitError("a response category between the lowest and highest is never used")
        if not groups:
            raise ModelFitError("a mixed model needs at least one random intercept")
        if self.p and np.linalg.matrix_rank(self.X.T @ self.X, hermitian=True) < self.p:  # p x p, not n x p
            raise ModelFitError("the fixed-effects design is rank deficient (a level or covariate is redundant)")
        self.link = link
        self.cdf, self.pdf, self.dpdf, self.d2pdf = _link_functions(link)
        self.names = [name for name, _ in groups]
        self.codes = [np.asarray(c, dtype=np.intp) for _, c in groups]
        self.n_levels = [int(c.max()) + 1 for c in self.codes]
        for name, n_lev in zip(self.names, self.n_levels, strict=True):
            if n_lev < 2:
                raise ModelFitError(f"grouping factor {name!r} has a single level; its variance is not identifiable")
            if n_lev >= self.n:
                raise ModelFitError(f"number of levels of {name!r} must be < number of observations")
        self.T = len(groups)
        self.elim = int(np.argmax(self.n_levels))
        self.rest = [t for t in range(self.T) if t != self.elim]
        self.n1 = self.n_levels[self.elim]
        offsets = np.cumsum([0, *[self.n_levels[t] for t in self.rest]])
        self.rest_offsets = offsets[:-1]
        self.m = int(offsets[-1])
        rows = np.concatenate([np.arange(self.n)] * len(self.rest)) if self.rest else np.zeros(0, np.intp)
        cols = (
            np.concatenate([self.codes[t] + off for t, off in zip(self.rest, self.rest_offsets, strict=True)])
            if self.rest
            else np.zeros(0, np.intp)
        )
        self.Zr = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(self.n, self.m))
        self.Z1 = sp.csr_matrix((np.ones(self.n), (np.arange(self.n), self.codes[self.elim])), shape=(self.n, self.n1))
        self.Z1t = self.Z1.T.tocsr()
        self.Zrt = self.Zr.T.tocsr()
        # u is ordered [eliminated factor, rest factors in order]; tau_index maps each u to its term.
        self.term_of_u = np.concatenate(
            [np.full(self.n1, self.elim), *[np.full(self.n_levels[t], t) for t in self.rest]]
        )
        self._u = np.zeros(self.n1 + self.m)
        self.n_evaluations = 0

    # -- parameters ----------------------------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        return self.K - 1 + self.p + self.T

    def _unpack(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = self.K - 1
        return x[:k], x[k : k + self.p], x[k + self.p :]

    def _eta_fixed(self, alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ext = np.concatenate([[-np.inf], alpha, [np.inf]])
        xb = self.X @ beta if self.p else np.zeros(self.n)
        return ext[self.y + 1] - xb, ext[self.y] - xb

    def _b(self, u: np.ndarray, tau: np.ndarray) -> np.ndarray:
        b = tau[self.elim] * u[: self.n1][self.codes[self.elim]]
        for t, off in zip(self.rest, self.rest_offsets, strict=True):
            b = b + tau[t] * u[self.n1 + off : self.n1 + off + self.n_levels[t]][self.codes[t]]
        return b

    def _zt(self, v: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """ΛZᵀv in u's ordering."""
        out = np.empty(self.n1 + self.m)
        out[: self.n1] = tau[self.elim] * (self.Z1t @ v)
        if self.m:
            out[self.n1 :] = self._tau_rest(tau) * (self.Zrt @ v)
        return out

    def _tau_rest(self, tau: np.ndarray) -> np.ndarray:
        return np.concatenate([np.full(self.n_levels[t], tau[t]) for t in self.rest]) if self.rest else np.zeros(0)

    # -- the conditional log-likelihood ----------------------------------------------------------------
    def _probabilities(self, eta1: np.ndarray, eta2: np.ndarray) -> np.ndarray:
        upper = eta2 > 0  # both in the upper tail: difference of survival functions keeps the digits
        p = np.where(upper, self.cdf(-eta2) - self.cdf(-eta1), self.cdf(eta1) - self.cdf(eta2))
        return p

    def _conditional(self, u: np.ndarray, fixed: tuple[np.ndarray, np.ndarray], tau: np.ndarray) -> tuple:
        b = self._b(u, tau)
        eta1, eta2 = fixed[0] - b, fixed[1] - b
        prob = self._probabilities(eta1, eta2)
        return eta1, eta2, prob

    def _nll(self, u, fixed, tau) -> float:
        _, _, prob = self._conditional(u, fixed, tau)
        if np.any(prob <= 0) or not np.all(np.isfinite(prob)):
            return np.inf
        return float(-np.sum(np.log(prob)) + 0.5 * u @ u)

    def _factor(self, phi2: np.ndarray, tau: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray]:
        """D = I + ΛZᵀΦZΛ as (diagonal of the eliminated block, its coupling C, Cholesky of the Schur complement)."""
        t1 = tau[self.elim]
        d1 = 1.0 + t1 * t1 * (self.Z1t @ phi2)
        if not self.m:
            return d1, sp.csr_matrix((self.n1, 0)), np.zeros((0, 0))
        tr = self._tau_rest(tau)
        zr_phi = self.Zr.multiply(phi2[:, None]).tocsr()
        drr = (self.Zrt @ zr_phi).toarray() * np.outer(tr, tr)
        drr[np.diag_indices(self.m)] += 1.0
        C = (self.Z1t @ zr_phi).tocsr().multiply((t1 * tr)[None, :]).tocsr()
        Cs = C.multiply((1.0 / np.sqrt(d1))[:, None]).tocsr()
        S = drr - (Cs.T @ Cs).toarray()
        try:
            L = sla.cholesky(S, lower=True, check_finite=False)
        except np.linalg.LinAlgError as exc:
            raise ModelFitError("the Laplace Hessian is not positive definite") from exc
        return d1, C, L

    def _solve(self, d1: np.ndarray, C: sp.csr_matrix, L: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """D⁻¹ rhs by block elimination (rhs: vector or matrix with rows in u's ordering)."""
        r1, rr = rhs[: self.n1], rhs[self.n1 :]
        if not self.m:
            return r1 / (d1 if r1.ndim == 1 else d1[:, None])
        inv_d1 = 1.0 / d1 if r1.ndim == 1 else (1.0 / d1)[:, None]
        xr = sla.cho_solve((L, True), rr - C.T @ (r1 * inv_d1), check_finite=False)
        x1 = (r1 - C @ xr) * inv_d1
        return np.concatenate([x1, xr])

    def _derivatives(self, eta1, eta2, prob):
        f1, f2 = self.pdf(eta1), self.pdf(eta2)
        g1, g2 = self.dpdf(eta1), self.dpdf(eta2)
        w = (f1 - f2) / prob
        phi2 = w * w - (g1 - g2) / prob
        return f1, f2, g1, g2, w, phi2

    def mode(self, x: np.ndarray, u0: np.ndarray | None = None, tol: float = 1e-9, max_iter: int = 60) -> _Mode | None:
        """Newton iterations (with step halving, as clmm's update.u) for the conditional mode of u."""
        alpha, beta, log_tau = self._unpack(x)
        if np.any(np.diff(alpha) <= 0):
            return None
        tau = np.exp(log_tau)
        fixed = self._eta_fixed(alpha, beta)
        u = (self._u if u0 is None else u0).copy()
        nll = self._nll(u, fixed, tau)
        if not np.isfinite(nll):
            u = np.zeros_like(u)
            nll = self._nll(u, fixed, tau)
            if not np.isfinite(nll):
                return None
        for _ in range(max_iter):
            eta1, eta2, prob = self._conditional(u, fixed, tau)
            f1, f2, g1, g2, w, phi2 = self._derivatives(eta1, eta2, prob)
            grad = self._zt(w, tau) + u
            if np.any(phi2 < 0):
                return None
            d1, C, L = self._factor(phi2, tau)
            if np.max(np.abs(grad)) < tol:
                break
            step = self._solve(d1, C, L, grad)
            if float(grad @ step) < 1e-18:  # the Newton decrement: converged to rounding
                break
            factor = 1.0
            slack = 1e-13 * (1.0 + abs(nll))  # rounding noise must not trigger step halving
            for _ in range(30):
                trial = u - factor * step
                nll_trial = self._nll(trial, fixed, tau)
                if nll_trial <= nll + slack:
                    break
                factor /= 2
            else:
                break
            u, nll = trial, nll_trial
        logdet = float(np.sum(np.log(d1)) + 2.0 * np.sum(np.log(np.diag(L))))
        value = nll + 0.5 * logdet
        return _Mode(
            u=u,
            value=value,
            d1=d1,
            C=C,
            S_chol=L,
            eta1=eta1,
            eta2=eta2,
            prob=prob,
            f1=f1,
            f2=f2,
            g1=g1,
            g2=g2,
            phi2=phi2,
        )

    def objective(self, x: np.ndarray) -> float:
        """-log L by the Laplace approximation (clmm's -logLik)."""
        self.n_evaluations += 1
        m = self.mode(x)
        if m is None:
            return np.inf
        self._u = m.u
        return m.value

    def gradient(self, x: np.ndarray, m: _Mode | None = None) -> np.ndarray:
        """Analytic gradient of :meth:`objective` in (alpha, β, log τ)."""
        if m is None:
            m = self.mode(x)
            if m is None:
                return np.full(len(x), np.nan)
        _, _, log_tau = self._unpack(x)
        tau = np.exp(log_tau)
        k = self.K - 1
        prob, f1, f2, g1, g2 = m.prob, m.f1, m.f2, m.g1, m.g2
        y = self.y
        # Derivatives of -log p_i w.r.t. η1 (upper threshold) and η2 (lower threshold) and of φ2 likewise.
        h1, h2 = self.d2pdf(m.eta1), self.d2pdf(m.eta2)
        w = (f1 - f2) / prob
        a1 = -f1 / prob  # ∂(-log p)/∂η1
        a2 = f2 / prob  # ∂(-log p)/∂η2
        # φ2 = w² - (g1 - g2)/p; ∂/∂η1 and ∂/∂η2 separately.
        dw1 = g1 / prob - w * f1 / prob
        dw2 = -g2 / prob + w * f2 / prob
        dphi1 = 2 * w * dw1 - h1 / prob + (g1 - g2) * f1 / prob**2
        dphi2 = 2 * w * dw2 + h2 / prob - (g1 - g2) * f2 / prob**2
        # Leverages hᵢ = zᵢᵀΛD⁻¹ΛZᵢ from D⁻¹'s blocks at the (row, column) pairs the data touch.
        lev = self._leverages(m, tau)
        # Per-observation pieces, for every parameter: ∂ηᵢ/∂φ holding u fixed (η1 and η2 separately).
        n_par = len(x)
        grad = np.zeros(n_par)
        # The envelope part: ∂/∂φ of -Σ log p at fixed u.
        # The log-det part: ½ Σ_i lev_i dφ2_i/dφ (total, through η and through u) + ½ tr(D⁻¹ ∂D/∂τ) at fixed Φ.
        # dφ2_i = dphi1·dη1 + dphi2·dη2 with dηj = ∂ηj/∂φ - zᵢᵀΛ du/dφ - (∂Λ/∂φ u)ᵢ.
        # du/dφ = -D⁻¹ ∂(∇_u f)/∂φ, ∇_u f = ΛZᵀw + u.
        # ∂w/∂η (common shift) = -φ2 ; ∂w/∂η1 = dw1, ∂w/∂η2 = dw2.
        half_lev = 0.5 * lev
        cols = []
        direct = []  # (dη1, dη2) at fixed u for each parameter
        for j in range(k):
            d1 = (y == j).astype(float)  # η1 = alpha_{y}: category index y uses alpha_y as upper threshold
            d2 = (y == j + 1).astype(float)
            direct.append((d1, d2))
        for c in range(self.p):
            xc = -self.X[:, c]
            direct.append((xc, xc))
        u_elim = m.u[: self.n1]
        for t in range(self.T):
            # η = ... - τ_t u_t[code]; ∂/∂log τ_t = -τ_t u_t[code]
            if t == self.elim:
                ut = u_elim[self.codes[t]]
            else:
                off = self.n1 + self.rest_offsets[self.rest.index(t)]
                ut = m.u[off : off + self.n_levels[t]][self.codes[t]]
            v = -tau[t] * ut
            direct.append((v, v))
        for i, (e1, e2) in enumerate(direct):
            grad[i] = float(np.sum(a1 * e1 + a2 * e2))
            # ∂(∇_u f)/∂φ at fixed u: ΛZᵀ(∂w) plus, for τ, the derivative of Λ itself.
            dw = dw1 * e1 + dw2 * e2
            col = self._zt(dw, tau)
            if i >= k + self.p:
                t = i - k - self.p
                mask = self.term_of_u == t
                col = col + mask * self._zt(w, tau)  # ∂(τ_t Z_tᵀw)/∂log τ_t = τ_t Z_tᵀ w
            cols.append(col)
        cols = np.column_stack(cols)
        du = -self._solve(m.d1, m.C, m.S_chol, cols)  # du/dφ, one column per parameter
        # dη from u: -zᵢᵀΛ du
        zdu = np.column_stack([self._b(du[:, i], tau) for i in range(n_par)])
        for i, (e1, e2) in enumerate(direct):
            deta1 = e1 - zdu[:, i]
            deta2 = e2 - zdu[:, i]
            grad[i] += float(np.sum(half_lev * (dphi1 * deta1 + dphi2 * deta2)))
        # ½ tr(D⁻¹ ∂D/∂log τ_t) with Φ fixed: D = I + ΛZᵀΦZΛ, ∂/∂log τ_t scales rows and columns of term t.
        for t in range(self.T):
            grad[k + self.p + t] += float(self._trace_term(m, tau, t))
        return grad

    def _inverse_parts(self, m: _Mode) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """S⁻¹, E = D1⁻¹CS⁻¹ and diag of D⁻¹'s eliminated block, once per mode (the O(m³) part of a gradient).

        D⁻¹ = [[D1⁻¹ + D1⁻¹ C S⁻¹ Cᵀ D1⁻¹, -D1⁻¹ C S⁻¹], [-S⁻¹ Cᵀ D1⁻¹, S⁻¹]].
        """
        if m.inverse is None:
            inv_d1 = 1.0 / m.d1
            if not self.m:
                m.inverse = (np.zeros((0, 0)), np.zeros((self.n1, 0)), inv_d1)
            else:
                Sinv, info = sla.lapack.dpotri(m.S_chol, lower=1)
                if info != 0:
                    raise ModelFitError("the Laplace Hessian is not positive definite")
                Sinv = np.tril(Sinv) + np.tril(Sinv, -1).T
                G = m.C.multiply(inv_d1[:, None]).tocsr()  # sparse n1 x m: D1⁻¹ C
                E = np.asarray(G @ Sinv)  # dense n1 x m
                diag11 = inv_d1 + np.asarray(G.multiply(E).sum(axis=1)).ravel()
                m.inverse = (Sinv, E, diag11)
        return m.inverse

    def _leverages(self, m: _Mode, tau: np.ndarray) -> np.ndarray:
        """diag(ZΛD⁻¹ΛZᵀ) without forming D⁻¹: the eliminated block's diagonal, the Schur inverse, their coupling."""
        t1 = tau[self.elim]
        c1 = self.codes[self.elim]
        Sinv, E, diag11 = self._inverse_parts(m)
        lev = t1 * t1 * diag11[c1]
        if not self.m:
            return lev
        tr = self._tau_rest(tau)
        rest_cols = [self.codes[t] + off for t, off in zip(self.rest, self.rest_offsets, strict=True)]
        for ca in rest_cols:
            lev = lev - 2.0 * t1 * tr[ca] * E[c1, ca]
            for cb in rest_cols:
                lev = lev + tr[ca] * tr[cb] * Sinv[ca, cb]
        return lev

    def _trace_term(self, m: _Mode, tau: np.ndarray, t: int) -> float:
        """½ tr(D⁻¹ ∂D/∂log τ_t) at fixed Φ: ∂D = P_t A + A P_t with A = ΛZᵀΦZΛ = D - I, so it is tr(P_t (I - D⁻¹))."""
        Sinv, _, diag11 = self._inverse_parts(m)
        diag_inv = np.concatenate([diag11, np.diag(Sinv)])
        return float(np.sum(1.0 - diag_inv[self.term_of_u == t]))

    # -- fitting ----------------------------------------------------------------------------------------
    def start(self) -> np.ndarray:
        """Thresholds from the marginal cumulative proportions, β = 0, τ = 0.5 (clmm starts from a clm fit)."""
        cum = np.cumsum(np.bincount(self.y, minlength=self.K))[:-1] / self.n
        quantile = special.logit if self.link == "logit" else special.ndtri
        return np.concatenate([quantile(cum), np.zeros(self.p), np.full(self.T, np.log(0.5))])

    def _to_free(self, x: np.ndarray) -> np.ndarray:
        k = self.K - 1
        z = x.copy()
        z[1:k] = np.log(np.diff(x[:k]))
        return z

    def _from_free(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Natural parameters and dalpha/dz (thresholds as first value plus log increments keep them ordered)."""
        k = self.K - 1
        x = z.copy()
        steps = np.concatenate([[1.0], np.exp(z[1:k])])
        x[:k] = z[0] + np.concatenate([[0.0], np.cumsum(steps[1:])])
        return x, steps

    def fit(self, x0: np.ndarray | None = None, gtol: float = 1e-7) -> CLMMFitResult:
        """Maximise the Laplace likelihood (L-BFGS-B with the analytic gradient), then its Hessian for SEs."""
        started = time.perf_counter()
        x0 = self.start() if x0 is None else np.asarray(x0, dtype=float)
        self._u = np.zeros(self.n1 + self.m)
        k = self.K - 1

        def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
            x, steps = self._from_free(z)
            self.n_evaluations += 1
            m = self.mode(x)
            if m is None:
                return np.inf, np.zeros_like(z)
            self._u = m.u
            g = self.gradient(x, m)
            gz = g.copy()
            # alpha_i = z_0 + Σ_{j≤i} exp(z_j): ∂/∂z_j = steps_j · Σ_{i≥j} ∂/∂alpha_i
            gz[:k] = steps * np.cumsum(g[:k][::-1])[::-1]
            return m.value, gz

        bounds = [(None, None)] * (k + self.p) + [_LOG_TAU_BOUNDS] * self.T
        opt = sopt.minimize(
            fun,
            self._to_free(x0),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 1000, "ftol": 1e-14, "gtol": gtol, "maxcor": 20},
        )
        x, _ = self._from_free(opt.x)
        m = self.mode(x, tol=1e-11)
        if m is None:
            raise ModelFitError("the ordinal model could not be fitted (the likelihood is not finite)")
        self._u = m.u
        grad = self.gradient(x, m)
        hessian = self._hessian(x)
        seconds = time.perf_counter() - started
        return CLMMFitResult(
            x=x,
            value=m.value,
            gradient=grad,
            hessian=hessian,
            u=m.u,
            converged=bool(opt.success),
            message=str(opt.message),
            n_evaluations=self.n_evaluations,
            seconds=seconds,
        )

    def _hessian(self, x: np.ndarray) -> np.ndarray:
        """Central differences of the analytic gradient (2·n_params gradient evaluations)."""
        n_par = len(x)
        H = np.empty((n_par, n_par))
        u_opt = self._u.copy()
        for i in range(n_par):
            h = 1e-4 * max(1.0, abs(x[i]))
            cols = []
            for sign in (1, -1):
                xi = x.copy()
                xi[i] += sign * h
                m = self.mode(xi, u0=u_opt, tol=1e-11)
                cols.append(self.gradient(xi, m) if m is not None else np.full(n_par, np.nan))
            H[:, i] = (cols[0] - cols[1]) / (2 * h)
        self._u = u_opt
        return 0.5 * (H + H.T)


@dataclass
class CLMMFitResult:
    """The optimum in (alpha, β, log τ), its gradient and Hessian, and the conditional modes."""

    x: np.ndarray
    value: float
    gradient: np.ndarray
    hessian: np.ndarray
    u: np.ndarray
    converged: bool
    message: str
    n_evaluations: int
    seconds: float
    warnings: list[str] = field(default_factory=list)


# -- ratings-level API --------------------------------------------------------------------------------------
MAX_CATEGORIES = 11  # a 0-10 scale; anything finer is a slider, not ordered categories


def _category_label(value) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass
class OrdinalFit:
    """A fitted cumulative-link mixed model of one dimension's ratings, with clmm's tables."""

    link: str
    dimension: str | None
    categories: list[str]
    term_names: list[str]
    group_names: list[str]
    n_levels: list[int]
    result: CLMMFitResult
    nobs: int
    alpha: float = 0.05

    @property
    def n_thresholds(self) -> int:
        return len(self.categories) - 1

    @property
    def loglik(self) -> float:
        return -self.result.value

    @property
    def sd(self) -> dict[str, float]:
        """Random-intercept SDs on the latent (link) scale; 0 when an SD sits at its lower bound."""
        log_tau = self.result.x[self.n_thresholds + len(self.term_names) :]
        return {
            g: (0.0 if lt <= _LOG_TAU_BOUNDS[0] + 1e-6 else float(np.exp(lt)))
            for g, lt in zip(self.group_names, log_tau, strict=True)
        }

    @property
    def warnings(self) -> list[str]:
        return self.result.warnings

    def vcov(self) -> np.ndarray:
        """Inverse Hessian over (alpha, β), SDs at the boundary left out as clmm leaves them out."""
        k = self.n_thresholds + len(self.term_names)
        keep = list(range(k)) + [k + i for i, v in enumerate(self.sd.values()) if v > 0]
        H = self.result.hessian[np.ix_(keep, keep)]
        try:
            cov = np.linalg.inv(H)
        except np.linalg.LinAlgError:
            cov = np.linalg.pinv(H)
        return cov[:k, :k]

    def _table(self, names: list[str], est: np.ndarray, se: np.ndarray) -> pd.DataFrame:
        z = stats.norm.ppf(1 - self.alpha / 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = est / se
        return pd.DataFrame(
            {
                "term": names,
                "estimate": est,
                "std_error": se,
                "ci_low": est - z * se,
                "ci_high": est + z * se,
                "z": stat,
                "p_value": 2 * stats.norm.sf(np.abs(stat)),
            }
        )

    def to_frame(self) -> pd.DataFrame:
        """Fixed effects on the latent scale (log odds for logit): estimate, SE, Wald CI, z, p."""
        k = self.n_thresholds
        se = np.sqrt(np.clip(np.diag(self.vcov()), 0, None))
        return self._table(self.term_names, self.result.x[k : k + len(self.term_names)], se[k:])

    def thresholds(self) -> pd.DataFrame:
        """Cutpoints named as clmm names them (``1|2``, ``2|3``, …)."""
        k = self.n_thresholds
        se = np.sqrt(np.clip(np.diag(self.vcov()), 0, None))
        names = [f"{a}|{b}" for a, b in zip(self.categories[:-1], self.categories[1:], strict=True)]
        return self._table(names, self.result.x[:k], se[:k])

    def variance_components(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {"group": g, "variance": s * s, "sd": s, "levels": n}
                for (g, s), n in zip(self.sd.items(), self.n_levels, strict=True)
            ]
        )

    def summary(self) -> str:
        lines = [
            f"Cumulative link mixed model fitted with the Laplace approximation (link: {self.link})",
            f"dimension: {self.dimension}   n = {self.nobs}   logLik = {self.loglik:.4f}   "
            f"({self.result.seconds:.2f} s)",
            "",
            "Random effects (latent scale):",
            self.variance_components().to_string(index=False),
            "",
            "Fixed effects:",
            self.to_frame().to_string(index=False),
            "",
            "Thresholds:",
            self.thresholds().to_string(index=False),
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def ordinal_categories(response: pd.Series, *, max_categories: int = MAX_CATEGORIES) -> tuple[np.ndarray, list]:
    """Category codes of an ordered rating scale, or a clear refusal for slider-like responses."""
    values = pd.to_numeric(response, errors="coerce")
    if values.isna().any() or not np.isfinite(values).all():
        raise ModelFitError("the ordinal model needs finite numeric responses")
    levels = np.sort(values.unique())
    if len(levels) > max_categories or not np.all(np.mod(levels, 1) == 0):
        raise ModelFitError(
            f"the responses take {len(levels)} distinct values (a slider or continuous scale); an "
            f"ordinal model would need one threshold per value, so it is fitted only to rating scales with at most "
            f"{max_categories} integer categories (analyse slider data with the linear mixed model)"
        )
    if len(levels) < 3:
        raise ModelFitError(f"an ordinal model needs at least 3 response categories, found {len(levels)}")
    codes = np.searchsorted(levels, values.to_numpy())
    return codes, list(levels)


def fit_clmm(
    ratings: pd.DataFrame,
    *,
    dimension: str | None = None,
    link: str = "logit",
    reference: str | None = None,
    fixed: str = "condition",
    groups: tuple[str, ...] = ("participant", "stimulus"),
    alpha: float = 0.05,
) -> OrdinalFit:
    """``response ~ <fixed> + (1 | participant) + (1 | stimulus)`` as ordinal::clmm fits it.

    ``fixed`` is a patsy formula right-hand side (categorical ``condition`` with ``reference`` first).
    """
    import patsy

    from analysis.models import prepare_model_data
    from analysis.ratings import REFERENCE_CONDITION

    data = (
        prepare_model_data(ratings, dimension=dimension, reference=reference or REFERENCE_CONDITION)
        if "condition" in ratings.columns
        else ratings.reset_index(drop=True)
    )
    missing = [c for c in ("response", *groups) if c not in data.columns]
    if missing:
        raise ModelFitError(f"the ordinal model needs column(s) {', '.join(missing)}")
    data = data.dropna(subset=["response", *groups]).reset_index(drop=True)
    if data.empty:
        raise ModelFitError("no ratings to fit")
    codes, levels = ordinal_categories(data["response"])
    X = patsy.dmatrix(fixed, data, return_type="dataframe", NA_action="raise")
    if "Intercept" in X.columns:
        X = X.drop(columns="Intercept")  # the thresholds are the intercepts
    group_codes = [(g, pd.factorize(data[g], sort=True)[0]) for g in groups]
    model = CLMM(codes, X.to_numpy(dtype=float), group_codes, link=link, n_categories=len(levels))
    from analysis.engine import single_threaded_blas

    with single_threaded_blas():
        result = model.fit()
    fit = OrdinalFit(
        link=link,
        dimension=dimension,
        categories=[_category_label(v) for v in levels],
        term_names=list(X.columns),
        group_names=list(groups),
        n_levels=model.n_levels,
        result=result,
        nobs=len(data),
        alpha=alpha,
    )
    result.warnings.extend(_clmm_warnings(fit))
    return fit


def _clmm_warnings(fit: OrdinalFit) -> list[str]:
    out = []
    if not fit.result.converged:
        out.append(f"ordinal model: the optimizer did not report convergence ({fit.result.message})")
    if np.max(np.abs(fit.result.gradient)) > 1e-3:
        out.append(f"ordinal model: max|gradient| = {np.max(np.abs(fit.result.gradient)):.2g} at the optimum")
    for g, s in fit.sd.items():
        if s == 0:
            out.append(f"ordinal model: boundary (singular) fit: the {g} SD is estimated as 0")
    k = fit.n_thresholds + len(fit.term_names)
    keep = list(range(k)) + [k + i for i, v in enumerate(fit.sd.values()) if v > 0]  # boundary SDs are flat
    if not np.all(np.linalg.eigvalsh(fit.result.hessian[np.ix_(keep, keep)]) > 0):
        out.append("ordinal model: the Hessian is not positive definite (some parameters are not identified)")
    return out

"""Kenward-Roger small-sample inference for the crossed LMM (pbkrtest's vcovAdj and Lb_ddf, as lmerTest uses them).

The marginal covariance is linear in the variance-covariance parameters g:
``V = Σ_i g_i G_i + s² I`` with ``G_i = K C_i Kᵀ``, K = [Z, X] and C_i a 0/1 pattern picking a term's
columns (``A Aᵀ`` for a variance, ``A Bᵀ + B Aᵀ`` for a covariance). Every quantity Kenward and Roger (1997)
need is then a block of ``S_k = Kᵀ V⁻ᵏ K`` (k = 1, 2, 3), and Woodbury with ``M = I + ΛᵀZᵀZΛ`` gives
``S_k = s^{-2k} (KᵀK - Σ_{l≤k} W₁ᵀ M^{-l} W₁)``, ``W₁ = ΛᵀZᵀK`` (because ``ΛᵀZᵀ R = M⁻¹ ΛᵀZᵀ`` for
``R = s² V⁻¹``, s² the residual variance): no n x n matrix is formed. Cost O((q + p)³) for q random-effect columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from analysis.engine import ModelFitError, _lambda_from_theta

MAX_RANDOM_COLUMNS = 6000  # dense (q + p)² work: beyond this Kenward-Roger would need gigabytes


@dataclass
class KenwardRoger:
    """The adjusted covariance Φ_A of β and what the df of a contrast need (pbkrtest's attributes P and W)."""

    vcov: np.ndarray  # Φ: the REML covariance of β
    vcov_adjusted: np.ndarray  # Φ_A
    P: list[np.ndarray]
    W: np.ndarray

    def degrees_of_freedom(self, L: np.ndarray) -> np.ndarray:
        """pbkrtest's Lb_ddf for each row of L (a single contrast, q = 1)."""
        L = np.atleast_2d(L)
        return np.array([self._ddf(row[None, :]) for row in L])

    def _ddf(self, L: np.ndarray) -> float:
        V0 = self.vcov
        theta = L.T @ np.linalg.solve(L @ V0 @ L.T, L)
        tv = theta @ V0
        u = [tv @ P @ V0 for P in self.P]
        traces = np.array([np.trace(x) for x in u])
        A1 = float(traces @ self.W @ traces)
        A2 = float(sum(self.W[i, j] * np.sum(u[i] * u[j].T) for i in range(len(u)) for j in range(len(u))))
        q = L.shape[0]
        B = (A1 + 6 * A2) / (2 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        c1 = g / (3 * q + 2 * (1 - g))
        c2 = (q - g) / (3 * q + 2 * (1 - g))
        c3 = (q + 2 - g) / (3 * q + 2 * (1 - g))
        v0 = 1 + c1 * B
        v1 = 1 - c2 * B
        v2 = 1 - c3 * B
        v0 = 0.0 if abs(v0) < 1e-10 else v0
        ratio = (1 - A2 / q) / v1 if v1 != 0 else 0.0
        rho = ratio**2 * v0 / v2
        return float(4 + (q + 2) / (q * rho - 1))


def kenward_roger(engine, result) -> KenwardRoger:
    """Φ_A, P_i and W = 2·IE2⁻¹ at a REML fit of ``engine`` (a CrossedLMM) with ``result`` (its EngineResult)."""
    if not result.reml:
        raise ModelFitError("Kenward-Roger needs a REML fit")
    groups = engine.groups
    Z = sp.hstack([g.sparse() for g in groups], format="csc")
    X = engine.X
    q_total, p = Z.shape[1], X.shape[1]
    if q_total + p > MAX_RANDOM_COLUMNS:
        raise ModelFitError(
            f"Kenward-Roger is limited to {MAX_RANDOM_COLUMNS} random-effect columns; use Satterthwaite"
        )
    K = sp.hstack([Z, sp.csc_matrix(X)], format="csc")
    KtK = (K.T @ K).toarray()
    sigma2 = result.sigma**2
    lambdas = [
        sp.kron(sp.identity(g.n_levels), _lambda_from_theta(th, g.q))
        for g, th in zip(groups, engine.split_theta(result.theta), strict=True)
    ]
    Lam = sp.block_diag(lambdas, format="csr")
    W1 = np.asarray(Lam.T @ KtK[:q_total, :])  # ΛᵀZᵀK
    N = np.asarray((Lam.T @ (Lam.T @ KtK[:q_total, :q_total]).T).T) if q_total else np.zeros((0, 0))
    M = N + np.eye(q_total)
    chol = sla.cho_factor(M, lower=True, check_finite=False)
    MinvW = [sla.cho_solve(chol, W1, check_finite=False)]
    for _ in range(2):
        MinvW.append(sla.cho_solve(chol, MinvW[-1], check_finite=False))
    S = []
    acc = KtK.copy()
    for k in range(3):
        acc = acc - W1.T @ MinvW[k]
        S.append(acc / sigma2 ** (k + 1))
    S1, S2, S3 = S
    xs = slice(q_total, q_total + p)
    # Parameters: every variance and covariance of every term (any basis of the linear space gives the same df).
    patterns = []
    offset = 0
    for g in groups:
        levels = offset + np.arange(g.n_levels) * g.q
        for a in range(g.q):
            for b in range(a, g.q):
                patterns.append((levels + a, levels + b))
        offset += g.n_levels * g.q

    def g_left(left: np.ndarray, pattern, right: np.ndarray) -> np.ndarray:
        """left[:, ·] C right[·, :] for the pattern's C."""
        a, b = pattern
        out = left[:, a] @ right[b, :]
        if not np.array_equal(a, b):
            out = out + left[:, b] @ right[a, :]
        return out

    def trace_cc(pattern_i, pattern_j, left: np.ndarray, right: np.ndarray) -> float:
        """tr(C_i left C_j right)."""
        a, b = pattern_i
        block = g_left(left[np.concatenate([a, b]), :][:, :], pattern_j, right)  # rows a, b of left·C_j·right
        n_a = len(a)
        inner_a, inner_b = block[:n_a], block[n_a:]
        tr = np.trace(inner_b[:, a]) if np.array_equal(a, b) else np.trace(inner_b[:, a]) + np.trace(inner_a[:, b])
        return float(tr)

    n_random = len(patterns)
    n_par = n_random + 1
    P = []
    for pat in patterns:
        P.append(g_left(S1[xs, :], pat, S1[:, xs]))
    P.append(S2[xs, xs])
    Q = {}
    ktrace = np.empty((n_par, n_par))
    for i, pi in enumerate(patterns):
        left = g_left(S1[xs, :], pi, S1)  # XᵀV⁻¹ G_i V⁻¹ K
        for j in range(i, n_random):
            Q[i, j] = g_left(left, patterns[j], S1[:, xs])
            ktrace[i, j] = ktrace[j, i] = trace_cc(pi, patterns[j], S1, S1)
        Q[i, n_random] = g_left(S1[xs, :], pi, S2[:, xs])
        a, b = pi
        tr = (
            np.trace(S2[np.ix_(b, a)])
            if np.array_equal(a, b)
            else np.trace(S2[np.ix_(b, a)]) + np.trace(S2[np.ix_(a, b)])
        )
        ktrace[i, n_random] = ktrace[n_random, i] = tr
    Q[n_random, n_random] = S3[xs, xs]
    MinvN = sla.cho_solve(chol, N, check_finite=False)
    n_obs = engine.n
    ktrace[n_random, n_random] = (n_obs - 2 * np.trace(MinvN) + np.sum(MinvN * MinvN.T)) / sigma2**2
    Phi = result.vcov
    IE2 = np.empty((n_par, n_par))
    for i in range(n_par):
        phi_pi = Phi @ P[i]
        for j in range(i, n_par):
            IE2[i, j] = IE2[j, i] = ktrace[i, j] - 2 * np.sum(Phi * Q[i, j]) + np.sum(phi_pi * (P[j] @ Phi))
    ev = np.linalg.eigvalsh(IE2)
    W = 2 * (np.linalg.inv(IE2) if np.min(np.abs(ev)) > 1e-10 else np.linalg.pinv(IE2))
    U = np.zeros((p, p))
    for i in range(n_par):
        for j in range(i + 1, n_par):
            U += W[i, j] * (Q[i, j] - P[i] @ Phi @ P[j])
    U = U + U.T
    for i in range(n_par):
        U += W[i, i] * (Q[i, i] - P[i] @ Phi @ P[i])
    adjusted = Phi + 2 * Phi @ U @ Phi
    return KenwardRoger(vcov=Phi, vcov_adjusted=adjusted, P=P, W=W)

"""Which two stimuli a participant compares next: random, balanced and adaptive pair designs.

Plain numpy, no Django: the study app draws its pairs with these functions, and the design
simulations in `analysis.pairwise` run the very same code, so what the bench measures is what
participants get.

The adaptive design keeps a Gaussian posterior over the Thurstone Case V scale (mean `mu`,
covariance `cov`) and updates it after each answer by assumed-density filtering, the TrueSkill
update that ASAP (Mikhailiuk et al. 2021) also uses. The next pairs are those whose answer is
expected to shrink the posterior's total variance most (an A-optimal criterion, in closed form from
the same update). We tried ASAP's expected information gain about the outcome first: it keeps
comparing near-tied neighbours and, in `bench/pairwise.py`, lost to random pairs on the RMSE of the
whole scale when scores are close together; the variance criterion wins at every spread we tried.
Two corrections, both measured in `bench/pairwise.py`: a balanced burn-in (`ADAPTIVE_BURN_IN` comparisons per
stimulus) before the first adaptive pick, and selection on one draw from the posterior (Thompson-style) rather
than on its mean, against the stretch that greedy adaptive sampling otherwise leaves in the fitted scale.
An update costs O(n^2) for n stimuli (well under a millisecond for a few hundred), so it can run on
every answer inside the request that stores it; choosing a participant's pairs costs one nxn
matrix product and one Cholesky factorisation (for the posterior draw).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import log_ndtr, ndtr

DESIGNS = ("random", "balanced", "adaptive")
# The adaptive design starts with balanced pairs until every stimulus has been in about this many comparisons:
# from a near-flat posterior the greedy choice is poor, and in bench/pairwise.py the early budgets lost to
# random pairs by up to 2x RMSE without it.
ADAPTIVE_BURN_IN = 10
# Pair selection scores pairs at one draw of the scale from the posterior, not at its mean. Selection on the mean
# has an adaptive-sampling bias: a stimulus whose estimate drifts outward looks predictable against everyone,
# stops being compared, and keeps its error (fitted scales came out stretched by 20-50 % at a true SD of 1 JOD).
# A draw moves such a stimulus back into play in proportion to how unsure the posterior is about it; this
# replaced a fixed shrink of the means toward the centre (0.7), with a lower RMSE in bench/pairwise.py.
ADAPTIVE_SAMPLE = True


class PairDesignError(ValueError):
    """A pair design that cannot be drawn (too few stimuli, unknown design, bad fraction)."""


def random_pairs(*, n_items: int, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """`n_pairs` pairs of distinct items, uniformly at random (with replacement across pairs)."""
    if n_items < 2:
        raise PairDesignError(f"a pairwise design needs at least 2 stimuli, got {n_items}")
    first = rng.integers(0, n_items, n_pairs)
    second = (first + rng.integers(1, n_items, n_pairs)) % n_items
    return np.column_stack([first, second])


def balanced_pairs(
    *,
    n_items: int,
    n_pairs: int,
    rng: np.random.Generator,
    conditions: Sequence[int] | None = None,
    within_fraction: float | None = None,
    counts: np.ndarray | None = None,
) -> np.ndarray:
    """Pairs in which every item appears as equally often as possible and the graph is connected.

    Items are taken least-used first (`counts` carries the usage so far across participants), each
    paired with a partner drawn from its own condition with probability `within_fraction` and
    otherwise from another condition; repeated pairs are avoided while alternatives exist.
    """
    if n_items < 2:
        raise PairDesignError(f"a pairwise design needs at least 2 stimuli, got {n_items}")
    if within_fraction is not None and not 0.0 <= within_fraction <= 1.0:
        raise PairDesignError(f"within_fraction must lie in [0, 1], got {within_fraction}")
    cond = np.zeros(n_items, dtype=int) if conditions is None else np.asarray(conditions, dtype=int)
    used = np.zeros(n_items) if counts is None else np.asarray(counts, dtype=float).copy()
    seen: set[tuple[int, int]] = set()
    pairs = []
    for _ in range(n_pairs):
        # Least used first; random tie-break keeps the design from walking the ids in order.
        order = np.lexsort((rng.random(n_items), used))
        a = int(order[0])
        same = cond == cond[a]
        if within_fraction is None:  # no quota: any partner (a within-only default would split the graph)
            pool = np.ones(n_items, dtype=bool)
        else:
            pool = same if rng.random() < within_fraction else ~same
        pool[a] = False
        if not pool.any():
            pool = np.ones(n_items, dtype=bool)
            pool[a] = False
        candidates = np.flatnonzero(pool)
        fresh = [c for c in candidates if (min(a, c), max(a, c)) not in seen]
        if fresh:
            candidates = np.asarray(fresh)
        cand_used = used[candidates]
        best = candidates[cand_used == cand_used.min()]
        b = int(rng.choice(best))
        seen.add((min(a, b), max(a, b)))
        used[[a, b]] += 1
        pairs.append((a, b) if rng.random() < 0.5 else (b, a))
    return np.asarray(pairs, dtype=int).reshape(-1, 2)


def is_connected(*, n_items: int, pairs: np.ndarray) -> bool:
    """Whether the comparison graph links every item (else the scale is not identified)."""
    parent = list(range(n_items))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in np.asarray(pairs, dtype=int):
        parent[find(a)] = find(b)
    return len({find(i) for i in range(n_items)}) == 1


@dataclass
class ScalePosterior:
    """Gaussian belief about the Thurstone scale (unit-variance comparison noise), updated by ADF."""

    mu: np.ndarray
    cov: np.ndarray
    n_updates: int = 0

    @classmethod
    def prior(cls, *, n_items: int, prior_sd: float = 1.5) -> ScalePosterior:
        return cls(mu=np.zeros(n_items), cov=np.eye(n_items) * prior_sd**2)

    def update(self, *, winner: int, loser: int) -> None:
        """One answer: moment-match the probit likelihood Phi(s_w - s_l) (closed form, O(n^2))."""
        diff_cov = self.cov[:, winner] - self.cov[:, loser]
        v = 1.0 + diff_cov[winner] - diff_cov[loser]
        m = self.mu[winner] - self.mu[loser]
        sv = np.sqrt(v)
        t = m / sv
        lam = np.exp(-0.5 * t * t - 0.5 * np.log(2 * np.pi) - log_ndtr(t))
        self.mu = self.mu + diff_cov * (lam / sv)
        self.cov = self.cov - np.outer(diff_cov, diff_cov) * (lam * (lam + t) / v)
        self.n_updates += 1

    def update_tie(self, *, a: int, b: int) -> None:
        """A "no difference" answer counts as half a win each way, as in the scaling models."""
        # Two half-weight updates would need a tempered likelihood; one update each way is a close,
        # symmetric stand-in that keeps the mean unchanged and shrinks the difference's variance.
        self.update(winner=a, loser=b)
        self.update(winner=b, loser=a)

    def with_pending(self, pairs: Sequence[tuple[int, int]]) -> ScalePosterior:
        """The belief once pairs already handed out (not yet answered) have their expected answers.

        The mean stays; the covariance takes each pair's expected ADF shrink, so participants drawing
        pairs at the same time get complementary pairs instead of the same most-informative ones.
        """
        cov = self.cov.copy()
        for a, b in pairs:
            u = cov[:, a] - cov[:, b]
            v = 1.0 + u[a] - u[b]
            t = (self.mu[a] - self.mu[b]) / np.sqrt(v)
            p_win = ndtr(t)
            factor = (p_win * _shrink(t) + (1 - p_win) * _shrink(-t)) / v
            cov -= factor * np.outer(u, u)
        # n_updates counts the pending answers too: it is what the burn-in of `draw_pairs` looks at.
        return ScalePosterior(mu=self.mu.copy(), cov=cov, n_updates=self.n_updates + len(pairs))

    def variance_reduction(self, pairs: np.ndarray) -> np.ndarray:
        """Expected drop of the posterior's total variance (trace) from comparing each pair.

        This A-optimal criterion targets the error of the whole scale: it favours pairs whose
        answer moves many scores, not only the two compared, which pure outcome entropy misses.
        """
        pairs = np.asarray(pairs, dtype=int)
        gain, _ = _expected_shrink(self.mu, self.cov, self.cov @ self.cov, pairs[:, 0], pairs[:, 1])
        return gain


def _shrink(x: np.ndarray) -> np.ndarray:
    """lambda(lambda + x) with lambda = phi(x) / Phi(x): the ADF variance factor for an answer at x."""
    lam = np.exp(-0.5 * x * x - 0.5 * np.log(2 * np.pi) - log_ndtr(x))
    return lam * (lam + x)


def _expected_shrink(mu, cov, gram, a, b) -> tuple[np.ndarray, np.ndarray]:
    """Expected trace reduction of each pair's update, and its expected rank-one factor c.

    The update is cov - c * u u^T with u = cov (e_a - e_b); its trace drops by c * |u|^2, and
    |u|^2 = gram[a,a] + gram[b,b] - 2 gram[a,b] with gram = cov @ cov.
    """
    spread = gram[a, a] + gram[b, b] - 2 * gram[a, b]
    v = 1.0 + cov[a, a] + cov[b, b] - 2 * cov[a, b]
    t = (mu[a] - mu[b]) / np.sqrt(v)
    p_win = ndtr(t)
    factor = (p_win * _shrink(t) + (1 - p_win) * _shrink(-t)) / v
    return spread * factor, factor


def _posterior_noise(cov: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A draw from N(0, cov): one Cholesky factorisation, a few ms at a few hundred stimuli."""
    n = len(cov)
    # ADF keeps cov symmetric positive definite in exact arithmetic; the jitter covers rounding.
    z = rng.standard_normal(n)
    try:
        return np.linalg.cholesky(cov + np.eye(n) * (1e-9 * max(1.0, float(np.trace(cov)) / n))) @ z
    except np.linalg.LinAlgError:  # a stored covariance that lost definiteness: draw from its PSD part
        values, vectors = np.linalg.eigh((cov + cov.T) / 2)
        return vectors @ (np.sqrt(np.clip(values, 0.0, None)) * z)


@dataclass
class AdaptiveSelector:
    """Draws a participant's next pairs by expected variance reduction from the shared posterior."""

    posterior: ScalePosterior
    max_candidates: int = 4000
    sample: bool = ADAPTIVE_SAMPLE
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def next_pairs(self, *, n_pairs: int, exclude: set[tuple[int, int]] | None = None) -> np.ndarray:
        """`n_pairs` pairs chosen greedily; no pair twice, each item capped.

        After each pick the covariance takes that pair's expected update (the answer is not known
        yet), so one participant's pairs complement each other instead of all asking the same thing.
        """
        n = len(self.posterior.mu)
        if n < 2:
            raise PairDesignError(f"a pairwise design needs at least 2 stimuli, got {n}")
        if n * (n - 1) // 2 <= self.max_candidates:
            a, b = np.triu_indices(n, k=1)
        else:
            a, b = random_pairs(n_items=n, n_pairs=self.max_candidates, rng=self.rng).T
            a, b = np.minimum(a, b), np.maximum(a, b)
        mu, cov = self.posterior.mu, self.posterior.cov.copy()
        if self.sample:
            mu = mu + _posterior_noise(cov, self.rng)
        gram = cov @ cov
        # Random tie-break: under the prior every pair has the same gain.
        jitter = self.rng.random(len(a)) * 1e-12
        open_ = np.ones(len(a), dtype=bool)
        for lo, hi in exclude or ():
            open_ &= ~((a == min(lo, hi)) & (b == max(lo, hi)))
        uses = np.zeros(n, dtype=int)
        cap = max(2, int(np.ceil(2 * n_pairs / n)) + 1)
        chosen: list[tuple[int, int]] = []
        while len(chosen) < n_pairs and open_.any():
            gain, factor = _expected_shrink(mu, cov, gram, a, b)
            gain = np.where(open_, gain + jitter, -np.inf)
            best = int(np.argmax(gain))
            i, j = int(a[best]), int(b[best])
            open_[best] = False
            uses[[i, j]] += 1
            for full in (i, j):
                if uses[full] >= cap:
                    open_ &= (a != full) & (b != full)
            chosen.append((i, j) if self.rng.random() < 0.5 else (j, i))
            u = cov[:, i] - cov[:, j]
            c = factor[best]
            w = cov @ u
            gram = gram - c * (np.outer(w, u) + np.outer(u, w)) + c * c * (u @ u) * np.outer(u, u)
            cov = cov - c * np.outer(u, u)
        return np.asarray(chosen, dtype=int).reshape(-1, 2)


def draw_pairs(
    *,
    design: str,
    n_items: int,
    n_pairs: int,
    rng: np.random.Generator,
    conditions: Sequence[int] | None = None,
    within_fraction: float | None = None,
    counts: np.ndarray | None = None,
    posterior: ScalePosterior | None = None,
) -> np.ndarray:
    """One participant's pairs for the named design (the study app's single entry point)."""
    if design == "random":
        return random_pairs(n_items=n_items, n_pairs=n_pairs, rng=rng)
    if design == "balanced":
        return balanced_pairs(
            n_items=n_items,
            n_pairs=n_pairs,
            rng=rng,
            conditions=conditions,
            within_fraction=within_fraction,
            counts=counts,
        )
    if design == "adaptive":
        post = posterior or ScalePosterior.prior(n_items=n_items)
        if post.n_updates < ADAPTIVE_BURN_IN * n_items / 2:
            return balanced_pairs(n_items=n_items, n_pairs=n_pairs, rng=rng, counts=counts)
        return AdaptiveSelector(posterior=post, rng=rng).next_pairs(n_pairs=n_pairs)
    raise PairDesignError(f"unknown pair design {design!r}: use one of {', '.join(DESIGNS)}")

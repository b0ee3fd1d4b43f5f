"""Power by simulation: draw studies from the crossed model, refit each with the fast engine, count rejections."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from analysis.engine import CrossedLMM, GroupDesign, RandomTerm, single_threaded_blas
from analysis.models import RatingsFit
from analysis.ratings import REFERENCE_CONDITION
from analysis.simulation import DEFAULT_CONDITIONS, CrossedDesign


@dataclass(frozen=True)
class PopulationModel:
    """The generating model: condition effects vs the reference plus the three SDs."""

    effects: Mapping[str, float]
    intercept: float = 3.0
    sd_participant: float = 0.8
    sd_stimulus: float = 0.5
    sd_residual: float = 1.0
    conditions: tuple[str, ...] = tuple(DEFAULT_CONDITIONS)

    @classmethod
    def from_fit(cls, fit: RatingsFit, reference: str = REFERENCE_CONDITION) -> PopulationModel:
        """Use a fitted main model's estimates as the truth (a 'post hoc' design analysis)."""
        params = fit.params
        prefix = "condition[T."
        effects = {t[len(prefix) : -1]: float(v) for t, v in params.items() if t.startswith(prefix)}
        vc = fit.variance_components().set_index("group")["sd"]
        conditions = (reference, *effects)
        return cls(
            effects=effects,
            intercept=float(params.get("Intercept", 0.0)),
            sd_participant=float(vc.get("participant", 0.0)),
            sd_stimulus=float(vc.get("stimulus", 0.0)),
            sd_residual=float(vc["Residual"]),
            conditions=conditions,
        )


class SimulatedStudy:
    """One fixed design whose responses are redrawn; the engine's cross-products are reused between draws."""

    def __init__(self, design: CrossedDesign, population: PopulationModel, seed: int = 0):
        self.design, self.population = design, population
        self.rng = np.random.default_rng(seed)
        self.participant, self.stimulus, self.condition = design.assignments(self.rng)
        n = len(self.participant)
        k = len(design.conditions)
        X = np.zeros((n, k))
        X[:, 0] = 1.0
        for j in range(1, k):
            X[:, j] = self.condition == j
        self.terms = [f"condition[T.{c}]" for c in design.conditions[1:]]
        self.truth = np.array([population.intercept, *(population.effects.get(c, 0.0) for c in design.conditions[1:])])
        groups = [
            GroupDesign(
                RandomTerm("participant"),
                self.participant,
                np.arange(design.n_participants),
                np.ones((n, 1)),
                ["Intercept"],
            ),
            GroupDesign(
                RandomTerm("stimulus"), self.stimulus, np.arange(design.n_stimuli), np.ones((n, 1)), ["Intercept"]
            ),
        ]
        self.X = X
        self.engine = CrossedLMM(self.draw(), X, groups)
        p = population
        self.theta0 = np.array([max(p.sd_participant, 0.05), max(p.sd_stimulus, 0.05)]) / p.sd_residual

    def draw(self) -> np.ndarray:
        p, d = self.population, self.design
        u_p = self.rng.normal(0, p.sd_participant, d.n_participants)
        u_s = self.rng.normal(0, p.sd_stimulus, d.n_stimuli)
        e = self.rng.normal(0, p.sd_residual, len(self.participant))
        return self.X @ self.truth + u_p[self.participant] + u_s[self.stimulus] + e

    def replicate(self) -> tuple[np.ndarray, np.ndarray]:
        """Estimates and standard errors of one freshly drawn study (REML)."""
        self.engine.with_response(self.draw())
        result = self.engine.fit(reml=True, theta0=self.theta0)
        return result.beta, np.sqrt(np.diag(result.vcov))


def simulate_estimates(
    design: CrossedDesign, population: PopulationModel, *, n_sims: int, seed: int = 0, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Estimates, SEs (n_sims x p), the true β and the term names."""
    with single_threaded_blas():
        study = SimulatedStudy(design, population, seed=seed)
        est, se = np.empty((n_sims, len(study.truth))), np.empty((n_sims, len(study.truth)))
        for i in tqdm(range(n_sims), disable=not progress, desc="simulations", leave=False):
            est[i], se[i] = study.replicate()
    return est, se, study.truth, ["Intercept", *study.terms]


def power_curve(
    population: PopulationModel,
    *,
    participants: Sequence[int],
    stimuli: Sequence[int],
    ratings_per_participant: int,
    n_sims: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Power of each condition-vs-reference Wald test over a grid of participant and stimulus numbers."""
    rows = []
    grid = [(n_p, n_s) for n_p in participants for n_s in stimuli]
    crit = stats.norm.ppf(1 - alpha / 2)
    for cell, (n_p, n_s) in enumerate(tqdm(grid, disable=not progress, desc="power grid")):
        design = CrossedDesign(n_p, n_s, min(ratings_per_participant, n_s), tuple(population.conditions))
        est, se, _, names = simulate_estimates(design, population, n_sims=n_sims, seed=seed + cell)
        for j, term in enumerate(names[1:], start=1):
            power = float(np.mean(np.abs(est[:, j] / se[:, j]) > crit))
            rows.append(
                {
                    "n_participants": n_p,
                    "n_stimuli": n_s,
                    "ratings_per_participant": design.ratings_per_participant,
                    "term": term,
                    "effect": population.effects.get(term[len("condition[T.") : -1], 0.0),
                    "power": power,
                    "mc_se": float(np.sqrt(power * (1 - power) / n_sims)),
                    "n_sims": n_sims,
                }
            )
    return pd.DataFrame(rows)

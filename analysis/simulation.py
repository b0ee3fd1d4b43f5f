"""Simulated ratings exports with known effects, for power analysis, tests and benchmarks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

DEFAULT_CONDITIONS: dict[str, float] = {
    "baseline": 0.0,
    "artistic-0.25": 0.25,
    "artistic-0.5": 0.5,
    "artistic-1.0": 1.0,
    "symbolic": 1.0,
}
# (perturbation_kind, perturbation_mode) of the simulated conditions, as the example pipeline renders them: the
# symbolic condition is embedding noise with ε = 1, which is not a dose of the multiplicative perturbation.
CONDITION_KINDS: dict[str, tuple[str, str]] = {
    "baseline": ("none", ""),
    "artistic-0.25": ("multiplicative", ""),
    "artistic-0.5": ("multiplicative", ""),
    "artistic-1.0": ("multiplicative", ""),
    "symbolic": ("semantic", "embedding-noise"),
}


@dataclass(frozen=True)
class CrossedDesign:
    """Who rates what: every participant rates ``ratings_per_participant`` distinct stimuli."""

    n_participants: int
    n_stimuli: int
    ratings_per_participant: int
    conditions: tuple[str, ...] = tuple(DEFAULT_CONDITIONS)

    def assignments(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Participant index, stimulus index and stimulus condition index per rating.

        Stimuli are dealt to conditions in turn and to participants in overlapping windows of a
        shuffled order, so every stimulus gets (nearly) the same number of ratings.
        """
        k = min(self.ratings_per_participant, self.n_stimuli)
        order = rng.permutation(self.n_stimuli)
        starts = (np.arange(self.n_participants) * k) % self.n_stimuli
        stimulus = order[(starts[:, None] + np.arange(k)[None, :]) % self.n_stimuli]
        for row in stimulus:  # shuffle presentation order within participant
            rng.shuffle(row)
        participant = np.repeat(np.arange(self.n_participants), k)
        stim_condition = np.arange(self.n_stimuli) % len(self.conditions)
        stimulus = stimulus.ravel()
        return participant, stimulus, stim_condition[stimulus]


def simulate_ratings(
    *,
    design: CrossedDesign,
    effects: Mapping[str, float] | None = None,
    intercept: float = 3.0,
    sd_participant: float = 0.8,
    sd_stimulus: float = 0.5,
    sd_residual: float = 1.0,
    dimensions: Sequence[str] = ("artistry",),
    scale: tuple[int, int] | None = None,
    draws: int = 1,
    sd_network: float = 0.0,
    seed: int = 0,
    sd_slope: float = 0.0,
) -> pd.DataFrame:
    """A long-format export like the study app's, drawn from ``response ~ condition + (1|participant) + (1|stimulus)``.

    ``scale=(1, 7)`` rounds and clips to a rating scale; ``None`` keeps the latent continuous response so
    the fitted model is exactly the true one (coverage tests). ``sd_slope`` > 0 adds a participant-by-condition
    deviation (SD ``sd_slope``) to every rating: participants differ in how they respond to each condition, the
    structure ``(1 + condition | participant)`` models (Type I error tests of the slopes model).
    ``draws`` perturbed networks per perturbed
    condition, each shifting its images by N(0, sd_network²) (the baseline is one network).
    """
    rng = np.random.default_rng(seed)
    effects = dict(effects or {})
    participant, stimulus, cond = design.assignments(rng)
    conditions = list(design.conditions)
    effect_by_cond = np.array([effects.get(c, 0.0) for c in conditions])
    epsilon_by_cond = np.array([DEFAULT_CONDITIONS.get(c, 0.0) for c in conditions])
    class_of_stimulus = rng.integers(0, 1000, size=design.n_stimuli)
    kinds = [
        CONDITION_KINDS.get(c, ("multiplicative", "") if epsilon_by_cond[i] > 0 else ("none", ""))
        for i, c in enumerate(conditions)
    ]
    stim_condition = np.arange(design.n_stimuli) % len(conditions)
    stim_draw = np.where(
        [kinds[c][0] == "none" for c in stim_condition], 0, (np.arange(design.n_stimuli) // len(conditions)) % draws
    )
    network_names = np.array(
        [
            conditions[c] if kinds[c][0] == "none" else f"{conditions[c]}/draw-{d}/seed-1"
            for c, d in zip(stim_condition, stim_draw, strict=True)
        ],
        dtype=object,
    )
    network_codes, network_levels = pd.factorize(network_names)
    frames = []
    for dim in dimensions:
        u_p = rng.normal(0.0, sd_participant, design.n_participants)
        u_s = rng.normal(0.0, sd_stimulus, design.n_stimuli)
        # Drawn only when asked, so the other draws (and every seeded test) are unchanged without network effects.
        u_n = rng.normal(0.0, sd_network, len(network_levels)) if sd_network > 0 else np.zeros(len(network_levels))
        y = intercept + effect_by_cond[cond] + u_p[participant] + u_s[stimulus] + u_n[network_codes[stimulus]]
        if sd_slope > 0:
            u_pc = rng.normal(0.0, sd_slope, (design.n_participants, len(conditions)))
            y = y + u_pc[participant, cond]
        y = y + rng.normal(0.0, sd_residual, len(y))
        if scale is not None:
            y = np.clip(np.round(y), scale[0], scale[1])
        frames.append(
            pd.DataFrame(
                {
                    "participant": np.char.add("P", np.char.zfill(participant.astype(str), 5)),
                    "stimulus": np.char.add("S", np.char.zfill(stimulus.astype(str), 5)),
                    "condition": np.asarray(conditions, dtype=object)[cond],
                    "perturbation_kind": np.asarray([k for k, _ in kinds], dtype=object)[cond],
                    "perturbation_mode": np.asarray([m for _, m in kinds], dtype=object)[cond],
                    "epsilon": epsilon_by_cond[cond],
                    "network": network_names[stimulus],
                    "draw": stim_draw[stimulus],
                    "class_index": class_of_stimulus[stimulus],
                    "dimension": dim,
                    "response": y,
                    "rt_ms": np.round(rng.lognormal(np.log(1800), 0.35, len(y))).astype(int),
                    "trial_index": np.tile(
                        np.arange(min(design.ratings_per_participant, design.n_stimuli)), design.n_participants
                    ),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def null_rejection_rates(
    *,
    design: CrossedDesign,
    formula: str,
    n_datasets: int,
    alpha: float = 0.05,
    sd_slope: float = 0.4,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """Type I error of the condition effects under the null (no condition effect), Satterthwaite t vs Wald z.

    Every dataset draws participant-by-condition deviations (``sd_slope``), so the slopes model is the true
    model; each non-reference coefficient's test counts once per dataset.
    """
    from scipy import stats
    from tqdm.auto import tqdm

    from analysis.models import fit_ratings

    rejected_t, rejected_z, singular, dfs = [], [], 0, []
    for i in tqdm(range(n_datasets), disable=not progress, desc="null datasets"):
        data = simulate_ratings(design=design, sd_slope=sd_slope, seed=seed + i)
        fit = fit_ratings(data, formula)
        frame = fit.to_frame()
        frame = frame[frame["term"].str.startswith("condition[")]
        rejected_t.extend(frame["p_value"] < alpha)
        rejected_z.extend(2 * stats.norm.sf(np.abs(frame["statistic"])) < alpha)
        dfs.extend(frame["df"])
        singular += fit.singular
    n = len(rejected_t)
    return {
        "n_datasets": n_datasets,
        "n_tests": n,
        "type1_t": float(np.mean(rejected_t)),
        "type1_t_se": float(np.sqrt(np.mean(rejected_t) * (1 - np.mean(rejected_t)) / n)),
        "type1_z": float(np.mean(rejected_z)),
        "median_df": float(np.median(dfs)),
        "singular_fits": singular,
    }

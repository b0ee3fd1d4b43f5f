"""Power simulation with the fast engine."""

from __future__ import annotations

import pytest

from analysis import fit_ratings
from analysis.power import PopulationModel, power_curve
from analysis.simulation import CrossedDesign, simulate_ratings


def test_power_grows_with_sample_size_and_is_alpha_without_effect():
    population = PopulationModel(
        effects={"artistic-1.0": 0.6, "symbolic": 0.0}, conditions=("baseline", "artistic-1.0", "symbolic")
    )
    table = power_curve(
        population, participants=[10, 40], stimuli=[30], ratings_per_participant=15, n_sims=60, seed=3, progress=False
    )
    effect = table[table["term"] == "condition[T.artistic-1.0]"].set_index("n_participants")["power"]
    assert effect[40] >= effect[10]
    null = table[table["term"] == "condition[T.symbolic]"]["power"]
    assert (null <= 0.05 + 4 * (0.05 * 0.95 / 60) ** 0.5).all()
    assert set(table.columns) >= {"n_participants", "n_stimuli", "term", "effect", "power", "mc_se"}


def test_population_from_fit():
    data = simulate_ratings(design=CrossedDesign(20, 20, 10), effects={"symbolic": 0.5}, seed=2)
    population = PopulationModel.from_fit(fit_ratings(data, dimension="artistry"))
    assert population.conditions[0] == "baseline"
    assert set(population.effects) == {"artistic-0.25", "artistic-0.5", "artistic-1.0", "symbolic"}
    assert population.sd_residual == pytest.approx(1.0, abs=0.2)

"""Pairwise scaling and pair designs: agreement with choix, truth recovery, CI coverage, designs."""

import time

import choix
import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import analysis.pairs as pairs_module
from analysis.pairs import (
    AdaptiveSelector,
    PairDesignError,
    ScalePosterior,
    balanced_pairs,
    draw_pairs,
    is_connected,
    random_pairs,
)
from analysis.pairwise import (
    JOD,
    Comparisons,
    PairwiseError,
    _pair_information,
    bootstrap_scale,
    compare_designs,
    comparison_information,
    comparisons_from_frame,
    comparisons_to_reach,
    fit_condition_effects,
    fit_scale,
    max_design_saving,
    optimal_pair_shares,
    participant_agreement,
    random_truth,
    scale_table,
)


def simulate(*, truth, n_pairs, n_participants, rng, model="bradley-terry"):
    pairs = random_pairs(n_items=len(truth), n_pairs=n_pairs, rng=rng)
    diff = truth[pairs[:, 0]] - truth[pairs[:, 1]]
    p_first = special.expit(diff) if model == "bradley-terry" else special.ndtr(JOD * diff)
    first_won = rng.random(n_pairs) < p_first
    win = np.where(first_won, pairs[:, 0], pairs[:, 1])
    lose = np.where(first_won, pairs[:, 1], pairs[:, 0])
    participant = rng.integers(0, n_participants, n_pairs)
    return Comparisons(
        tuple(map(str, range(len(truth)))),
        win,
        lose,
        np.ones(n_pairs),
        participant,
        tuple(f"p{i}" for i in range(n_participants)),
    )


def test_bradley_terry_map_equals_choix():
    rng = np.random.default_rng(4)
    truth = random_truth(n_items=25, sd=1.0, seed=1)
    comps = simulate(truth=truth, n_pairs=500, n_participants=10, rng=rng)
    prior_sd = 2.0
    ours = fit_scale(comps, model="bradley-terry", prior_sd=prior_sd).scores
    data = list(zip(comps.first.tolist(), comps.second.tolist(), strict=True))
    # choix penalises alpha * sum(theta^2), i.e. a Gaussian prior of variance 1 / (2 alpha).
    theirs = choix.opt_pairwise(25, data, alpha=1 / (2 * prior_sd**2), tol=1e-12)
    np.testing.assert_allclose(ours, theirs - theirs.mean(), atol=1e-6)


@pytest.mark.parametrize("model", ["bradley-terry", "thurstone"])
def test_laplace_intervals_cover_the_truth_at_the_nominal_rate(model):
    rng = np.random.default_rng(11)
    covered, total = 0, 0
    for rep in range(60):
        truth = random_truth(n_items=12, sd=1.0, seed=rep)
        comps = simulate(truth=truth, n_pairs=400, n_participants=20, rng=rng, model=model)
        fit = fit_scale(comps, model=model, prior_sd=10.0)
        z = stats.norm.ppf(0.975)
        covered += int(np.sum(np.abs(fit.scores - truth) <= z * fit.se))
        total += len(truth)
    rate = covered / total
    # 720 intervals (correlated within a study): allow about 3 Monte-Carlo SEs.
    assert abs(rate - 0.95) < 3 * np.sqrt(0.95 * 0.05 / 720) * 1.5, rate


def test_bootstrap_intervals_over_participants_cover_the_truth():
    rng = np.random.default_rng(3)
    hits, total = 0, 0
    for rep in range(25):
        truth = random_truth(n_items=10, sd=1.0, seed=100 + rep)
        comps = simulate(truth=truth, n_pairs=300, n_participants=30, rng=rng)
        fit = fit_scale(comps, prior_sd=10.0)
        low, high = bootstrap_scale(comps, fit=fit, reps=120, seed=rep)
        hits += int(np.sum((truth >= low) & (truth <= high)))
        total += len(truth)
    assert 0.88 <= hits / total <= 0.99, hits / total


def test_scale_recovers_a_known_truth():
    rng = np.random.default_rng(0)
    truth = random_truth(n_items=20, sd=1.5, seed=5)
    comps = simulate(truth=truth, n_pairs=4000, n_participants=40, rng=rng, model="thurstone")
    fit = fit_scale(comps, model="thurstone")
    assert np.corrcoef(fit.scores, truth)[0, 1] > 0.98
    assert np.sqrt(np.mean((fit.scores - truth) ** 2)) < 0.2


def frame_from(comps, *, conditions=None, ties=()):
    rows = []
    for k, (a, b, p) in enumerate(zip(comps.first, comps.second, comps.participant, strict=True)):
        left, right = (a, b) if k % 2 else (b, a)
        chosen = "" if k in ties else str(a)
        row = {
            "participant": f"p{p}",
            "left": str(left),
            "right": str(right),
            "chosen": chosen,
            "dimension": "artistry",
            "rt_ms": 900,
            "trial_index": k,
            "pair_source": "random",
        }
        if conditions is not None:
            row |= {"condition_left": conditions[str(left)], "condition_right": conditions[str(right)]}
        rows.append(row)
    return pd.DataFrame(rows)


def test_frame_reading_counts_ties_as_half_wins_and_refuses_unshown_choices():
    comps = simulate(truth=np.zeros(4), n_pairs=20, n_participants=3, rng=np.random.default_rng(1))
    df = frame_from(comps, ties={0, 1})
    read = comparisons_from_frame(df)
    assert read.weight.sum() == pytest.approx(20.0)
    assert np.sum(read.weight == 0.5) == 4
    bad = df.copy()
    bad.loc[3, "chosen"] = "not-shown"
    with pytest.raises(PairwiseError, match="not shown"):
        comparisons_from_frame(bad)
    with pytest.raises(PairwiseError, match="lacks column"):
        comparisons_from_frame(df.drop(columns=["chosen"]))


def test_scale_table_has_the_contract_columns():
    rng = np.random.default_rng(2)
    truth = random_truth(n_items=6, sd=1.0, seed=2)
    comps = simulate(truth=truth, n_pairs=200, n_participants=8, rng=rng)
    conditions = {str(i): ("baseline" if i < 3 else "noise") for i in range(6)}
    table = scale_table(frame_from(comps, conditions=conditions), reps=30)
    assert list(table.columns[:7]) == ["dimension", "stimulus", "condition", "score", "se", "ci_low", "ci_high"]
    assert (table["ci_low"] <= table["score"] + 1e-9).all()
    assert (table["score"] <= table["ci_high"] + 1e-9).all()
    assert set(table["condition"]) == {"baseline", "noise"}


def test_condition_effects_cover_a_known_effect():
    rng = np.random.default_rng(7)
    hits = 0
    reps = 40
    for rep in range(reps):
        cond = np.array(["baseline"] * 10 + ["noise"] * 10)
        truth = np.where(cond == "noise", 0.8, 0.0) + rng.normal(0, 0.4, 20)
        comps = simulate(truth=truth, n_pairs=600, n_participants=20, rng=rng)
        table = fit_condition_effects(comps, conditions=list(cond), reference="baseline").table()
        row = table.iloc[0]
        hits += int(row["ci_low"] <= 0.8 <= row["ci_high"])
        if rep == 0:
            assert row["condition"] == "noise"
    # 40 studies: nominal 95 %, binomial 99 % band is about 33 to 40.
    assert hits >= 33, hits
    with pytest.raises(PairwiseError, match="reference"):
        fit_condition_effects(comps, conditions=["a"] * 20, reference="baseline")


def test_outlier_participants_are_flagged():
    rng = np.random.default_rng(9)
    truth = random_truth(n_items=10, sd=1.5, seed=9)
    comps = simulate(truth=truth, n_pairs=1200, n_participants=12, rng=rng)
    flipped = comps.participant == 0  # participant p0 answers the opposite way
    first = np.where(flipped, comps.second, comps.first)
    second = np.where(flipped, comps.first, comps.second)
    comps = Comparisons(comps.items, first, second, comps.weight, comps.participant, comps.participants)
    table = participant_agreement(comps, fit=fit_scale(comps))
    assert table.loc[table["participant"] == "p0", "outlier"].item()
    assert table["outlier"].sum() == 1
    assert table.loc[table["participant"] != "p0", "agreement"].min() > 0.6


def test_balanced_pairs_use_every_stimulus_equally_and_connect_the_graph():
    rng = np.random.default_rng(0)
    conditions = np.repeat(np.arange(3), 8)
    pairs = balanced_pairs(n_items=24, n_pairs=120, rng=rng, conditions=conditions, within_fraction=0.25)
    uses = np.bincount(pairs.ravel(), minlength=24)
    # The within/between quota can force a partner one use ahead of the least used.
    assert uses.max() - uses.min() <= 2
    plain = np.bincount(balanced_pairs(n_items=24, n_pairs=120, rng=rng).ravel(), minlength=24)
    assert plain.max() - plain.min() == 0
    assert is_connected(n_items=24, pairs=pairs)
    within = np.mean(conditions[pairs[:, 0]] == conditions[pairs[:, 1]])
    assert 0.15 <= within <= 0.35
    assert np.all(pairs[:, 0] != pairs[:, 1])
    with pytest.raises(PairDesignError, match="within_fraction"):
        balanced_pairs(n_items=4, n_pairs=2, rng=rng, within_fraction=1.5)
    with pytest.raises(PairDesignError, match="unknown pair design"):
        draw_pairs(design="clever", n_items=4, n_pairs=2, rng=rng)


def test_adaptive_update_is_cheap_and_moves_the_posterior_toward_the_winner():
    post = ScalePosterior.prior(n_items=600)
    start = time.perf_counter()
    for k in range(50):
        post.update(winner=k, loser=k + 1)
    per_update_ms = (time.perf_counter() - start) / 50 * 1000
    assert post.mu[0] > 0 > post.mu[50]
    assert post.cov[0, 0] < 1.5**2
    # Not a timed test of the machine, a guard against an O(n^3) update sneaking in.
    assert per_update_ms < 50
    pairs = draw_pairs(design="adaptive", n_items=600, n_pairs=20, rng=np.random.default_rng(0), posterior=post)
    assert len({tuple(sorted(p)) for p in pairs.tolist()}) == 20


def test_adaptive_selection_scores_pairs_at_a_posterior_draw_not_the_mean():
    # A posterior after some answers (lower ids tend to win), uncertain to different degrees per item.
    rng = np.random.default_rng(1)
    post = ScalePosterior.prior(n_items=12)
    for _ in range(60):
        a, b = rng.choice(12, 2, replace=False)
        post.update(winner=int(min(a, b)), loser=int(max(a, b)))
    noise = np.array([pairs_module._posterior_noise(post.cov, rng) for _ in range(4000)])
    # The draws have the posterior's covariance (so an uncertain item moves more than a settled one).
    assert np.allclose(np.cov(noise.T), post.cov, atol=0.1 * post.cov.diagonal().max())
    greedy = [
        AdaptiveSelector(posterior=post, sample=False, rng=np.random.default_rng(s)).next_pairs(n_pairs=6)
        for s in range(2)
    ]
    drawn = [AdaptiveSelector(posterior=post, rng=np.random.default_rng(s)).next_pairs(n_pairs=6) for s in range(8)]
    as_sets = [{tuple(sorted(p)) for p in pairs.tolist()} for pairs in greedy + drawn]
    # On the mean, the pick is the same for every participant; on a draw it varies between them.
    assert as_sets[0] == as_sets[1]
    assert len({frozenset(x) for x in as_sets[2:]}) > 1


def test_adaptive_design_needs_fewer_comparisons_than_random():
    truth = random_truth(n_items=30, sd=2.0, seed=3)
    curve = compare_designs(truth=truth, budgets=[150, 300, 600, 1200], reps=3, batch=10, progress=False)
    target = curve.loc[(curve["design"] == "random") & (curve["comparisons"] == 1200), "rmse"].item()
    adaptive_needs = comparisons_to_reach(curve, design="adaptive", rmse=target)
    assert adaptive_needs < 0.8 * 1200, adaptive_needs


def normal_scale(*, n_items, sd):
    """A deterministic normal scale: the normal quantiles at (i + 1/2) / n, times sd."""
    return stats.norm.ppf((np.arange(n_items) + 0.5) / n_items) * sd


def test_comparison_information_is_the_thurstone_fisher_information():
    # At a tie: JOD^2 phi(0)^2 / (1/2 * 1/2) = JOD^2 * 2 / pi.
    assert comparison_information(difference=np.zeros(1))[0] == pytest.approx(JOD**2 * 2 / np.pi)
    # Minus the expected second derivative of the log-likelihood in the difference, by finite differences.
    h = 1e-4
    for d in (0.3, 1.5, 4.0):

        def loglik(x, win):
            return special.log_ndtr(JOD * x) if win else special.log_ndtr(-JOD * x)

        p = special.ndtr(JOD * d)
        curvature = [-(loglik(d + h, w) - 2 * loglik(d, w) + loglik(d - h, w)) / h**2 for w in (True, False)]
        expected = p * curvature[0] + (1 - p) * curvature[1]
        assert comparison_information(difference=np.array([d]))[0] == pytest.approx(expected, rel=1e-4)
    # Averaged over all pairs of a normal scale it is the closed-form mean over d ~ N(0, 2 sd^2).
    sd = 2.0
    truth = normal_scale(n_items=400, sd=sd)
    a, b = np.triu_indices(len(truth), k=1)
    over_pairs = comparison_information(difference=truth[a] - truth[b]).mean()
    grid = np.linspace(-12 * sd, 12 * sd, 20001)
    closed = np.trapezoid(comparison_information(difference=grid) * stats.norm.pdf(grid, 0, np.sqrt(2) * sd), grid)
    assert over_pairs == pytest.approx(closed, rel=0.01)
    # Far-apart pairs carry almost nothing, computed without 0/0.
    far = comparison_information(difference=np.array([40.0, -60.0]))
    assert np.all(np.isfinite(far)) and np.all(far < 1e-100)


def test_max_design_saving_is_zero_for_a_flat_scale_and_grows_with_spread():
    assert max_design_saving(truth=np.zeros(20)) == pytest.approx(0.0, abs=1e-6)
    bounds = [max_design_saving(truth=normal_scale(n_items=30, sd=sd)) for sd in (0.5, 1.0, 2.0, 3.0)]
    assert all(0.0 < x < 1.0 for x in bounds)
    assert np.all(np.diff(bounds) > 0), bounds
    with pytest.raises(PairwiseError):
        max_design_saving(truth=np.zeros(1))


def test_no_pair_design_saves_more_than_max_design_saving():
    # Asymptotically the squared error is tr L+ of the per-comparison information Laplacian, so a design with
    # comparison shares w needs tr L+(w) / tr L+(random) as many comparisons as random pairs for the same error.
    n = 30
    truth = normal_scale(n_items=n, sd=2.0)
    a, b = np.triu_indices(n, k=1)
    info = comparison_information(difference=truth[a] - truth[b])
    tie = comparison_information(difference=np.zeros(1))[0]
    centre = np.full((n, n), 1.0 / n)

    def trace(shares):
        return np.trace(np.linalg.inv(_pair_information(a, b, shares / shares.sum() * info, n) + centre) - centre)

    random_trace = trace(np.ones(len(a)))
    bound = max_design_saving(truth=truth)
    designs = {f"near ties, rank distance <= {k}": (b - a <= k).astype(float) + 1e-12 for k in (1, 2, 3, 5, 8)}
    designs |= {"most informative pairs more often": info, "least informative more often": 1 / info}
    rng = np.random.default_rng(0)
    designs |= {f"random subset {r}": (rng.random(len(a)) < 0.3) + 1e-12 for r in range(5)}
    for name, shares in designs.items():
        assert 1 - trace(shares) / random_trace <= bound + 1e-4, name
    # Comparing only near ties saves nothing: it leaves a long chain to cross. The optimal shares attain the bound.
    assert 1 - trace(designs["near ties, rank distance <= 1"]) / random_trace < 0
    pairs, optimal, optimal_trace, lower = optimal_pair_shares(truth=truth)
    assert np.array_equal(pairs, np.column_stack([a, b]))
    assert optimal.min() >= 0 and optimal.sum() == pytest.approx(1.0)
    assert trace(optimal) == pytest.approx(optimal_trace) and lower <= optimal_trace <= lower * (1 + 1e-4)
    assert 1 - optimal_trace / random_trace == pytest.approx(bound, abs=1e-3)
    # Stopped early, the lower bound is looser but still one.
    _, _, early_trace, early_lower = optimal_pair_shares(truth=truth, max_iter=3)
    assert early_lower < lower <= optimal_trace < early_trace
    # Looser bounds it must respect: every comparison at a tie's information on the evenly weighted complete graph.
    assert bound <= 1 - (n - 1) ** 2 / (2 * tie * random_trace)


def test_max_design_saving_is_not_the_mean_information_of_random_pairs():
    # 1 - mean I(d) / I(0) would hold if random pairs spread their information evenly and a design could put
    # every comparison on a tie; neither is true, and the ratio errs both ways.
    def naive(truth):
        a, b = np.triu_indices(len(truth), k=1)
        info = comparison_information(difference=truth[a] - truth[b])
        return 1 - info.mean() / comparison_information(difference=np.zeros(1))[0]

    close = normal_scale(n_items=30, sd=1.0)
    assert max_design_saving(truth=close) < naive(close) - 0.05
    # bench/pairwise.py's SD-3 scale: its outlying stimuli are far from most others, so random pairs measure them badly.
    wide = random_truth(n_items=60, sd=3.0, seed=1)
    assert max_design_saving(truth=wide) > naive(wide) + 0.05

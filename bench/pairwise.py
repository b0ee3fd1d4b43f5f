"""Pair designs by simulation: scale precision of random, balanced and adaptive pairs per budget.

For a latent Thurstone scale (in JOD) of N stimuli, each design collects comparisons in batches of
one participant's pairs; at each budget the scale is refitted and scored against the truth (RMSE,
mean 95 % CI width). The last table says how many comparisons the adaptive design needs to match
the random design's precision at its largest budget, beside the most that any pair design can save on
that true scale (`max_design_saving`, a large-sample bound) and what an oracle that knows the truth and lays
its comparisons out on the A-optimal shares (`optimal_pair_shares`) saves in the same simulation; then what the
adaptive bookkeeping costs per answer (posterior update) and per participant (choosing the pairs).

    .venv/bin/python bench/pairwise.py [--stimuli 60] [--reps 6] [--spread 1.0,2.0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.pairs import AdaptiveSelector, ScalePosterior
from analysis.pairwise import (
    JOD,
    Comparisons,
    compare_designs,
    comparisons_to_reach,
    fit_scale,
    max_design_saving,
    optimal_pair_shares,
    random_truth,
)


def adaptive_costs(n_items: int) -> tuple[float, float]:
    """Milliseconds per posterior update and per 20-pair selection at `n_items` stimuli."""
    rng = np.random.default_rng(0)
    post = ScalePosterior.prior(n_items=n_items)
    start = time.perf_counter()
    for _ in range(200):
        a, b = rng.choice(n_items, 2, replace=False)
        post.update(winner=int(a), loser=int(b))
    update_ms = (time.perf_counter() - start) / 200 * 1000
    selector = AdaptiveSelector(posterior=post, rng=rng)
    start = time.perf_counter()
    for _ in range(5):
        selector.next_pairs(n_pairs=20)
    return update_ms, (time.perf_counter() - start) / 5 * 1000


def oracle_curve(*, truth: np.ndarray, budgets: list[int], reps: int, seed: int = 0) -> pd.DataFrame:
    """Mean RMSE and CI width per budget with the comparisons laid out on the A-optimal shares of the true scale.

    The oracle picks its counts, so they are the shares times the budget, rounded systematically (none of the
    uneven counts of random pairs); answers and fit are those of `simulate_design`.
    """
    pairs, shares, _, _ = optimal_pair_shares(truth=truth)
    rng = np.random.default_rng(seed)
    n, rows = len(truth), []
    for budget in budgets:
        for _ in range(reps):
            ends = np.floor(np.cumsum(shares / shares.sum()) * budget + rng.random())
            counts = np.diff(ends, prepend=0.0).astype(int)
            a, b = np.repeat(pairs[:, 0], counts), np.repeat(pairs[:, 1], counts)
            first_wins = rng.random(len(a)) < special.ndtr(JOD * (truth[a] - truth[b]))
            winner, loser = np.where(first_wins, a, b), np.where(first_wins, b, a)
            comps = Comparisons(
                tuple(map(str, range(n))), winner, loser, np.ones(len(a)), np.zeros(len(a), dtype=int), ("sim",)
            )
            fit = fit_scale(comps, model="thurstone", prior_sd=3.0)
            rmse = float(np.sqrt(np.mean((fit.scores - (truth - truth.mean())) ** 2)))
            rows.append(
                {"design": "oracle", "comparisons": budget, "rmse": rmse, "mean_ci_width": 2 * 1.96 * fit.se.mean()}
            )
    return pd.DataFrame(rows).groupby(["design", "comparisons"], as_index=False)[["rmse", "mean_ci_width"]].mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stimuli", type=int, default=60)
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=20, help="pairs per participant")
    parser.add_argument("--spread", default="1.0,2.0", help="SDs of the true scale in JOD, comma-separated")
    args = parser.parse_args()
    n = args.stimuli
    budgets = [n * m for m in (5, 10, 20, 40)]
    summary = []
    for spread in (float(v) for v in args.spread.split(",")):
        truth = random_truth(n_items=n, sd=spread, seed=1)
        curve = compare_designs(
            truth=truth, budgets=budgets, designs=("random", "balanced", "adaptive"), reps=args.reps, batch=args.batch
        )
        print(f"\n{n} stimuli, true scale SD {spread} JOD, {args.reps} simulated studies per design")
        print(
            f"{'comparisons':>12}"
            + "".join(f"{d + ' RMSE':>16}{d + ' CI':>14}" for d in ("random", "balanced", "adaptive"))
        )
        for budget in budgets:
            cells = ""
            for design in ("random", "balanced", "adaptive"):
                row = curve[(curve["design"] == design) & (curve["comparisons"] == budget)].iloc[0]
                cells += f"{row['rmse']:>16.3f}{row['mean_ci_width']:>14.3f}"
            print(f"{budget:>12}{cells}")
        last = curve[(curve["design"] == "random") & (curve["comparisons"] == budgets[-1])]
        target, width = last["rmse"].item(), last["mean_ci_width"].item()
        needed = comparisons_to_reach(curve, design="adaptive", rmse=target)
        needed_ci = comparisons_to_reach(curve, design="adaptive", rmse=width, metric="mean_ci_width")
        oracle = oracle_curve(truth=truth, budgets=budgets, reps=args.reps)
        oracle_needs = (
            comparisons_to_reach(oracle, design="oracle", rmse=target),
            comparisons_to_reach(oracle, design="oracle", rmse=width, metric="mean_ci_width"),
        )
        summary.append(
            (spread, budgets[-1], target, needed, width, needed_ci, max_design_saving(truth=truth), oracle_needs)
        )
    print("\nComparisons the adaptive design needs to match the random design at its largest budget, by RMSE and by")
    print("mean CI width (the CI criterion flatters the adaptive design wherever its RMSE exceeds its Laplace SE).")
    print(
        "'any design': the most that any pair design, even one that knows the truth, can save against random pairs at"
    )
    print(
        "equal squared error on this scale (`max_design_saving`, large-sample); 'of it': each saving as a share of it."
    )
    print(
        f"{'scale SD':>9}{'random n':>10}{'its RMSE':>10}{'adaptive n':>12}{'saving':>8}{'its CI':>9}"
        f"{'adaptive n':>12}{'saving':>8}{'any design':>12}{'of it RMSE':>12}{'of it CI':>10}"
    )

    def shown(needed: float, budget: int, bound: float) -> tuple[str, str, str]:
        if np.isnan(needed):
            return "> max", "-", "-"
        saving = 1 - needed / budget
        return f"{needed:.0f}", f"{saving:.0%}", f"{saving / bound:.0%}" if saving > 0 and bound > 0 else "-"

    for spread, budget, target, needed, width, needed_ci, bound, _ in summary:
        n_rmse, s_rmse, f_rmse = shown(needed, budget, bound)
        n_ci, s_ci, f_ci = shown(needed_ci, budget, bound)
        print(
            f"{spread:>9}{budget:>10}{target:>10.3f}{n_rmse:>12}{s_rmse:>8}{width:>9.3f}{n_ci:>12}{s_ci:>8}"
            f"{bound:>12.0%}{f_rmse:>12}{f_ci:>10}"
        )
    print("\nThe same for an oracle that knows the truth and gives each pair its A-optimal share of the comparisons")
    print("(the design behind the bound), simulated like the designs above: what the large-sample bound buys at these")
    print("budgets, with few comparisons per pair and the fit's weak prior.")
    print(f"{'scale SD':>9}{'oracle n':>10}{'saving':>8}{'oracle n (CI)':>15}{'saving':>8}")
    for spread, budget, _, _, _, _, bound, (oracle_n, oracle_ci) in summary:
        n_rmse, s_rmse, _ = shown(oracle_n, budget, bound)
        n_ci, s_ci, _ = shown(oracle_ci, budget, bound)
        print(f"{spread:>9}{n_rmse:>10}{s_rmse:>8}{n_ci:>15}{s_ci:>8}")
    print(f"\n{'stimuli':>8}{'update ms':>11}{'20 pairs ms':>13}   (adaptive bookkeeping, one CPU thread)")
    for size in (60, 200, 600):
        update_ms, select_ms = adaptive_costs(size)
        print(f"{size:>8}{update_ms:>11.3f}{select_ms:>13.2f}")


if __name__ == "__main__":
    main()

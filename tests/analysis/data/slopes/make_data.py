"""Write the random-slopes dataset that make_reference.R fits with lme4 + lmerTest (run from the repo root)."""

from pathlib import Path

from analysis.simulation import CrossedDesign, simulate_ratings

HERE = Path(__file__).resolve().parent

data = simulate_ratings(
    design=CrossedDesign(40, 30, 30, conditions=("baseline", "artistic-1.0", "symbolic")),
    effects={"artistic-1.0": 0.5, "symbolic": 0.2},
    sd_participant=0.8,
    sd_stimulus=0.5,
    sd_residual=1.0,
    sd_slope=0.5,
    seed=303,
)
data = data[["participant", "stimulus", "condition", "response"]].assign(response=lambda d: d["response"].round(4))
data.to_csv(HERE / "slopes.csv", index=False)

# An unbalanced version (a fifth of the ratings missing at random), where Kenward-Roger and Satterthwaite differ.
data.sample(frac=0.8, random_state=7).sort_index().to_csv(HERE / "slopes-unbalanced.csv", index=False)

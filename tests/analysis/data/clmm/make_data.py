"""Write the two small Likert datasets that make_reference.R fits with ordinal::clmm (run from the repo root)."""

from pathlib import Path

from analysis.simulation import CrossedDesign, simulate_ratings

HERE = Path(__file__).resolve().parent
COLUMNS = ["participant", "stimulus", "condition", "response"]

a = simulate_ratings(
    design=CrossedDesign(60, 40, 20),
    effects={"artistic-0.5": 0.4, "artistic-1.0": 0.8, "symbolic": 0.3},
    sd_participant=0.8,
    sd_stimulus=0.5,
    scale=(1, 7),
    seed=101,
)
a[COLUMNS].assign(response=a["response"].astype(int)).to_csv(HERE / "likert-a.csv", index=False)

b = simulate_ratings(
    design=CrossedDesign(30, 24, 24, conditions=("baseline", "artistic-1.0", "symbolic")),
    effects={"artistic-1.0": 0.6, "symbolic": -0.3},
    intercept=3.0,
    sd_participant=0.6,
    sd_stimulus=0.4,
    sd_residual=0.9,
    scale=(1, 5),
    seed=202,
)
b[COLUMNS].assign(response=b["response"].astype(int)).to_csv(HERE / "likert-b.csv", index=False)

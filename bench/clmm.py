"""Time the cumulative-link mixed model against ordinal::clmm on the vendored reference data.

    .venv/bin/python bench/clmm.py [--repeat 3] [--type1 200]

clmm's times come from tests/analysis/data/clmm/clmm-times.csv (written by make_reference.R on this
machine); ours are measured here, best of --repeat runs, wall and CPU seconds, with the largest relative
difference from clmm's estimates (thresholds, effects, SDs, logLik). ``--type1 N`` adds the Type I error of
the condition effect on N null Likert datasets (20 participants x 20 stimuli, 10 per condition, 1-7 scale).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.clmm import fit_clmm  # noqa: E402
from analysis.simulation import CrossedDesign, simulate_ratings  # noqa: E402

DATA = ROOT / "tests" / "analysis" / "data" / "clmm"


def read_dataset(name: str) -> pd.DataFrame:
    if name == "validation-artistry":
        data = pd.read_csv(DATA.parent / "validation" / "ratings-reference.csv.gz")
        return data[data["dimension"] == "artistry"]
    return pd.read_csv(DATA / f"{name}.csv")


def max_relative_difference(fit, reference: pd.DataFrame) -> float:
    ours = {f"condition{r.term[12:-1]}": r.estimate for r in fit.to_frame().itertuples()}
    ours |= {r.term: r.estimate for r in fit.thresholds().itertuples()} | fit.sd | {"logLik": fit.loglik}
    return float(max(abs(ours[r.term] - r.estimate) / abs(r.estimate) for r in reference.itertuples()))


def type1(n_datasets: int) -> None:
    design = CrossedDesign(20, 20, 20, conditions=("baseline", "artistic-1.0"))
    rejected = []
    for seed in range(n_datasets):
        data = simulate_ratings(design=design, scale=(1, 7), seed=10_000 + seed)
        rejected.append(fit_clmm(data, dimension="artistry").to_frame()["p_value"].iloc[0] < 0.05)
    rate = float(np.mean(rejected))
    se = np.sqrt(rate * (1 - rate) / n_datasets)
    print(f"CLMM Type I error at .05: {rate:.3f} ± {se:.3f} ({n_datasets} datasets)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--type1", type=int, default=0, help="null datasets for the Type I error (0: skip)")
    args = parser.parse_args()
    if args.type1:
        type1(args.type1)
    reference = pd.read_csv(DATA / "clmm-reference.csv")
    times = pd.read_csv(DATA / "clmm-times.csv")
    rows = []
    for row in times.itertuples():
        data = read_dataset(row.dataset)
        wall, cpu = np.inf, np.inf
        for _ in range(args.repeat):
            w, c = time.perf_counter(), time.process_time()
            fit = fit_clmm(data, link=row.link)
            wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
        ref = reference[(reference["dataset"] == row.dataset) & (reference["link"] == row.link)]
        rows.append(
            {
                "dataset": row.dataset,
                "link": row.link,
                "n": row.n,
                "clmm_wall_s": row.seconds,
                "clmm_cpu_s": getattr(row, "cpu_seconds", np.nan),
                "ours_wall_s": round(wall, 2),
                "ours_cpu_s": round(cpu, 2),
                "max_rel_diff": f"{max_relative_difference(fit, ref):.1e}",
            }
        )
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()

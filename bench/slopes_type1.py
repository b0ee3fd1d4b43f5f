"""Type I error of the random-slopes model, Satterthwaite t (as lmerTest) against Wald z.

    .venv/bin/python bench/slopes_type1.py [--datasets 400] [--participants 30] [--stimuli 15]

Null data (no condition effect) with participant-by-condition deviations, fitted with
``response ~ condition + (1 + condition | participant) + (1 | stimulus)``; prints the share of
condition coefficients with p < .05 for both reference distributions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.simulation import CrossedDesign, null_rejection_rates

FORMULA = "response ~ condition + (1 + condition | participant) + (1 | stimulus)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=400)
    parser.add_argument("--participants", type=int, default=30)
    parser.add_argument("--stimuli", type=int, default=15)
    parser.add_argument("--conditions", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    conditions = ("baseline", *[f"c{i}" for i in range(1, args.conditions)])
    design = CrossedDesign(args.participants, args.stimuli, args.stimuli, conditions=conditions)
    started = time.perf_counter()
    rates = null_rejection_rates(
        design=design, formula=FORMULA, n_datasets=args.datasets, seed=args.seed, progress=True
    )
    rates["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(rates, indent=2))


if __name__ == "__main__":
    main()

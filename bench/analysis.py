"""Benchmark the crossed-LMM engine: fit time and peak memory for 12k, 60k and 240k ratings.

Each case runs in a fresh subprocess so peak RSS (ru_maxrss) belongs to that case alone. statsmodels
MixedLM (dense and use_sparse) is timed on the 12k design only; lme4 too when Rscript and lme4 are installed.

    .venv/bin/python bench/analysis.py [--skip-statsmodels] [--lme4]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"12k": (300, 200, 40), "60k": (1000, 600, 60), "240k": (4000, 1200, 60)}

CASE = r"""
import json, resource, sys, time, tracemalloc
sys.path.insert(0, {root!r})
from analysis.simulation import CrossedDesign, simulate_ratings
engine, n_p, n_s, k = {engine!r}, {n_p}, {n_s}, {k}
data = simulate_ratings(design=CrossedDesign(n_p, n_s, k), effects={{"artistic-1.0": 0.5, "symbolic": 0.3}},
                        scale=(1, 7), seed=1)
if {csv!r}:
    data.to_csv({csv!r}, index=False)
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
tracemalloc.start()
start = time.perf_counter()
if engine == "fast":
    from analysis import fit_ratings
    fit = fit_ratings(data, dimension="artistry")
    fit.to_frame()  # estimates, SEs and Satterthwaite df: the full inference, not just the optimum
    loglik, sd = fit.loglik, fit.variance_components()["sd"].round(4).tolist()
else:
    import statsmodels.formula.api as smf
    d = data.assign(whole=1)
    model = smf.mixedlm("response ~ C(condition, Treatment('baseline'))", d, groups="whole", re_formula="0",
                        vc_formula={{"participant": "0 + C(participant)", "stimulus": "0 + C(stimulus)"}},
                        use_sparse=(engine == "statsmodels-sparse"))
    res = model.fit(reml=True, method=["lbfgs"])
    loglik, sd = res.llf, [round(v ** 0.5, 4) for v in [*res.vcomp, res.scale]]
seconds = time.perf_counter() - start
traced = tracemalloc.get_traced_memory()[1] / 2**20
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(dict(seconds=seconds, traced_mb=traced, rss_mb=rss, rss_before_mb=rss_before, loglik=loglik,
                      sd=sd, n=len(data))))
"""

LME4 = r"""
suppressMessages(library(lme4))
d <- read.csv("{csv}")
d$condition <- relevel(factor(d$condition), ref = "baseline")
t <- system.time(m <- lmer(response ~ condition + (1 | participant) + (1 | stimulus), d, REML = TRUE))
cat(sprintf('{{"seconds": %f, "loglik": %f}}\n', t[["elapsed"]], as.numeric(logLik(m))))
"""


def run_case(engine: str, size: str, csv: str = "") -> dict:
    n_p, n_s, k = SIZES[size]
    code = CASE.format(root=str(ROOT), engine=engine, n_p=n_p, n_s=n_s, k=k, csv=csv)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_lme4(csv: str) -> dict | None:
    if not shutil.which("Rscript"):
        return None
    out = subprocess.run(["Rscript", "-e", LME4.format(csv=csv)], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-statsmodels", action="store_true")
    parser.add_argument("--lme4", action="store_true", help="also time lme4 via Rscript (if installed)")
    args = parser.parse_args()
    cases = [("fast", s) for s in SIZES]
    if not args.skip_statsmodels:
        cases += [("statsmodels-sparse", "12k"), ("statsmodels-dense", "12k")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for engine, size in tqdm(cases, desc="benchmark"):
            csv = str(Path(tmp) / f"{size}.csv") if args.lme4 and engine == "fast" else ""
            result = run_case(engine, size, csv)
            rows.append((engine, size, result))
            if csv:
                lme4 = run_lme4(csv)
                if lme4:
                    rows.append(("lme4 (R)", size, {**lme4, "n": result["n"]}))
    print(f"\n{'engine':<20}{'size':>6}{'ratings':>9}{'fit s':>9}{'peak RSS MB':>13}{'traced MB':>11}"
          f"{'REML logLik':>15}  SDs (participant, stimulus, residual)")
    for engine, size, r in rows:
        rss = f"{r['rss_mb']:.0f}" if "rss_mb" in r else "-"
        traced = f"{r['traced_mb']:.0f}" if "traced_mb" in r else "-"
        print(f"{engine:<20}{size:>6}{r['n']:>9}{r['seconds']:>9.2f}{rss:>13}{traced:>11}{r['loglik']:>15.3f}  "
              f"{r.get('sd', '')}")
    print("\npeak RSS: whole process (includes ~150-250 MB of Python, pandas and the simulated data); "
          "traced: Python allocations during the fit only.")


if __name__ == "__main__":
    main()

"""Benchmark the analysis: the default report on 12k, 120k and 1M ratings; the engine's single fits (``--fits``).

Report mode (default): each size's export (two dimensions, 1-7 scale) is simulated and written to Parquet in one
process; the report (`python -m analysis report` with its defaults) then runs in a fresh process, so its wall
time, CPU time and peak RSS (ru_maxrss) belong to the report alone. The slowest sections come from the report's
own timings.csv. On a shared machine compare CPU seconds; wall seconds include other people's work.

Fit mode (``--fits``): one main-model fit for 12k, 60k and 240k ratings; statsmodels MixedLM (dense and
use_sparse) on the 12k design only; lme4 too when Rscript and lme4 are installed.

    .venv/bin/python bench/analysis.py [--sizes 12k,120k,1M]
    .venv/bin/python bench/analysis.py --fits [--skip-statsmodels] [--lme4]
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
# participants, stimuli, ratings per participant; two dimensions each (the 120k: 1000 x 600 x 60 x 2).
REPORT_SIZES = {"12k": (300, 200, 20), "120k": (1000, 600, 60), "1M": (5000, 1200, 100)}

SIMULATE = r"""
import sys
sys.path.insert(0, {root!r})
from analysis.simulation import CrossedDesign, simulate_ratings
data = simulate_ratings(design=CrossedDesign({n_p}, {n_s}, {k}), effects={{"artistic-1.0": 0.5, "symbolic": 0.3}},
                        dimensions=("artistry", "symbolism"), scale=(1, 7), draws=2, seed=1)
data.to_parquet({path!r})
print(len(data))
"""

REPORT = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
wall, cpu = time.perf_counter(), time.process_time()
from analysis import build_report
outcome = build_report({path!r}, {out!r})
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps(dict(seconds=time.perf_counter() - wall, cpu_seconds=time.process_time() - cpu,
                      rss_mb=usage.ru_maxrss / 1024, skipped=len(outcome.skipped))))
"""

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


def run_report(size: str, folder: Path) -> dict:
    import pandas as pd

    n_p, n_s, k = REPORT_SIZES[size]
    path, out = str(folder / f"{size}.parquet"), str(folder / f"report-{size}")
    made = subprocess.run(
        [sys.executable, "-c", SIMULATE.format(root=str(ROOT), n_p=n_p, n_s=n_s, k=k, path=path)],
        capture_output=True,
        text=True,
        check=True,
    )
    done = subprocess.run(
        [sys.executable, "-c", REPORT.format(root=str(ROOT), path=path, out=out)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    timings = pd.read_csv(Path(out) / "timings.csv")
    slowest = timings.groupby("section")["seconds"].sum().sort_values(ascending=False).head(3)
    return {
        **result,
        "n": int(made.stdout.strip().splitlines()[-1]),
        "slowest": ", ".join(f"{name} {sec:.1f}" for name, sec in slowest.items()),
    }


def report_main(sizes: list[str]) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in tqdm(sizes, desc="report benchmark"):
            rows.append((size, run_report(size, Path(tmp))))
    print(f"\n{'size':>6}{'ratings':>10}{'report s':>10}{'CPU s':>8}{'peak RSS MB':>13}  slowest sections (wall s)")
    for size, r in rows:
        print(f"{size:>6}{r['n']:>10}{r['seconds']:>10.1f}{r['cpu_seconds']:>8.1f}{r['rss_mb']:>13.0f}  {r['slowest']}")
    print(
        "\nreport s / CPU s: the whole `build_report` call in a fresh process (imports included); peak RSS: that "
        "process."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", action="store_true", help="time single main-model fits instead of the report")
    parser.add_argument("--sizes", default=",".join(REPORT_SIZES), help=f"report sizes, of {', '.join(REPORT_SIZES)}")
    parser.add_argument("--skip-statsmodels", action="store_true")
    parser.add_argument("--lme4", action="store_true", help="also time lme4 via Rscript (if installed)")
    args = parser.parse_args()
    if not args.fits:
        sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
        unknown = [s for s in sizes if s not in REPORT_SIZES]
        if unknown:
            parser.error(f"unknown size(s) {', '.join(unknown)}; choose from {', '.join(REPORT_SIZES)}")
        report_main(sizes)
        return
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
    print(
        f"\n{'engine':<20}{'size':>6}{'ratings':>9}{'fit s':>9}{'peak RSS MB':>13}{'traced MB':>11}"
        f"{'REML logLik':>15}  SDs (participant, stimulus, residual)"
    )
    for engine, size, r in rows:
        rss = f"{r['rss_mb']:.0f}" if "rss_mb" in r else "-"
        traced = f"{r['traced_mb']:.0f}" if "traced_mb" in r else "-"
        print(
            f"{engine:<20}{size:>6}{r['n']:>9}{r['seconds']:>9.2f}{rss:>13}{traced:>11}{r['loglik']:>15.3f}  "
            f"{r.get('sd', '')}"
        )
    print(
        "\npeak RSS: whole process (includes ~150-250 MB of Python, pandas and the simulated data); "
        "traced: Python allocations during the fit only."
    )


if __name__ == "__main__":
    main()

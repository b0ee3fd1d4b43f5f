"""The study report: exclusions → models per dimension → reliability → tables (CSV, LaTeX) and one HTML file."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from tqdm.auto import tqdm

from analysis import figures
from analysis.engine import ModelFitError
from analysis.exclusions import ExclusionOutcome, ExclusionRules, apply_exclusions
from analysis.models import DEFAULT_FORMULA, LikelihoodRatioTest, RatingsFit, fit_ratings, likelihood_ratio_test
from analysis.ordinal import fit_ordinal
from analysis.ratings import DESCRIPTOR_COLUMNS, REFERENCE_CONDITION, RatingsError, conditions_in_order, load_ratings
from analysis.reliability import dimension_correlation, reliability_table, stimulus_means

RANDOM_PART = "(1 | participant) + (1 | stimulus)"
SLOPES_FORMULA = "response ~ condition + (1 + condition | participant) + (1 | stimulus)"
FIXED_COLUMNS = ["dimension", "model", "term", "estimate", "std_error", "ci_low", "ci_high", "p_value"]
VARIANCE_COLUMNS = ["dimension", "model", "group", "variance", "sd", "reml_loglik"]


@dataclass
class DimensionAnalysis:
    """Everything fitted for one rating dimension."""

    dimension: str
    fits: dict[str, RatingsFit]
    lrt: LikelihoodRatioTest | None
    emmeans: pd.DataFrame
    contrasts: pd.DataFrame
    standardized: pd.DataFrame
    ordinal: pd.DataFrame | None = None
    dose_curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    class_emmeans: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def main(self) -> RatingsFit:
        return self.fits["main"]


@dataclass
class StudyAnalysis:
    """The whole analysis, ready to be written as tables and rendered."""

    raw: pd.DataFrame
    exclusions: ExclusionOutcome
    rules: ExclusionRules
    dimensions: dict[str, DimensionAnalysis]
    reliability: pd.DataFrame
    correlation: dict
    seconds: float = 0.0

    @property
    def ratings(self) -> pd.DataFrame:
        return self.exclusions.ratings

    def fixed_effects(self) -> pd.DataFrame:
        frames = [fit.to_frame().assign(dimension=dim, model=name)
                  for dim, a in self.dimensions.items() for name, fit in a.fits.items()]
        return pd.concat(frames, ignore_index=True)[FIXED_COLUMNS]

    def variance_components(self) -> pd.DataFrame:
        frames = [fit.variance_components().assign(dimension=dim, model=name, reml_loglik=fit.loglik)
                  for dim, a in self.dimensions.items() for name, fit in a.fits.items()]
        return pd.concat(frames, ignore_index=True)[VARIANCE_COLUMNS]

    def table(self, attribute: str) -> pd.DataFrame:
        frames = [getattr(a, attribute).assign(dimension=dim) for dim, a in self.dimensions.items()
                  if getattr(a, attribute) is not None]
        if not frames:
            return pd.DataFrame()
        frame = pd.concat(frames, ignore_index=True)
        return frame[["dimension", *[c for c in frame.columns if c != "dimension"]]]

    def lrt_table(self) -> pd.DataFrame:
        return pd.DataFrame([{"dimension": d, **a.lrt.to_dict()} for d, a in self.dimensions.items() if a.lrt])


def _try_fit(notes: list[str], label: str, *args, **kwargs) -> RatingsFit | None:
    """Optional variants may not be estimable on every dataset; record why instead of failing the report."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fit_ratings(*args, **kwargs)
    except (ModelFitError, RatingsError, np.linalg.LinAlgError, ValueError) as exc:
        notes.append(f"{label}: not fitted ({str(exc).splitlines()[0]})")
        return None


def analyse_dimension(ratings: pd.DataFrame, dimension: str, *, reference: str = REFERENCE_CONDITION,
                      formula: str = DEFAULT_FORMULA, slopes: bool = True, ordinal: bool = True,
                      classes: bool = True) -> DimensionAnalysis:
    """Main model, its tests and tables, and the pre-specified variants for one dimension."""
    data = ratings[ratings["dimension"] == dimension]
    main = fit_ratings(data, formula, dimension=dimension, reference=reference, name="main")
    fits: dict[str, RatingsFit] = {"main": main}
    notes: list[str] = []
    try:
        lrt = likelihood_ratio_test(data, formula, dimension=dimension, reference=reference)
    except (ModelFitError, RatingsError) as exc:
        lrt = None
        notes.append(f"likelihood-ratio test: not computed ({exc})")
    emm = main.emmeans("condition")
    epsilon_by_condition = data.groupby("condition")["epsilon"].first()
    emm["epsilon"] = emm["condition"].map(epsilon_by_condition)

    # Dose models use the reference and the conditions with ε > 0: other manipulations (e.g. symbolic) are not doses.
    dose = data[(data["condition"] == reference) | (data["epsilon"] > 0)]
    n_eps = dose["epsilon"].nunique()
    curves: dict[str, pd.DataFrame] = {"points": emm[emm["condition"].isin(dose["condition"].unique())]}
    grid = pd.DataFrame({"epsilon": np.linspace(dose["epsilon"].min(), dose["epsilon"].max(), 41)})
    if n_eps >= 2:
        fit = _try_fit(notes, "dose_linear", dose, f"response ~ epsilon + {RANDOM_PART}", dimension=dimension,
                       reference=reference, name="dose_linear")
        if fit:
            fits["dose_linear"] = fit
            curves["linear"] = fit.predict_fixed(grid)
    if n_eps >= 4:
        spline_df = min(3, n_eps - 2)
        fit = _try_fit(notes, "dose_spline", dose,
                       f"response ~ bs(epsilon, df={spline_df}, degree={min(2, spline_df)}) + {RANDOM_PART}",
                       dimension=dimension, reference=reference, name="dose_spline")
        if fit:
            fits["dose_spline"] = fit
            curves["spline"] = fit.predict_fixed(grid)
    else:
        notes.append(f"dose_spline: not fitted (needs ≥ 4 distinct ε values, found {n_eps})")

    class_emm = None
    n_classes = data["class_index"].nunique()
    if classes and 2 <= n_classes < data["stimulus"].nunique():
        fit = _try_fit(notes, "class", data, f"response ~ condition + C(class_index) + {RANDOM_PART}",
                       dimension=dimension, reference=reference, name="class")
        if fit:
            fits["class"] = fit
            class_emm = fit.emmeans("class_index").rename(columns={"emmean": "estimate"})
            counts = data.groupby("class_index")["stimulus"].nunique()
            class_emm["n_stimuli"] = class_emm["class_index"].astype(int).map(counts).to_numpy()
    descriptors = [c for c in DESCRIPTOR_COLUMNS if c in data.columns and pd.api.types.is_numeric_dtype(data[c])
                   and data[c].std() > 0]
    if descriptors:
        covariates = " + ".join(f"standardize({c})" for c in descriptors)
        fit = _try_fit(notes, "descriptors", data, f"response ~ condition + {covariates} + {RANDOM_PART}",
                       dimension=dimension, reference=reference, name="descriptors")
        if fit:
            fits["descriptors"] = fit
    if slopes:
        fit = _try_fit(notes, "slopes", data, SLOPES_FORMULA, dimension=dimension, reference=reference,
                       name="slopes", theta0=_slopes_start(main))
        if fit:
            fits["slopes"] = fit
    ordinal_table = None
    if ordinal:
        try:
            ordinal_table = fit_ordinal(data, dimension=dimension, reference=reference).drop(columns="dimension")
        except (ValueError, np.linalg.LinAlgError) as exc:
            notes.append(f"ordinal model: not fitted ({exc})")
    return DimensionAnalysis(dimension=dimension, fits=fits, lrt=lrt, emmeans=emm, contrasts=main.contrasts(),
                             standardized=main.standardized_effects(), ordinal=ordinal_table, dose_curves=curves,
                             class_emmeans=class_emm, notes=notes)


def _slopes_start(main: RatingsFit) -> np.ndarray:
    """Warm start for ``(1 + condition | participant) + (1 | stimulus)`` from the intercepts-only fit."""
    q = 1 + len([t for t in main.term_names if t.startswith("condition[")])
    theta_participant = np.zeros(q * (q + 1) // 2)
    diagonal = np.cumsum([0, *range(q, 1, -1)])
    theta_participant[diagonal] = 0.1
    theta_participant[0] = max(main.result.theta[0], 0.05)
    return np.concatenate([theta_participant, [max(main.result.theta[1], 0.05)]])


def analyse_study(ratings: pd.DataFrame | str | Path, *, rules: ExclusionRules | None = None,
                  dimensions: list[str] | None = None, reference: str = REFERENCE_CONDITION, slopes: bool = True,
                  ordinal: bool = True, classes: bool = True, n_splits: int = 100, seed: int = 0,
                  progress: bool = False) -> StudyAnalysis:
    """Run every analysis of the report; no files are written."""
    started = time.perf_counter()
    raw = load_ratings(ratings)
    rules = rules or ExclusionRules()
    outcome = apply_exclusions(raw, rules)
    kept = outcome.ratings
    if kept.empty:
        raise RatingsError("no ratings left after exclusions; relax the exclusion rules")
    dims = dimensions or sorted(kept["dimension"].unique())
    missing = [d for d in dims if d not in set(kept["dimension"])]
    if missing:
        raise RatingsError(f"no ratings for dimension(s): {', '.join(missing)}")
    results = {}
    for dim in tqdm(dims, desc="models per dimension", disable=not progress):
        results[dim] = analyse_dimension(kept, dim, reference=reference, slopes=slopes, ordinal=ordinal,
                                         classes=classes)
    iccs = {d: a.main.icc() for d, a in results.items()}
    reliability = reliability_table(kept[kept["dimension"].isin(dims)], iccs, n_splits=n_splits, seed=seed)
    first, second = ("artistry", "symbolism") if {"artistry", "symbolism"} <= set(dims) else [*dims, None][:2]
    correlation = dimension_correlation(kept, first, second) if second else {}
    return StudyAnalysis(raw=raw, exclusions=outcome, rules=rules, dimensions=results, reliability=reliability,
                         correlation=correlation, seconds=time.perf_counter() - started)


# -- tables ---------------------------------------------------------------------------------------
def _latex(frame: pd.DataFrame, caption: str, label: str) -> str:
    return frame.to_latex(index=False, float_format="%.3f", caption=caption, label=label, escape=True)


def write_tables(analysis: StudyAnalysis, out_dir: Path) -> dict[str, Path]:
    """Every table as CSV, the paper's tables also as LaTeX."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {
        "fixed_effects": analysis.fixed_effects(),
        "variance_components": analysis.variance_components(),
        "exclusions": analysis.exclusions.flow,
        "excluded_participants": analysis.exclusions.excluded,
        "reliability": analysis.reliability,
        "contrasts": analysis.table("contrasts"),
        "emmeans": analysis.table("emmeans"),
        "standardized_effects": analysis.table("standardized"),
        "ordinal": analysis.table("ordinal"),
        "likelihood_ratio_tests": analysis.lrt_table(),
        "dimension_correlation": pd.DataFrame([analysis.correlation]) if analysis.correlation else pd.DataFrame(),
    }
    paths = {}
    for name, frame in tables.items():
        path = out_dir / f"{name}.csv"
        frame.to_csv(path, index=False)
        paths[name] = path
    captions = {
        "fixed_effects": "Fixed effects of the crossed mixed models (Wald 95\\% CIs).",
        "variance_components": "Variance components and REML log-likelihoods.",
        "exclusions": "Participant and rating flow through the exclusion rules.",
        "reliability": "Reliability per rating dimension.",
        "contrasts": "Conditions versus baseline (Holm-adjusted p-values).",
        "emmeans": "Estimated marginal means per condition.",
        "ordinal": "Cumulative-logit sensitivity analysis (two-way cluster-robust SEs).",
    }
    for name, caption in captions.items():
        if tables[name].empty:
            continue
        frame = tables[name]
        if name in {"fixed_effects", "variance_components"}:
            frame = frame[frame["model"] == "main"]
        path = out_dir / f"{name}.tex"
        path.write_text(_latex(frame, caption, f"tab:{name}"))
        paths[f"{name}_tex"] = path
    return paths


# -- text -----------------------------------------------------------------------------------------
def format_p(p: float) -> str:
    """APA style: no leading zero, '< .001' for tiny values."""
    if not np.isfinite(p):
        return "n/a"
    return "< .001" if p < 0.001 else f"= {p:.3f}".replace("0.", ".", 1)


def methods_text(analysis: StudyAnalysis) -> str:
    r = analysis.rules
    rules = []
    if r.drop_practice:
        rules.append("practice trials were dropped")
    if r.max_failed_attention is not None:
        rules.append(f"participants failing {r.max_failed_attention} or more attention checks were excluded")
    if r.require_completed_status:
        rules.append("participants whose session was not completed were excluded")
    if r.min_completion is not None:
        rules.append(f"participants with fewer than {r.min_completion:.0%} of the modal number of ratings were "
                     "excluded")
    if r.min_median_rt_ms is not None:
        rules.append(f"participants with a median response time below {r.min_median_rt_ms:.0f} ms were excluded")
    if r.min_response_sd is not None:
        rules.append(f"straight-liners (response SD ≤ {r.min_response_sd} within a dimension) were excluded")
    return (
        f"Before analysis, {'; '.join(rules)}. "
        "Each rating dimension was analysed with a linear mixed model with crossed random intercepts for "
        "participants and stimuli, response ~ condition + (1 | participant) + (1 | stimulus), fitted by restricted "
        "maximum likelihood (the profiled REML deviance of lme4, computed by this package's sparse-Cholesky engine), "
        "with the baseline condition as the reference level. Confidence intervals and p-values use t statistics with "
        "Satterthwaite degrees of freedom (as lmerTest; condition varies between stimuli, so the effective df follow "
        "the number of stimuli rather than of ratings); the random-slopes variant, with many variance parameters, "
        "uses Wald z. Contrasts of each "
        "condition with baseline are Holm-adjusted; the omnibus effect of condition was tested with a "
        "likelihood-ratio test of maximum-likelihood fits against the intercept-only model. Standardised effects d "
        "divide the estimate by the square root of the summed variance components (Westfall, Kenny & Judd, 2014). "
        "Pre-specified variants treated perturbation strength ε as a linear and a B-spline dose (baseline and "
        "ε > 0 conditions only), added image class as a factor, added standardised stimulus descriptors when "
        "available, and allowed by-participant random slopes for condition. As an ordinal sensitivity analysis we "
        "fitted a cumulative-logit model with standard errors clustered two-way by participant and stimulus. "
        "Reliability was summarised by the intra-class correlations implied by the variance components, the "
        "reliability of stimulus means, split-half reliability over random participant splits (Spearman-Brown "
        "corrected) and Krippendorff's alpha (interval and ordinal)."
    )


def results_text(analysis: StudyAnalysis) -> str:
    kept = analysis.ratings
    flow = analysis.exclusions.flow
    n_total = flow.iloc[0]["participants_remaining"]
    parts = [
        f"Of {n_total} participants, {kept['participant'].nunique()} were retained, contributing "
        f"{len(kept)} ratings of {kept['stimulus'].nunique()} stimuli."
    ]
    for dim, a in analysis.dimensions.items():
        sentence = f"For {dim}"
        if a.lrt is not None:
            verdict = "differed" if a.lrt.p_value < 0.05 else "did not differ reliably"
            sentence += (f", ratings {verdict} between conditions (χ²({a.lrt.df}) = {a.lrt.statistic:.2f}, "
                         f"p {format_p(a.lrt.p_value)})")
        sentence += ". Relative to baseline, " + "; ".join(
            f"{row.contrast.split(' - ')[0]} changed ratings by b = {row.estimate:.2f}, 95% CI "
            f"[{row.ci_low:.2f}, {row.ci_high:.2f}], d = {row.d:.2f}, p_Holm {format_p(row.p_holm)}"
            for row in a.contrasts.itertuples()
        ) + "."
        icc = a.main.icc()
        rel = analysis.reliability.set_index("dimension").loc[dim]
        sentence += (
            f" Participants accounted for {icc.get('icc_participant', np.nan):.0%} and stimuli for "
            f"{icc.get('icc_stimulus', np.nan):.0%} of the rating variance; the reliability of stimulus means was "
            f"{rel['stimulus_mean_reliability']:.2f} (split-half {rel['split_half']:.2f}; "
            f"Krippendorff's \u03b1 interval "
            f"{rel['alpha_interval']:.2f}, ordinal {rel['alpha_ordinal']:.2f})."
        )
        parts.append(sentence)
    c = analysis.correlation
    if c:
        parts.append(
            f"Across {c['n_stimuli']} stimuli, mean {c['first']} and {c['second']} ratings correlated r = "
            f"{c['pearson_r']:.2f}, 95% CI [{c['ci_low']:.2f}, {c['ci_high']:.2f}] "
            f"(Spearman \u03c1 = {c['spearman_rho']:.2f})."
        )
    return " ".join(parts)


# -- rendering ------------------------------------------------------------------------------------
def _html_table(frame: pd.DataFrame, digits: int = 3) -> Markup:
    def fmt(v: float) -> str:
        if not np.isfinite(v):
            return ""
        return f"{v:.2e}" if v != 0 and abs(v) < 10**-digits else f"{v:.{digits}f}"

    return Markup(frame.to_html(index=False, border=0, classes="table", float_format=fmt, na_rep=""))


def _image_grid(analysis: StudyAnalysis, base_dir: Path | None, n: int = 6) -> dict[str, list[dict]]:
    """Top- and bottom-rated stimuli of each dimension, when the export carries image paths or URLs."""
    kept = analysis.ratings
    column = next((c for c in ("image_path", "image_url") if c in kept.columns), None)
    if column is None:
        return {}
    sources = kept.groupby("stimulus")[column].first()
    grids = {}
    for dim in analysis.dimensions:
        means = kept[kept["dimension"] == dim].groupby("stimulus")["response"].agg(["mean", "size"])
        means = means.sort_values("mean")
        cells = []
        for label, chunk in (("top", means.iloc[::-1].head(n)), ("bottom", means.head(n))):
            for stim, row in chunk.iterrows():
                src = figures.image_source(sources.get(stim), base_dir)
                cells.append({"rank": label, "stimulus": stim, "mean": row["mean"], "n": int(row["size"]), "src": src})
        if any(c["src"] for c in cells):
            grids[dim] = cells
    return grids


def render_report(analysis: StudyAnalysis, *, base_dir: Path | None = None, title: str = "Rating study report") -> str:
    """The HTML report as a string (figures embedded)."""
    kept = analysis.ratings
    conditions = conditions_in_order(kept)
    dims = list(analysis.dimensions)
    plots = {"distributions": figures.rating_distributions(kept[kept["dimension"].isin(dims)], conditions)}
    curves = {d: a.dose_curves for d, a in analysis.dimensions.items() if len(a.dose_curves.get("points", [])) > 1}
    if curves:
        plots["dose"] = figures.dose_response(curves)
    plots["contrasts"] = {
        d: figures.forest(a.contrasts, "contrast", f"{d}: condition - baseline (95% CI)") for d, a in
        analysis.dimensions.items()
    }
    plots["classes"] = {}
    for d, a in analysis.dimensions.items():
        if a.class_emmeans is not None and len(a.class_emmeans):
            shown = a.class_emmeans.sort_values("n_stimuli", ascending=False).head(20).sort_values("estimate")
            plots["classes"][d] = figures.forest(shown, "class_index", f"{d}: estimated mean per image class "
                                                 f"(the {len(shown)} classes with most stimuli)", reference_line=None)
    if analysis.correlation:
        c = analysis.correlation
        means = stimulus_means(kept)
        cond = kept.groupby("stimulus")["condition"].first()
        plots["scatter"] = figures.dimension_scatter(means, cond.reindex(means.index), c["first"], c["second"],
                                                     conditions)
    model_tables = {}
    for d, a in analysis.dimensions.items():
        model_tables[d] = {
            "fits": {name: {"fixed": _html_table(fit.to_frame()), "random": _html_table(fit.variance_components()),
                            "loglik": fit.loglik, "n": fit.nobs, "formula": fit.formula,
                            "converged": fit.result.converged}
                     for name, fit in a.fits.items()},
            "emmeans": _html_table(a.emmeans),
            "contrasts": _html_table(a.contrasts),
            "standardized": _html_table(a.standardized),
            "ordinal": _html_table(a.ordinal) if a.ordinal is not None else None,
            "lrt": a.lrt,
            "notes": a.notes,
        }
    env = Environment(loader=PackageLoader("analysis", "templates"), autoescape=select_autoescape(["html", "j2"]))
    template = env.get_template("report.html.j2")
    flow = analysis.exclusions.flow
    return template.render(
        title=title,
        generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        seconds=analysis.seconds,
        n_participants=kept["participant"].nunique(),
        n_ratings=len(kept),
        n_stimuli=kept["stimulus"].nunique(),
        dimensions=dims,
        conditions=conditions,
        flow=_html_table(flow, 0),
        excluded=_html_table(analysis.exclusions.excluded.groupby("rule").size().rename("participants").reset_index())
        if len(analysis.exclusions.excluded) else None,
        rules=analysis.rules.describe(),
        plots=plots,
        models=model_tables,
        reliability=_html_table(analysis.reliability),
        correlation=analysis.correlation,
        images=_image_grid(analysis, base_dir),
        methods=methods_text(analysis),
        results=results_text(analysis),
    )


def build_report(ratings: pd.DataFrame | str | Path, out_dir: Path, **options) -> Path:
    """Analyse an export and write ``report.html`` plus CSV/LaTeX tables to ``out_dir``; returns the HTML path.

    Options: ``rules`` (ExclusionRules), ``dimensions``, ``reference``, ``slopes``, ``ordinal``, ``classes``,
    ``n_splits``, ``seed``, ``progress``, ``title``.
    """
    from analysis.pairwise_report import build_pairwise_report, is_comparisons_table

    if is_comparisons_table(ratings):  # a pairwise study's comparisons table: its own report
        return build_pairwise_report(ratings, out_dir, **options)
    out_dir = Path(out_dir)
    title = options.pop("title", "Rating study report")
    base_dir = Path(ratings).resolve().parent if isinstance(ratings, (str, Path)) else None
    analysis = analyse_study(ratings, **options)
    write_tables(analysis, out_dir)
    html = render_report(analysis, base_dir=base_dir, title=title)
    path = out_dir / "report.html"
    path.write_text(html, encoding="utf-8")
    return path

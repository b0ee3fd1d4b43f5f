"""The study report: exclusions → models per dimension → reliability → tables (CSV, LaTeX) and one HTML file.

Fails soft: a model that cannot be fitted (too few participants, one condition, a singular design) is skipped
with one sentence saying why, and everything else is still written. Only input that gives nothing to report (an
unreadable file, missing columns, no rows) raises :class:`ReportError`. Every sentence of the methods and results
text is generated from what actually ran.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from tqdm.auto import tqdm

from analysis import figures
from analysis.engine import CrossedLMM, ModelFitError, single_threaded_blas
from analysis.exclusions import ExclusionOutcome, ExclusionRules, apply_exclusions
from analysis.models import LikelihoodRatioTest, RatingsFit, fit_ratings
from analysis.ordinal import ordinal_analysis
from analysis.ratings import REFERENCE_CONDITION, RatingsError, conditions_in_order, load_ratings
from analysis.reliability import dimension_correlation, reliability_table, stimulus_means
from analysis.schema import DESCRIPTOR_COLUMNS, DOSE_KINDS, SEED_LATENT, UNPERTURBED_KIND

FIXED_COLUMNS = ["dimension", "model", "term", "estimate", "std_error", "ci_low", "ci_high", "p_value"]
VARIANCE_COLUMNS = ["dimension", "model", "group", "variance", "sd", "reml_loglik"]
# The class model by default only up to this many image classes: each is a fixed effect, and with hundreds of
# classes (a few stimuli each) the fit costs minutes on large studies and estimates little; classes=True forces it.
MAX_DEFAULT_CLASSES = 50
# A cumulative-link model fits one threshold per distinct response: fine for a Likert scale, not for a slider.
MAX_ORDINAL_LEVELS = 15
# What a model fit may raise on data it cannot handle; anything else is a bug and should surface.
FIT_ERRORS = (ModelFitError, RatingsError, np.linalg.LinAlgError, ValueError, ZeroDivisionError, FloatingPointError)


class ReportError(RatingsError):
    """Nothing could be reported (unreadable input, missing columns, no rows); the message is one line."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass
class Timings:
    """Seconds per report section (and per dimension), for the report's timing table."""

    rows: list[dict[str, object]] = field(default_factory=list)
    bar: tqdm | None = None

    @contextlib.contextmanager
    def section(self, name: str, dimension: str = "") -> Iterator[None]:
        if self.bar is not None:
            self.bar.set_description(f"{name} {dimension}".strip())
        start, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            # CPU seconds beside wall seconds: on a shared machine the wall time also counts other people's work.
            self.rows.append(
                {
                    "section": name,
                    "dimension": dimension,
                    "seconds": time.perf_counter() - start,
                    "cpu_seconds": time.process_time() - cpu,
                }
            )
            if self.bar is not None:
                self.bar.update(1)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["section", "dimension", "seconds", "cpu_seconds"])


@dataclass
class DimensionAnalysis:
    """Everything fitted for one rating dimension, and one sentence per model that was not."""

    dimension: str
    reference: str
    fits: dict[str, RatingsFit] = field(default_factory=dict)
    lrt: LikelihoodRatioTest | None = None
    emmeans: pd.DataFrame | None = None
    contrasts: pd.DataFrame | None = None
    standardized: pd.DataFrame | None = None
    ordinal: pd.DataFrame | None = None
    dose_curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    dose_conditions: list[str] = field(default_factory=list)
    class_emmeans: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)  # what was done differently from the default, and why
    skipped: list[str] = field(default_factory=list)  # one sentence per model or table not produced
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)  # each fit's fixed-effects table, computed once

    @property
    def main(self) -> RatingsFit | None:
        return self.fits.get("main")

    def add(self, name: str, fit: RatingsFit) -> RatingsFit:
        """Keep a fit with its table (the Satterthwaite df are computed here, inside the model's timed section)."""
        self.frames[name] = fit.to_frame()
        self.fits[name] = fit
        # lme4's messages (boundary (singular) fit, convergence checks) for every model, beside the tables.
        self.notes.extend(f"{self.dimension}, {name} model: {w}" for w in fit.warnings)
        return fit

    def skip(self, what: str, why: str, *, plural: bool = False) -> None:
        self.skipped.append(f"{self.dimension}: {what} {'were' if plural else 'was'} skipped because {why}.")


@dataclass
class StudyAnalysis:
    """The whole analysis, ready to be written as tables and rendered."""

    raw: pd.DataFrame
    exclusions: ExclusionOutcome
    rules: ExclusionRules
    dimensions: dict[str, DimensionAnalysis]
    reliability: pd.DataFrame
    correlation: dict
    options: dict[str, object] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # study-level sentences (per-dimension ones live there)
    timings: Timings = field(default_factory=Timings)
    power: pd.DataFrame | None = None
    seconds: float = 0.0

    @property
    def ratings(self) -> pd.DataFrame:
        return self.exclusions.ratings

    def all_skipped(self) -> list[str]:
        return [*self.skipped, *(s for a in self.dimensions.values() for s in a.skipped)]

    def fixed_effects(self) -> pd.DataFrame:
        frames = [
            a.frames[name].assign(dimension=dim, model=name) for dim, a in self.dimensions.items() for name in a.fits
        ]
        return pd.concat(frames, ignore_index=True)[FIXED_COLUMNS] if frames else pd.DataFrame(columns=FIXED_COLUMNS)

    def variance_components(self) -> pd.DataFrame:
        frames = [
            fit.variance_components().assign(dimension=dim, model=name, reml_loglik=fit.loglik)
            for dim, a in self.dimensions.items()
            for name, fit in a.fits.items()
        ]
        return (
            pd.concat(frames, ignore_index=True)[VARIANCE_COLUMNS] if frames else pd.DataFrame(columns=VARIANCE_COLUMNS)
        )

    def table(self, attribute: str) -> pd.DataFrame:
        frames = [
            getattr(a, attribute).assign(dimension=dim)
            for dim, a in self.dimensions.items()
            if getattr(a, attribute) is not None
        ]
        if not frames:
            return pd.DataFrame()
        frame = pd.concat(frames, ignore_index=True)
        return frame[["dimension", *[c for c in frame.columns if c != "dimension"]]]

    def lrt_table(self) -> pd.DataFrame:
        return pd.DataFrame([{"dimension": d, **a.lrt.to_dict()} for d, a in self.dimensions.items() if a.lrt])


# -- models of one dimension ----------------------------------------------------------------------
def random_part(*, network: bool) -> str:
    return "(1 | participant) + (1 | stimulus)" + (" + (1 | network)" if network else "")


def main_model_problem(data: pd.DataFrame) -> str | None:
    """Why the crossed model cannot be identified on these rows (lme4 refuses the same), or None."""
    n_participants, n_stimuli = data["participant"].nunique(), data["stimulus"].nunique()
    if data.empty:
        return "no ratings remain after exclusions"
    if n_participants < 2:
        return (
            f"only {n_participants} participant remains after exclusions, so the participant variance cannot "
            "be estimated"
        )
    if n_stimuli < 2:
        return f"only {n_stimuli} stimulus was rated, so the stimulus variance cannot be estimated"
    conditions = data["condition"].unique()
    if len(conditions) < 2:
        return f"only one condition ({conditions[0]}) remains, so there is no condition effect to estimate"
    return None


def _network_term_problem(data: pd.DataFrame) -> str | None:
    """(1 | network) is identified only when some condition was rendered by more than one network."""
    if "network" not in data.columns or data["network"].isna().all():
        return "the export has no network column (it needs ratings schema 2)"
    per_condition = data.groupby("condition")["network"].nunique()
    if per_condition.max() < 2:
        return (
            "every condition was rendered by a single network, so network variance cannot be told apart from "
            "the condition effects (render draws > 1 to generalise over networks)"
        )
    return None


def _fit(data: pd.DataFrame, formula: str, **kwargs) -> RatingsFit:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_ratings(data, formula, **kwargs)


def warm_start(fit: RatingsFit) -> dict[str, np.ndarray]:
    """Start a related model at this fit's θ with a small first BOBYQA step: about half the evaluations."""
    theta = fit.result.theta
    return {"theta0": theta, "initial_step": np.maximum(0.1 * np.abs(theta), 0.02)}


def _likelihood_ratio(main: RatingsFit, *, random: str) -> LikelihoodRatioTest:
    """ML test of condition, reusing the main fit's design: the full model is its engine with the ML criterion,
    the null model its random-effects design with an intercept as the only fixed effect (no new model frame)."""
    from scipy import stats

    engine = main.engine
    with warnings.catch_warnings(), single_threaded_blas():
        warnings.simplefilter("ignore")
        full = engine.fit(reml=False, **warm_start(main))
        null = CrossedLMM(engine.y, np.ones((engine.n, 1)), engine.groups).fit(reml=False, **warm_start(main))
    df = full.n_params - null.n_params
    stat = max(0.0, 2 * (full.loglik - null.loglik))
    return LikelihoodRatioTest(
        model=main.formula,
        null=f"response ~ 1 + {random}",
        loglik_model=full.loglik,
        loglik_null=null.loglik,
        df=df,
        statistic=stat,
        p_value=float(stats.chi2.sf(stat, df)),
    )


def dose_rows(data: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str], str | None]:
    """Rows of the dose model: one multiplicative perturbation at several ε, and the unperturbed baseline (ε = 0).

    Returns the rows, the conditions used, the conditions left out, and why no dose model is possible (or None).
    ε means different things for other kinds (see analysis.schema.EPSILON_MEANING), a spectral-norm policy (the
    multiplicative mode) changes what the same ε does, and walk or arithmetic latents are other inputs: none of
    those is a dose of the same manipulation. With several multiplicative modes, the one with most ε levels is used.
    """
    if "perturbation_kind" not in data.columns or data["perturbation_kind"].isna().all():
        return (
            data.iloc[:0],
            [],
            [],
            (
                "the export has no perturbation_kind column (it needs ratings schema 2), so "
                "multiplicative conditions cannot be told from the others"
            ),
        )
    columns = [c for c in ("perturbation_kind", "perturbation_mode", "latent", "epsilon") if c in data.columns]
    by_condition = data.groupby("condition")[columns].first()
    kind = by_condition["perturbation_kind"].astype(str)
    # An all-missing column reads as float64: make it text before filling the gaps with text.
    mode = by_condition.get("perturbation_mode", pd.Series("", index=by_condition.index)).astype(object).fillna("")
    mode = mode.astype(str)
    latent = by_condition.get("latent", pd.Series(SEED_LATENT, index=by_condition.index)).astype(object)
    latent = latent.fillna(SEED_LATENT)
    plain = latent.astype(str) == SEED_LATENT
    doses = plain & kind.isin(DOSE_KINDS)
    if not doses.any():
        return data.iloc[:0], [], sorted(by_condition.index), "no condition has a multiplicative perturbation"
    levels = by_condition["epsilon"][doses].groupby(mode[doses]).nunique()
    doses &= mode == levels.sort_values(ascending=False, kind="stable").index[0]
    baseline = plain & (kind == UNPERTURBED_KIND) & (by_condition["epsilon"] == 0)
    use = sorted(by_condition.index[doses | baseline])
    left_out = [c for c in by_condition.index if c not in use]
    rows = data[data["condition"].isin(use)]
    if rows["epsilon"].nunique() < 2:
        return rows, use, left_out, "the multiplicative conditions and the baseline span fewer than two ε values"
    return rows, use, left_out, None


def _slopes_start(main: RatingsFit) -> np.ndarray:
    """Warm start for ``(1 + condition | participant) + …`` from the intercepts-only fit."""
    q = 1 + len([t for t in main.term_names if t.startswith("condition[")])
    theta_participant = np.zeros(q * (q + 1) // 2)
    diagonal = np.cumsum([0, *range(q, 1, -1)])
    theta_participant[diagonal] = 0.1
    theta_participant[0] = max(main.result.theta[0], 0.05)
    return np.concatenate([theta_participant, np.maximum(main.result.theta[1:], 0.05)])


def analyse_dimension(
    ratings: pd.DataFrame,
    dimension: str,
    *,
    reference: str = REFERENCE_CONDITION,
    network: bool = False,
    slopes: bool = False,
    ordinal: bool = False,
    classes: bool | str = "auto",
    lrt: bool = True,
    timings: Timings | None = None,
) -> DimensionAnalysis:
    """Main model, its tests and tables, and the pre-specified variants for one dimension; never raises for data.

    ``classes``: "auto" fits the class model up to MAX_DEFAULT_CLASSES classes, True always, False never.
    """
    timings = timings or Timings()
    data = ratings[ratings["dimension"] == dimension]
    levels = conditions_in_order(data, reference) if len(data) else []
    used_reference = reference if reference in levels or not levels else levels[0]
    a = DimensionAnalysis(dimension=dimension, reference=used_reference)
    if used_reference != reference:
        a.notes.append(
            f"{dimension}: there is no '{reference}' condition, so effects are relative to '{used_reference}'."
        )
    problem = main_model_problem(data)
    if problem:
        a.skip("every model", problem)
        return a
    use_network = False
    if network:
        why_not = _network_term_problem(data)
        if why_not:
            a.skip("the (1 | network) term", why_not)
        else:
            use_network = True
    random = random_part(network=use_network)
    formula = f"response ~ condition + {random}"
    with timings.section("main model", dimension):
        try:
            main = a.add("main", _fit(data, formula, dimension=dimension, reference=used_reference, name="main"))
        except FIT_ERRORS as exc:
            a.skip("the main model", f"it could not be fitted ({_first_line(exc)})")
            return a
    warm = warm_start(main)
    with timings.section("marginal means and contrasts", dimension):
        try:
            a.emmeans = main.emmeans("condition")
            a.emmeans["epsilon"] = a.emmeans["condition"].map(data.groupby("condition")["epsilon"].first())
            a.standardized = main.standardized_effects()
            if used_reference == reference:
                a.contrasts = main.contrasts(reference=reference)
            else:
                a.skip(f"the contrasts with {reference}", f"there is no '{reference}' condition", plural=True)
        except FIT_ERRORS as exc:
            a.skip("the marginal means and contrasts", f"they could not be computed ({_first_line(exc)})", plural=True)
    if lrt:
        with timings.section("likelihood-ratio test", dimension):
            try:
                a.lrt = _likelihood_ratio(main, random=random)
            except FIT_ERRORS as exc:
                a.skip("the likelihood-ratio test", f"the ML fits failed ({_first_line(exc)})")

    with timings.section("dose models", dimension):
        _dose_models(a, data, random=random, warm=warm)
    if classes:
        with timings.section("class model", dimension):
            _class_model(a, data, random=random, warm=warm, forced=classes is True)
    with timings.section("descriptor model", dimension):
        _descriptor_model(a, data, random=random, warm=warm)
    if slopes:
        with timings.section("random slopes", dimension):
            try:
                a.add(
                    "slopes",
                    _fit(
                        data,
                        f"response ~ condition + (1 + condition | participant) + {random.split(' + ', 1)[1]}",
                        dimension=dimension,
                        reference=used_reference,
                        name="slopes",
                        theta0=_slopes_start(main),
                    ),
                )
            except FIT_ERRORS as exc:
                a.skip("the random-slopes model", f"it could not be fitted ({_first_line(exc)})")
    if ordinal:
        with timings.section("ordinal model", dimension):
            n_levels = data["response"].nunique()
            if n_levels > MAX_ORDINAL_LEVELS:
                a.skip(
                    "the ordinal model",
                    f"the responses take {n_levels} distinct values (more than "
                    f"{MAX_ORDINAL_LEVELS}: a slider, not ordered categories)",
                )
            else:
                try:
                    table, notes = ordinal_analysis(data, dimension=dimension, reference=used_reference)
                    a.ordinal = table.drop(columns="dimension", errors="ignore")
                    a.notes.extend(f"{dimension}, ordinal model: {n}" for n in notes)
                except FIT_ERRORS as exc:
                    a.skip("the ordinal model", f"it could not be fitted ({_first_line(exc)})")
    return a


def _dose_models(a: DimensionAnalysis, data: pd.DataFrame, *, random: str, warm: dict[str, np.ndarray]) -> None:
    dose, used, left_out, problem = dose_rows(data)
    a.dose_conditions = used
    if problem:
        a.skip("the dose-response models", problem, plural=True)
        return
    if left_out:
        a.notes.append(
            f"{a.dimension}: the dose models use {', '.join(used)} (one multiplicative perturbation at "
            f"several ε and the unperturbed baseline at ε = 0); {', '.join(left_out)} are other kinds of "
            "manipulation, whose ε is not a dose of the same perturbation, and are left out."
        )
    if a.emmeans is not None:
        a.dose_curves["points"] = a.emmeans[a.emmeans["condition"].isin(used)]
    grid = pd.DataFrame({"epsilon": np.linspace(dose["epsilon"].min(), dose["epsilon"].max(), 41)})
    n_eps = dose["epsilon"].nunique()
    try:
        fit = a.add(
            "dose_linear",
            _fit(
                dose,
                f"response ~ epsilon + {random}",
                dimension=a.dimension,
                reference=a.reference,
                name="dose_linear",
                **warm,
            ),
        )
        a.dose_curves["linear"] = fit.predict_fixed(grid)
    except FIT_ERRORS as exc:
        a.skip("the linear dose model", f"it could not be fitted ({_first_line(exc)})")
    if n_eps < 4:
        a.skip("the spline dose model", f"it needs at least 4 distinct ε values and the dose conditions have {n_eps}")
        return
    spline_df = min(3, n_eps - 2)
    try:
        fit = a.add(
            "dose_spline",
            _fit(
                dose,
                f"response ~ bs(epsilon, df={spline_df}, degree={min(2, spline_df)}) + {random}",
                dimension=a.dimension,
                reference=a.reference,
                name="dose_spline",
                **warm,
            ),
        )
        a.dose_curves["spline"] = fit.predict_fixed(grid)
    except FIT_ERRORS as exc:
        a.skip("the spline dose model", f"it could not be fitted ({_first_line(exc)})")


def _class_model(
    a: DimensionAnalysis, data: pd.DataFrame, *, random: str, warm: dict[str, np.ndarray], forced: bool
) -> None:
    # Style transfer and imported images have no ImageNet class. Their rows would leave conditions without any row
    # in the model frame (a rank-deficient design), so the class model is fitted on the classed rows only.
    classless = data["class_index"].isna()
    if classless.any():
        gone = sorted(set(data.loc[classless, "condition"]) - set(data.loc[~classless, "condition"]))
        data = data[~classless]
        if gone and len(data):
            a.notes.append(
                f"{a.dimension}: the class model leaves out {', '.join(gone)} (images without an image class)."
            )
    n_classes = data["class_index"].nunique()
    if n_classes > MAX_DEFAULT_CLASSES and not forced:
        a.skip(
            "the class model",
            f"the stimuli come from {n_classes} image classes (more than {MAX_DEFAULT_CLASSES} "
            "fixed effects; ask for it with classes=True or --classes)",
        )
        return
    if n_classes < 2:
        a.skip("the class model", f"the stimuli come from {n_classes} image class(es)")
        return
    if n_classes >= data["stimulus"].nunique():
        a.skip("the class model", "there are as many image classes as stimuli, so class and stimulus are confounded")
        return
    try:
        # A categorical column: patsy codes it directly instead of testing every one of the n values for NaN.
        classed = data.assign(class_index=pd.Categorical(data["class_index"]))
        fit = a.add(
            "class",
            _fit(
                classed,
                f"response ~ condition + C(class_index) + {random}",
                dimension=a.dimension,
                reference=a.reference,
                name="class",
                **warm,
            ),
        )
        class_emm = fit.emmeans("class_index").rename(columns={"emmean": "estimate"})
        counts = data.groupby("class_index")["stimulus"].nunique()
        counts.index = counts.index.astype(str)
        class_emm["n_stimuli"] = class_emm["class_index"].astype(str).map(counts).to_numpy()
        a.class_emmeans = class_emm
    except FIT_ERRORS as exc:
        a.skip("the class model", f"it could not be fitted ({_first_line(exc)})")


def _descriptor_model(a: DimensionAnalysis, data: pd.DataFrame, *, random: str, warm: dict[str, np.ndarray]) -> None:
    descriptors = [
        c
        for c in DESCRIPTOR_COLUMNS
        if c in data.columns and pd.api.types.is_numeric_dtype(data[c]) and data[c].notna().all() and data[c].std() > 0
    ]
    if not descriptors:
        present = [c for c in DESCRIPTOR_COLUMNS if c in data.columns]
        if present:
            a.skip("the descriptor model", "no stimulus descriptor is complete and varies between stimuli")
        return
    covariates = " + ".join(f"standardize({c})" for c in descriptors)
    try:
        a.add(
            "descriptors",
            _fit(
                data,
                f"response ~ condition + {covariates} + {random}",
                dimension=a.dimension,
                reference=a.reference,
                name="descriptors",
                **warm,
            ),
        )
    except FIT_ERRORS as exc:
        a.skip("the descriptor model", f"it could not be fitted ({_first_line(exc)})")


def _power(analysis: StudyAnalysis, *, n_sims: int, seed: int, progress: bool) -> pd.DataFrame | None:
    """A design analysis from the first dimension's main model: power at half, the same and twice the sample."""
    from analysis.power import PopulationModel, power_curve

    dim, a = next(((d, a) for d, a in analysis.dimensions.items() if a.main is not None), (None, None))
    if a is None:
        analysis.skipped.append("The power analysis was skipped because no main model was fitted.")
        return None
    data = analysis.ratings[analysis.ratings["dimension"] == dim]
    n_p, n_s = data["participant"].nunique(), data["stimulus"].nunique()
    per_participant = int(data.groupby("participant").size().median())
    try:
        population = PopulationModel.from_fit(a.main, reference=a.reference)
        table = power_curve(
            population,
            participants=sorted({max(2, n_p // 2), n_p, 2 * n_p}),
            stimuli=[n_s],
            ratings_per_participant=per_participant,
            n_sims=n_sims,
            seed=seed,
            progress=progress,
        )
    except FIT_ERRORS as exc:
        analysis.skipped.append(f"The power analysis was skipped because the simulation failed ({_first_line(exc)}).")
        return None
    return table.assign(dimension=dim)


def analyse_study(
    ratings: pd.DataFrame | str | Path,
    *,
    rules: ExclusionRules | None = None,
    dimensions: list[str] | None = None,
    reference: str = REFERENCE_CONDITION,
    network: bool = False,
    slopes: bool = False,
    ordinal: bool = False,
    classes: bool | str = "auto",
    lrt: bool = True,
    n_splits: int = 100,
    power: bool = False,
    power_sims: int = 200,
    seed: int = 0,
    progress: bool = False,
) -> StudyAnalysis:
    """Run every analysis of the report; no files are written. Raises ReportError only when nothing can be done.

    The expensive parts are off unless asked for: ``slopes`` (by-participant random slopes), ``ordinal``,
    ``power`` (simulation); ``n_splits`` random splits for split-half reliability (0: none).
    """
    started = time.perf_counter()
    options = {
        "network": network,
        "slopes": slopes,
        "ordinal": ordinal,
        "classes": classes,
        "lrt": lrt,
        "n_splits": n_splits,
        "power": power,
        "power_sims": power_sims,
        "seed": seed,
        "reference": reference,
    }
    timings = Timings()
    with timings.section("load and check"):
        try:
            raw = load_ratings(ratings)
        except RatingsError as exc:
            raise ReportError(str(exc)) from exc
    rules = rules or ExclusionRules()
    with timings.section("exclusions"):
        outcome = apply_exclusions(raw, rules)
    kept = outcome.ratings
    exported = set(raw["dimension"].dropna())
    dims = dimensions or sorted(exported)
    unknown = [d for d in dims if d not in exported]
    if unknown:
        raise ReportError(
            f"no ratings for dimension(s) {', '.join(unknown)}; the export has {', '.join(sorted(exported)) or 'none'}"
        )
    analysis = StudyAnalysis(
        raw=raw,
        exclusions=outcome,
        rules=rules,
        dimensions={},
        reliability=pd.DataFrame(),
        correlation={},
        options=options,
        timings=timings,
    )
    if kept.empty:
        analysis.skipped.append(
            "No model, reliability or correlation was computed because no ratings remain after the exclusions."
        )
    steps = len(dims) * (4 + lrt + bool(classes) + slopes + ordinal) + 2 + power
    with tqdm(total=steps, desc="report", disable=not progress) as bar:
        timings.bar = bar
        for dim in dims:
            if kept.empty:  # said once above, not once per dimension
                analysis.dimensions[dim] = DimensionAnalysis(dimension=dim, reference=reference)
                continue
            analysis.dimensions[dim] = analyse_dimension(
                kept,
                dim,
                reference=reference,
                network=network,
                slopes=slopes,
                ordinal=ordinal,
                classes=classes,
                lrt=lrt,
                timings=timings,
            )
        if not kept.empty:
            with timings.section("reliability"):
                iccs = {d: a.main.icc() for d, a in analysis.dimensions.items() if a.main is not None}
                try:
                    analysis.reliability = reliability_table(
                        kept[kept["dimension"].isin(dims)], iccs, n_splits=n_splits, seed=seed
                    )
                except FIT_ERRORS as exc:
                    analysis.skipped.append(f"The reliability table was skipped because {_first_line(exc)}.")
            with timings.section("dimension correlation"):
                first, second = (
                    ("artistry", "symbolism") if {"artistry", "symbolism"} <= set(dims) else [*dims, None][:2]
                )
                analysis.correlation = dimension_correlation(kept, first, second) if second else {}
            if power:
                with timings.section("power simulation"):
                    analysis.power = _power(analysis, n_sims=power_sims, seed=seed, progress=progress)
        timings.bar = None
    analysis.seconds = time.perf_counter() - started
    return analysis


# -- tables ---------------------------------------------------------------------------------------
def _latex(frame: pd.DataFrame, caption: str, label: str) -> str:
    return frame.to_latex(index=False, float_format="%.3f", caption=caption, label=label, escape=True)


def df_method(frame: pd.DataFrame) -> str:
    """How a fit's tests were computed, read from its fixed-effects table (not from a default)."""
    return "Satterthwaite t" if np.isfinite(frame["df"]).any() else "Wald z"


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
        "skipped": pd.DataFrame({"sentence": analysis.all_skipped()}),
        "timings": analysis.timings.frame(),
    }
    if analysis.power is not None:
        tables["power"] = analysis.power
    paths = {}
    for name, frame in tables.items():
        path = out_dir / f"{name}.csv"
        frame.to_csv(path, index=False)
        paths[name] = path
    methods = sorted({df_method(a.frames["main"]) for a in analysis.dimensions.values() if a.main is not None})
    interval = f"95\\% CIs, {' and '.join(methods)}" if methods else "95\\% CIs"
    captions = {
        "fixed_effects": f"Fixed effects of the main crossed mixed models ({interval}).",
        "variance_components": "Variance components and REML log-likelihoods of the main models.",
        "exclusions": "Participant and rating flow through the exclusion rules.",
        "reliability": "Reliability per rating dimension.",
        "contrasts": "Conditions versus the reference (Holm-adjusted p-values).",
        "emmeans": "Estimated marginal means per condition.",
        "ordinal": "Cumulative-logit mixed model: condition log odds ratios (random participants and stimuli).",
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


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


_RULE_NAMES = {
    "max_failed_attention": "attention checks",
    "min_median_rt_ms": "fast responders",
    "min_response_sd": "straight-lining",
    "min_completion": "incomplete participants",
}


def _exclusion_sentences(analysis: StudyAnalysis) -> list[str]:
    outcome = analysis.exclusions
    removed = outcome.steps_that_removed()
    sentences = []
    if removed.empty:
        sentences.append("No rating and no participant was excluded.")
    else:
        parts = []
        for row in removed.itertuples():
            who = f"{row.participants_excluded} participant(s), " if row.participants_excluded else ""
            parts.append(f"{row.rule} ({who}{row.ratings_excluded} ratings)")
        sentences.append(f"Before analysis, the following were removed in this order: {'; '.join(parts)}.")
    idle = outcome.flow[(outcome.flow["ratings_excluded"] == 0) & ~outcome.flow["step"].isin(["export", "unusable"])]
    if len(idle):
        sentences.append(f"The other rules applied ({'; '.join(idle['rule'])}) excluded no one.")
    off = [name for key, name in _RULE_NAMES.items() if getattr(analysis.rules, key) is None]
    if off:
        sentences.append(f"Rules switched off: {_join(off)}.")
    return sentences


def _variant_phrases(analysis: StudyAnalysis) -> list[str]:
    fitted = {name for a in analysis.dimensions.values() for name in a.fits}
    dose_sets = sorted({", ".join(a.dose_conditions) for a in analysis.dimensions.values() if "dose_linear" in a.fits})
    phrases = []
    if "dose_linear" in fitted:
        phrases.append(
            f"treated perturbation strength ε as a linear dose{' and' if 'dose_spline' in fitted else ''}"
            f"{' as a quadratic B-spline' if 'dose_spline' in fitted else ''}, on the multiplicative "
            f"conditions and the unperturbed baseline only ({'; '.join(dose_sets)}), because ε measures "
            "a different manipulation in other kinds of perturbation"
        )
    if "class" in fitted:
        phrases.append("added image class as a factor")
    if "descriptors" in fitted:
        names = sorted(
            {
                t[len("standardize(") : -1]
                for a in analysis.dimensions.values()
                if "descriptors" in a.fits
                for t in a.fits["descriptors"].term_names
                if t.startswith("standardize(")
            }
        )
        phrases.append(
            f"added the stimulus descriptors {_join(names)} as z-scored covariates (SD with n - 1, as R's scale())"
        )
    if "slopes" in fitted:
        phrases.append("allowed by-participant random slopes for condition")
    return phrases


def methods_text(analysis: StudyAnalysis) -> str:
    """The methods paragraph, generated from what ran: formulas, exclusions that removed someone, df methods."""
    sentences = _exclusion_sentences(analysis)
    by_formula: dict[tuple[str, str], list[str]] = {}
    for dim, a in analysis.dimensions.items():
        if a.main is not None:
            by_formula.setdefault((a.main.formula, a.reference), []).append(dim)
    for (formula, reference), dims in by_formula.items():
        sentences.append(
            f"Ratings of {_join(dims)} were analysed with a linear mixed model, {formula}, fitted by restricted "
            "maximum likelihood (the profiled REML deviance of lme4, computed by this package's engine), with "
            f"'{reference}' as the reference level."
        )
    fits = [(name, a.frames[name]) for a in analysis.dimensions.values() for name in a.fits]
    if fits:
        methods: dict[str, list[str]] = {}
        for name, frame in fits:
            method = df_method(frame)
            if name not in methods.setdefault(method, []):
                methods[method].append(name)
        wording = {
            "Satterthwaite t": "t statistics with Satterthwaite degrees of freedom",
            "Wald z": "Wald z statistics",
        }
        described = [f"{wording[m]} for the {_join(names)} model(s)" for m, names in methods.items()]
        sentences.append(f"Confidence intervals and p-values use {'; '.join(described)}.")
    if any("(1 | network)" in a.main.formula for a in analysis.dimensions.values() if a.main is not None):
        sentences.append(
            "A random intercept for the network that rendered each image, (1 | network), lets the "
            "condition effects generalise over perturbation draws; its variance is reported with the "
            "other components."
        )
    if any(a.contrasts is not None for a in analysis.dimensions.values()):
        sentences.append("Contrasts of each condition with the reference are Holm-adjusted.")
    if any(a.lrt is not None for a in analysis.dimensions.values()):
        sentences.append(
            "The omnibus effect of condition was tested with a likelihood-ratio test of "
            "maximum-likelihood fits against the intercept-only model."
        )
    if any(a.standardized is not None for a in analysis.dimensions.values()):
        sentences.append(
            "Standardised effects d divide the estimate by the square root of the summed variance "
            "components (Westfall, Kenny & Judd, 2014)."
        )
    variants = _variant_phrases(analysis)
    if variants:
        sentences.append(f"Pre-specified variants {'; '.join(variants)}.")
    if any(a.ordinal is not None for a in analysis.dimensions.values()):
        sentences.append(
            "As an ordinal analysis we fitted a cumulative-logit mixed model with flexible thresholds "
            "and crossed random intercepts for participants and stimuli (Laplace approximation, as "
            "ordinal::clmm in R); its tests are Wald z."
        )
    if not analysis.reliability.empty:
        n_splits = analysis.options.get("n_splits", 0)
        split = (
            f"split-half reliability over {n_splits} random participant splits (Spearman-Brown corrected), "
            if n_splits
            else ""
        )
        sentences.append(
            "Reliability was summarised by the intra-class correlations implied by the variance "
            f"components, the reliability of stimulus means, {split}and Krippendorff's alpha "
            "(interval and ordinal)."
        )
    if analysis.power is not None:
        dim = analysis.power["dimension"].iloc[0]
        sentences.append(
            f"Power was estimated from {analysis.power['n_sims'].iloc[0]} simulated studies per design, "
            f"drawn from the main model of {dim} (Wald z tests, two-sided 5 % level)."
        )
    skipped = analysis.all_skipped()
    if skipped:
        sentences.append("Not computed: " + " ".join(skipped))
    return " ".join(sentences)


def results_text(analysis: StudyAnalysis) -> str:
    kept = analysis.ratings
    flow = analysis.exclusions.flow
    n_total = flow.iloc[0]["participants_remaining"]
    parts = [
        f"Of {n_total} participants, {kept['participant'].nunique()} were retained, contributing "
        f"{len(kept)} ratings of {kept['stimulus'].nunique()} stimuli."
    ]
    reliability = analysis.reliability.set_index("dimension") if not analysis.reliability.empty else None
    for dim, a in analysis.dimensions.items():
        if a.main is None:
            continue
        sentence = f"For {dim}"
        if a.lrt is not None:
            verdict = "differed" if a.lrt.p_value < 0.05 else "did not differ reliably"
            sentence += (
                f", ratings {verdict} between conditions (χ²({a.lrt.df}) = {a.lrt.statistic:.2f}, "
                f"p {format_p(a.lrt.p_value)})"
            )
        sentence += "."
        if a.contrasts is not None and len(a.contrasts):
            sentence += (
                f" Relative to {a.reference}, "
                + "; ".join(
                    f"{row.contrast.split(' - ')[0]} changed ratings by b = {row.estimate:.2f}, 95% CI "
                    f"[{row.ci_low:.2f}, {row.ci_high:.2f}], d = {row.d:.2f}, p_Holm {format_p(row.p_holm)}"
                    for row in a.contrasts.itertuples()
                )
                + "."
            )
        icc = a.main.icc()
        sentence += (
            f" Participants accounted for {icc.get('icc_participant', np.nan):.0%} and stimuli for "
            f"{icc.get('icc_stimulus', np.nan):.0%} of the rating variance"
        )
        if "icc_network" in icc:
            sentence += f", networks for {icc['icc_network']:.0%}"
        if reliability is not None and dim in reliability.index:
            rel = reliability.loc[dim]
            sentence += (
                f"; the reliability of stimulus means was {rel['stimulus_mean_reliability']:.2f} "
                + (f"(split-half {rel['split_half']:.2f}; " if np.isfinite(rel["split_half"]) else "(")
                + f"Krippendorff's \u03b1 interval {rel['alpha_interval']:.2f}, ordinal "
                f"{rel['alpha_ordinal']:.2f})"
            )
        parts.append(sentence + ".")
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
    if column is None or kept.empty:
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


def _plots(analysis: StudyAnalysis, conditions: list[str]) -> dict[str, object]:
    """Every figure; one that cannot be drawn is left out with a sentence, like a model that cannot be fitted."""
    kept = analysis.ratings

    def draw(what: str, make) -> str | None:
        try:
            return make()
        except (*FIT_ERRORS, TypeError, KeyError, IndexError) as exc:
            analysis.skipped.append(
                f"The {what} figure was skipped because it could not be drawn ({_first_line(exc)})."
            )
            return None

    dims = [d for d in analysis.dimensions if (kept["dimension"] == d).any()]
    plots: dict[str, object] = {"contrasts": {}, "classes": {}}
    if dims:
        plots["distributions"] = draw(
            "rating distribution", lambda: figures.rating_distributions(kept[kept["dimension"].isin(dims)], conditions)
        )
    curves = {d: a.dose_curves for d, a in analysis.dimensions.items() if len(a.dose_curves.get("points", [])) > 1}
    if curves:
        plots["dose"] = draw("dose-response", lambda: figures.dose_response(curves))
    for d, a in analysis.dimensions.items():
        if a.contrasts is not None and len(a.contrasts):
            plots["contrasts"][d] = draw(
                f"{d} contrast",
                lambda a=a, d=d: figures.forest(a.contrasts, "contrast", f"{d}: condition - {a.reference} (95% CI)"),
            )
        if a.class_emmeans is not None and len(a.class_emmeans):
            shown = a.class_emmeans.sort_values("n_stimuli", ascending=False).head(20).sort_values("estimate")
            plots["classes"][d] = draw(
                f"{d} class",
                lambda shown=shown, d=d: figures.forest(
                    shown,
                    "class_index",
                    f"{d}: estimated mean per image class (the {len(shown)} classes with most stimuli)",
                    reference_line=None,
                ),
            )
    if analysis.correlation:
        c = analysis.correlation
        means = stimulus_means(kept)
        cond = kept.groupby("stimulus")["condition"].first()
        plots["scatter"] = draw(
            "artistry-symbolism scatter",
            lambda: figures.dimension_scatter(means, cond.reindex(means.index), c["first"], c["second"], conditions),
        )
    if analysis.power is not None:
        plots["power"] = draw("power", lambda: figures.power_plot(analysis.power))
    plots["contrasts"] = {d: uri for d, uri in plots["contrasts"].items() if uri}
    plots["classes"] = {d: uri for d, uri in plots["classes"].items() if uri}
    return plots


def render_report(analysis: StudyAnalysis, *, base_dir: Path | None = None, title: str = "Rating study report") -> str:
    """The HTML report as a string (figures embedded)."""
    kept = analysis.ratings
    conditions = conditions_in_order(kept) if len(kept) else []
    with analysis.timings.section("figures"):
        plots = _plots(analysis, conditions)
    model_tables = {}
    for d, a in analysis.dimensions.items():
        model_tables[d] = {
            "fits": {
                name: {
                    "fixed": _html_table(a.frames[name]),
                    "random": _html_table(fit.variance_components()),
                    "loglik": fit.loglik,
                    "n": fit.nobs,
                    "formula": fit.formula,
                    "df_method": df_method(a.frames[name]),
                    "converged": fit.result.converged,
                }
                for name, fit in a.fits.items()
            },
            "reference": a.reference,
            "emmeans": _html_table(a.emmeans) if a.emmeans is not None else None,
            "contrasts": _html_table(a.contrasts) if a.contrasts is not None else None,
            "ordinal": _html_table(a.ordinal) if a.ordinal is not None else None,
            "lrt": a.lrt,
            "notes": a.notes,
            "skipped": a.skipped,
            "dose_conditions": a.dose_conditions,
        }
    env = Environment(loader=PackageLoader("analysis", "templates"), autoescape=select_autoescape(["html", "j2"]))
    template = env.get_template("report.html.j2")
    flow = analysis.exclusions.flow
    excluded = analysis.exclusions.excluded
    with analysis.timings.section("text"):
        methods, results = methods_text(analysis), results_text(analysis)
    timings = analysis.timings.frame()
    return template.render(
        title=title,
        generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        seconds=float(timings["seconds"].sum()),
        n_participants=kept["participant"].nunique(),
        n_ratings=len(kept),
        n_stimuli=kept["stimulus"].nunique(),
        dimensions=list(analysis.dimensions),
        conditions=conditions,
        skipped=analysis.all_skipped(),
        notes=[n for a in analysis.dimensions.values() for n in a.notes],
        flow=_html_table(flow, 0),
        excluded=_html_table(excluded.groupby(["step", "rule"]).size().rename("participants").reset_index())
        if len(excluded)
        else None,
        rules=analysis.rules.describe(),
        plots=plots,
        models=model_tables,
        reliability=_html_table(analysis.reliability) if not analysis.reliability.empty else None,
        correlation=analysis.correlation,
        images=_image_grid(analysis, base_dir),
        power=_html_table(analysis.power) if analysis.power is not None else None,
        timings=_html_table(timings, 2),
        methods=methods,
        results=results,
    )


@dataclass
class ReportOutcome:
    """What `build_report` wrote, and what it could not compute (one sentence each); usable as the HTML path."""

    path: Path
    files: list[Path]
    skipped: list[str]
    seconds: float

    @property
    def complete(self) -> bool:
        return not self.skipped

    def message(self) -> str:
        """One line for a CLI warning or the admin's report state."""
        if self.complete:
            return f"report written in {self.seconds:.1f} s"
        return f"report written in {self.seconds:.1f} s; {len(self.skipped)} part(s) skipped, e.g. {self.skipped[0]}"

    def __fspath__(self) -> str:
        return str(self.path)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.path.read_text(encoding=encoding)

    @property
    def parent(self) -> Path:
        return self.path.parent


def build_report(ratings: pd.DataFrame | str | Path, out_dir: Path, **options) -> ReportOutcome:
    """Analyse an export and write ``report.html`` plus CSV/LaTeX tables to ``out_dir``.

    Options: ``rules`` (ExclusionRules), ``dimensions``, ``reference``, ``network``, ``slopes``, ``ordinal``,
    ``classes``, ``lrt``, ``n_splits``, ``power``, ``power_sims``, ``seed``, ``progress``, ``title``. Returns a
    :class:`ReportOutcome` (skipped parts, one sentence each); raises :class:`ReportError` when nothing could be
    written.
    """
    from analysis.pairwise_report import build_pairwise_report, is_comparisons_table

    if is_comparisons_table(ratings):  # a pairwise study's comparisons table: its own report
        started = time.perf_counter()
        path = build_pairwise_report(ratings, out_dir, **options)
        files = sorted(p for p in path.parent.rglob("*") if p.is_file())
        return ReportOutcome(path=path, files=files, skipped=[], seconds=time.perf_counter() - started)
    out_dir = Path(out_dir)
    title = options.pop("title", "Rating study report")
    base_dir = Path(ratings).resolve().parent if isinstance(ratings, (str, Path)) else None
    analysis = analyse_study(ratings, **options)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create the output folder {out_dir}: {exc.strerror}") from exc
    html = render_report(analysis, base_dir=base_dir, title=title)
    with analysis.timings.section("write files"):
        paths = write_tables(analysis, out_dir)
        path = out_dir / "report.html"
        path.write_text(html, encoding="utf-8")
    # The timing table in the HTML is rendered before the files are written; the CSV has every section.
    analysis.timings.frame().to_csv(out_dir / "timings.csv", index=False)
    return ReportOutcome(
        path=path,
        files=[path, *paths.values()],
        skipped=analysis.all_skipped(),
        seconds=float(analysis.timings.frame()["seconds"].sum()),
    )

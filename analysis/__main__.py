"""Command line: ``python -m analysis report|fit|power …``; user errors print one line and exit 2.

``report`` exits 0 when report.html was written, with one ``warning:`` line on stderr when parts were skipped
(each skipped part is explained in the report and in skipped.csv); it exits 2 only when nothing could be written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.engine import ModelFitError
from analysis.exclusions import ExclusionRules
from analysis.pairwise import PairwiseError
from analysis.ratings import RatingsError


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def _effects(text: str) -> dict[str, float]:
    try:
        return {k.strip(): float(v) for k, v in (item.split("=") for item in text.split(",") if item.strip())}
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected CONDITION=EFFECT,…, got {text!r}") from exc


def _rules(args: argparse.Namespace) -> ExclusionRules:
    return ExclusionRules(
        drop_practice=not args.keep_practice,
        max_failed_attention=args.max_failed_attention,
        min_median_rt_ms=args.min_median_rt_ms,
        min_response_sd=args.min_response_sd,
        min_completion=args.min_completion,
    )


def _add_exclusion_options(parser: argparse.ArgumentParser) -> None:
    defaults = ExclusionRules()
    group = parser.add_argument_group("exclusions (pass a negative value to switch a rule off)")
    group.add_argument("--keep-practice", action="store_true", help="keep practice trials")
    group.add_argument("--max-failed-attention", type=int, default=defaults.max_failed_attention)
    group.add_argument("--min-median-rt-ms", type=float, default=defaults.min_median_rt_ms)
    group.add_argument("--min-response-sd", type=float, default=defaults.min_response_sd)
    group.add_argument("--min-completion", type=float, default=defaults.min_completion)


def _switch_off_negatives(args: argparse.Namespace) -> None:
    for name in ("max_failed_attention", "min_median_rt_ms", "min_response_sd", "min_completion"):
        value = getattr(args, name, None)
        if value is not None and value < 0:
            setattr(args, name, None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    report = sub.add_parser("report", help="write report.html and the CSV/LaTeX tables")
    report.add_argument("ratings", help="ratings export (CSV or Parquet)")
    report.add_argument("--out", required=True, type=Path, help="output folder")
    report.add_argument("--dimension", action="append", dest="dimensions", help="only this dimension (repeatable)")
    report.add_argument(
        "--network", action="store_true", help="add (1 | network): generalise condition effects over perturbation draws"
    )
    report.add_argument(
        "--slopes",
        action="store_true",
        help="also fit (1 + condition | participant) random slopes (slow on large studies)",
    )
    report.add_argument("--ordinal", action="store_true", help="also fit the ordinal sensitivity analysis (slow)")
    report.add_argument("--power", action="store_true", help="also simulate power at half/1x/2x the participants")
    report.add_argument("--power-sims", type=int, default=200, help="simulated studies per design for --power")
    report.add_argument("--no-slopes", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for
    report.add_argument("--no-ordinal", action="store_true", help=argparse.SUPPRESS)  # old scripts
    classes = report.add_mutually_exclusive_group()
    classes.add_argument(
        "--classes",
        action="store_const",
        const=True,
        dest="classes",
        default="auto",
        help="fit the class model however many image classes there are (default: up to 50)",
    )
    classes.add_argument(
        "--no-classes",
        action="store_const",
        const=False,
        dest="classes",
        help="skip the model with image class as a factor",
    )
    report.add_argument(
        "--splits", type=int, default=100, help="random participant splits for split-half reliability (0: none)"
    )
    report.add_argument("--seed", type=int, default=0)
    report.add_argument("--title", default="Rating study report")
    _add_exclusion_options(report)

    fit = sub.add_parser("fit", help="fit one model and print its table")
    fit.add_argument("ratings")
    fit.add_argument("--dimension", required=True)
    fit.add_argument("--formula", default=None, help="lme4-style formula (default: the main model)")
    fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    fit.add_argument("--no-exclusions", action="store_true", help="fit all rows of the export")
    fit.add_argument(
        "--df",
        choices=["satterthwaite", "kenward-roger", "normal"],
        default="satterthwaite",
        help="degrees of freedom of the t tests (normal: Wald z)",
    )
    fit.add_argument(
        "--ordinal",
        choices=["logit", "probit"],
        default=None,
        help="fit the cumulative-link mixed model (condition + crossed random intercepts) instead",
    )
    _add_exclusion_options(fit)

    power = sub.add_parser("power", help="power curves by simulation (from a fitted export or given effects)")
    power.add_argument("ratings", nargs="?", help="export to take effects and variances from (main model)")
    power.add_argument("--dimension", default=None, help="dimension to take the population model from")
    power.add_argument(
        "--effects",
        type=_effects,
        default=None,
        help="CONDITION=EFFECT,… vs baseline when no export is given (e.g. artistic-1.0=0.3)",
    )
    power.add_argument("--sd", type=float, nargs=3, default=(0.8, 0.5, 1.0), metavar=("PARTICIPANT", "STIMULUS", "RES"))
    power.add_argument("--participants", type=_int_list, default=[40, 80, 160])
    power.add_argument("--stimuli", type=_int_list, default=[50, 100])
    power.add_argument("--ratings-per-participant", type=int, default=40)
    power.add_argument("--sims", type=int, default=None, help="simulated studies per cell (200; pairwise: 5)")
    power.add_argument("--alpha", type=float, default=0.05)
    power.add_argument("--seed", type=int, default=0)
    power.add_argument("--out", type=Path, default=None, help="write power.csv and power.png here")
    pairs = power.add_argument_group("pairwise designs (--pairwise): scale precision instead of test power")
    pairs.add_argument("--pairwise", action="store_true", help="simulate a pairwise comparison study")
    pairs.add_argument("--pairs", type=_int_list, default=[10, 20, 40], help="pairs per participant")
    pairs.add_argument("--design", choices=["random", "balanced", "adaptive"], default="balanced")
    pairs.add_argument("--scale-sd", type=float, default=1.0, help="SD of the true scale in JOD")
    pairs.add_argument("--target-ci-width", type=float, default=None, help="mean 95%% CI width wanted (JOD)")
    return parser


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _switch_off_negatives(args)
    if args.command == "report":
        from analysis.report import build_report

        outcome = build_report(
            args.ratings,
            args.out,
            rules=_rules(args),
            dimensions=args.dimensions,
            network=args.network,
            slopes=args.slopes and not args.no_slopes,
            ordinal=args.ordinal and not args.no_ordinal,
            classes=args.classes,
            power=args.power,
            power_sims=args.power_sims,
            n_splits=args.splits,
            seed=args.seed,
            title=args.title,
            progress=True,
        )
        print(f"wrote {outcome.path} ({outcome.seconds:.1f} s; time per section in timings.csv)")
        if not outcome.complete:
            print(
                f"warning: {len(outcome.skipped)} part(s) of the report were skipped (see {outcome.path.name} "
                f"and skipped.csv): {outcome.skipped[0]}",
                file=sys.stderr,
            )
        return 0
    if args.command == "fit":
        from analysis.exclusions import apply_exclusions
        from analysis.models import DEFAULT_FORMULA, fit_ratings
        from analysis.ratings import load_ratings

        ratings = load_ratings(args.ratings)
        if not args.no_exclusions:
            ratings = apply_exclusions(ratings, _rules(args)).ratings
        from analysis.models import parse_formula

        formula = args.formula or DEFAULT_FORMULA
        rows = ratings[ratings["dimension"] == args.dimension]
        for term in parse_formula(formula)[1]:
            n_levels = rows[term.group].nunique() if term.group in rows.columns else None
            if n_levels is not None and n_levels < 2 and not rows.empty:
                # lme4 refuses this too ("grouping factors must have > 1 sampled level")
                raise RatingsError(
                    f"{term.label} needs at least 2 levels of {term.group}; the {args.dimension} "
                    f"ratings have {n_levels}"
                )
        if args.ordinal:
            from analysis.clmm import fit_clmm

            fit = fit_clmm(ratings, dimension=args.dimension, link=args.ordinal)
        else:
            fit = fit_ratings(ratings, formula, dimension=args.dimension, reml=not args.ml, df_method=args.df)
        print(fit.summary())
        for warning in fit.warnings:  # lme4's messages, also on stderr so scripts see them
            print(f"warning: {warning}", file=sys.stderr)
        return 0
    return _power(args)


def _pairwise_power(args: argparse.Namespace) -> int:
    from analysis.pairwise import pairwise_power

    table = pairwise_power(
        stimuli=args.stimuli,
        participants=args.participants,
        pairs_per_participant=args.pairs,
        scale_sd=args.scale_sd,
        design=args.design,
        target_ci_width=args.target_ci_width,
        reps=args.sims or 5,
        seed=args.seed,
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out / "power_pairwise.csv", index=False)
        print(f"wrote {args.out / 'power_pairwise.csv'}")
    return 0


def _power(args: argparse.Namespace) -> int:
    from analysis.power import PopulationModel, power_curve

    if args.pairwise:
        return _pairwise_power(args)
    args.sims = args.sims or 200

    if args.ratings:
        from analysis.exclusions import apply_exclusions
        from analysis.models import fit_ratings
        from analysis.ratings import load_ratings
        from analysis.report import main_model_problem

        ratings = apply_exclusions(load_ratings(args.ratings)).ratings
        if ratings.empty:
            raise RatingsError("no ratings remain after the exclusions; nothing to take a population model from")
        dimension = args.dimension or sorted(ratings["dimension"].dropna().unique())[0]
        problem = main_model_problem(ratings[ratings["dimension"] == dimension])
        if problem:
            raise RatingsError(f"cannot fit the {dimension} model for a power analysis: {problem}")
        population = PopulationModel.from_fit(fit_ratings(ratings, dimension=dimension))
    elif args.effects:
        effects = args.effects
        population = PopulationModel(
            effects=effects,
            sd_participant=args.sd[0],
            sd_stimulus=args.sd[1],
            sd_residual=args.sd[2],
            conditions=("baseline", *effects),
        )
    else:
        raise RatingsError("power needs a ratings export or --effects CONDITION=EFFECT,…")
    table = power_curve(
        population,
        participants=args.participants,
        stimuli=args.stimuli,
        ratings_per_participant=args.ratings_per_participant,
        n_sims=args.sims,
        alpha=args.alpha,
        seed=args.seed,
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        import base64

        from analysis.figures import power_plot

        args.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out / "power.csv", index=False)
        uri = power_plot(table)
        (args.out / "power.png").write_bytes(base64.b64decode(uri.split(",", 1)[1]))
        print(f"wrote {args.out / 'power.csv'} and {args.out / 'power.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except (RatingsError, ModelFitError, PairwiseError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

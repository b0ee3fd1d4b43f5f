"""The report of a pairwise study: scale with bootstrap CIs, condition effects, agreement, coverage, designs.

`build_report` hands a comparisons table (the pairwise export: columns `left`, `right`, `chosen`) to
`build_pairwise_report`, which writes

* ``scale.csv``: `dimension, stimulus, condition, score, ci_low, ci_high` (+ `se, n_comparisons`), the MAP
  scale per stimulus with percentile CIs from resampling participants;
* ``condition_effects.csv``: `dimension, condition, estimate, ci_low, ci_high` (+ `se, reference,
  sd_stimulus`), Bradley-Terry with condition as covariate and a random stimulus effect (see
  `analysis.pairwise.fit_condition_effects` for why not scaling-then-averaging);
* ``agreement.csv`` (per participant, with outliers), ``coverage.csv`` (the comparison graph) and
  ``design_comparison.csv`` (random vs balanced vs adaptive by simulation with the fitted scale as truth);
* ``report.html``, one self-contained page.

Scores and effects are in the model's unit: logits for Bradley-Terry (the default, as `choix`), JOD for
Thurstone (`model="thurstone"`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from matplotlib.figure import Figure

from analysis.figures import PALETTE, forest, to_data_uri
from analysis.pairs import is_connected
from analysis.pairwise import (
    COMPARISON_COLUMNS,
    PairwiseError,
    compare_designs,
    comparisons_from_frame,
    fit_condition_effects,
    fit_scale,
    participant_agreement,
    scale_table,
    stimulus_conditions,
)

REFERENCE = "baseline"
SCALE_COLUMNS = ["dimension", "stimulus", "condition", "score", "ci_low", "ci_high", "se", "n_comparisons"]
EFFECT_COLUMNS = ["dimension", "condition", "estimate", "ci_low", "ci_high", "se", "reference", "sd_stimulus"]


def is_comparisons_table(source: pd.DataFrame | str | Path) -> bool:
    """Whether a file or frame is a pairwise comparisons table (by its columns, reading only the header)."""
    if isinstance(source, pd.DataFrame):
        columns = set(source.columns)
    else:
        path = Path(source)
        if not path.is_file():
            return False
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            columns = set(pq.read_schema(path).names)
        else:
            try:
                columns = set(pd.read_csv(path, nrows=0).columns)
            except (ValueError, UnicodeDecodeError):
                return False
    return {"left", "right", "chosen"} <= columns


def load_comparisons(source: pd.DataFrame | str | Path) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        df = source.copy()
    else:
        path = Path(source)
        df = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    missing = [
        c
        for c in COMPARISON_COLUMNS
        if c not in df.columns and c in ("participant", "left", "right", "chosen", "dimension")
    ]
    if missing:
        raise PairwiseError(f"the comparisons table lacks column(s) {', '.join(missing)}")
    for column in ("left", "right", "chosen", "participant", "dimension"):
        df[column] = df[column].astype("string")
    return df


def _flag(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df.columns:
        return pd.Series(False, index=df.index)
    return df[column].astype("string").str.lower().isin(["true", "1"])


def exclude(df: pd.DataFrame, *, max_failed_attention: int | None = 1) -> tuple[pd.DataFrame, list[str]]:
    """Drop practice and attention pairs, and participants failing `max_failed_attention` or more checks."""
    notes = []
    checks = _flag(df, "is_attention_check")
    practice = _flag(df, "is_practice")
    if max_failed_attention is not None and checks.any() and "attention_passed" in df.columns:
        failed = df[checks & ~_flag(df, "attention_passed")].groupby("participant").size()
        drop = set(failed[failed >= max_failed_attention].index)
        if drop:
            notes.append(f"{len(drop)} participant(s) excluded for failing ≥ {max_failed_attention} attention pair(s)")
            df = df[~df["participant"].isin(drop)]
            checks, practice = checks[df.index], practice[df.index]
    kept = df[~checks & ~practice]
    if kept.empty:
        raise PairwiseError("no comparisons left to scale after dropping practice and attention pairs")
    return kept, notes


def coverage(df: pd.DataFrame) -> pd.DataFrame:
    """How well the comparison graph covers each dimension: uses per stimulus, distinct pairs, connectivity."""
    rows = []
    for dimension, part in df.groupby("dimension", sort=True):
        comps = comparisons_from_frame(part)
        n = comps.n_items
        left, right = part["left"].astype(str), part["right"].astype(str)
        distinct = len({(min(a, b), max(a, b)) for a, b in zip(left, right, strict=True)})
        conditions = stimulus_conditions(part)
        within = (
            float(np.mean([conditions.get(a) == conditions.get(b) for a, b in zip(left, right, strict=True)]))
            if conditions
            else float("nan")
        )
        index = {name: i for i, name in enumerate(comps.items)}
        pairs = np.array([[index[a], index[b]] for a, b in zip(left, right, strict=True)]).reshape(-1, 2)
        counts = np.bincount(pairs.ravel(), minlength=n)
        rows.append(
            {
                "dimension": dimension,
                "stimuli": n,
                "participants": part["participant"].nunique(),
                "comparisons": len(part),
                "distinct_pairs": distinct,
                "share_of_all_pairs": distinct / max(1, n * (n - 1) // 2),
                "min_per_stimulus": int(counts.min()) if n else 0,
                "median_per_stimulus": float(np.median(counts)) if n else 0.0,
                "max_per_stimulus": int(counts.max()) if n else 0,
                "within_condition_share": within,
                "connected": is_connected(n_items=n, pairs=pairs),
                "ties": int(part["chosen"].isna().sum()),
            }
        )
    return pd.DataFrame(rows)


def condition_effects(df: pd.DataFrame, *, reference: str = REFERENCE) -> tuple[pd.DataFrame, list[str]]:
    frames, notes = [], []
    for dimension, part in df.groupby("dimension", sort=True):
        comps = comparisons_from_frame(part)
        by_stimulus = stimulus_conditions(part)
        if not by_stimulus:
            notes.append(f"{dimension}: no condition_left/condition_right columns, so no condition effects")
            continue
        conditions = [by_stimulus.get(s, "") for s in comps.items]
        ref = reference if reference in conditions else sorted(set(conditions))[0]
        try:
            fit = fit_condition_effects(comps, conditions=conditions, reference=ref)
        except PairwiseError as exc:
            notes.append(f"{dimension}: {exc}")
            continue
        table = fit.table()
        table.insert(0, "dimension", dimension)
        table["se"] = fit.se
        table["reference"] = ref
        table["sd_stimulus"] = fit.sd_stimulus
        frames.append(table)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=EFFECT_COLUMNS)
    return out[EFFECT_COLUMNS], notes


def agreement(df: pd.DataFrame, *, model: str) -> pd.DataFrame:
    frames = []
    for dimension, part in df.groupby("dimension", sort=True):
        comps = comparisons_from_frame(part)
        table = participant_agreement(comps, fit=fit_scale(comps, model=model))
        table.insert(0, "dimension", dimension)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def design_comparison(df: pd.DataFrame, *, reps: int = 3, seed: int = 0) -> pd.DataFrame:
    """Random vs balanced vs adaptive pairs, simulated on the fitted Thurstone scale (JOD) as the truth.

    Budgets run from a quarter to twice the comparisons the study collected, in batches of the study's median
    pairs per participant, so the table says what the same effort would have bought with another design.
    """
    frames = []
    for dimension, part in df.groupby("dimension", sort=True):
        comps = comparisons_from_frame(part)
        if comps.n_items < 3:
            continue
        truth = fit_scale(comps, model="thurstone").scores
        n = len(part)
        budgets = sorted({max(comps.n_items, int(n * f)) for f in (0.25, 0.5, 1.0, 2.0)})
        batch = max(1, int(part.groupby("participant").size().median()))
        curve = compare_designs(
            truth=truth,
            budgets=budgets,
            designs=("random", "balanced", "adaptive"),
            reps=reps,
            batch=batch,
            seed=seed,
            progress=False,
        )
        curve.insert(0, "dimension", dimension)
        frames.append(curve)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def scale_plot(scale: pd.DataFrame, dimension: str) -> str:
    part = scale[scale["dimension"] == dimension].sort_values("score").reset_index(drop=True)
    conditions = sorted(part["condition"].astype(str).unique())
    colour = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(conditions)}
    fig = Figure(figsize=(6.0, 0.2 * len(part) + 1.4))
    ax = fig.subplots()
    y = np.arange(len(part))
    for condition in conditions:
        rows = part["condition"].astype(str) == condition
        ax.errorbar(
            part.loc[rows, "score"],
            y[rows.to_numpy()],
            xerr=[
                part.loc[rows, "score"] - part.loc[rows, "ci_low"],
                part.loc[rows, "ci_high"] - part.loc[rows, "score"],
            ],
            fmt="o",
            color=colour[condition],
            capsize=2,
            markersize=3.5,
            label=condition or "(none)",
        )
    ax.set_yticks(y)
    ax.set_yticklabels(part["stimulus"].astype(str).str[:10], fontsize=6)
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("scale score (95 % bootstrap CI)")
    ax.set_title(dimension, fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    return to_data_uri(fig)


def design_plot(curve: pd.DataFrame, dimension: str) -> str:
    part = curve[curve["dimension"] == dimension]
    fig = Figure(figsize=(5.0, 3.2))
    ax = fig.subplots()
    for i, (design, rows) in enumerate(part.groupby("design")):
        ax.plot(rows["comparisons"], rows["rmse"], marker="o", color=PALETTE[i], label=design)
    ax.set_xscale("log")
    ax.set_xlabel("comparisons")
    ax.set_ylabel("RMSE of the scale (JOD)")
    ax.set_title(dimension, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return to_data_uri(fig)


@dataclass
class PairwiseAnalysis:
    comparisons: pd.DataFrame
    scale: pd.DataFrame
    effects: pd.DataFrame
    agreement: pd.DataFrame
    coverage: pd.DataFrame
    designs: pd.DataFrame
    model: str
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def analyse_pairwise(
    source: pd.DataFrame | str | Path,
    *,
    model: str = "bradley-terry",
    reps: int = 200,
    seed: int = 0,
    dimensions: list[str] | None = None,
    max_failed_attention: int | None = 1,
    design_reps: int = 3,
    progress: bool = False,
) -> PairwiseAnalysis:
    started = time.perf_counter()
    df = load_comparisons(source)
    if dimensions:
        unknown = sorted(set(dimensions) - set(df["dimension"].dropna()))
        if unknown:
            raise PairwiseError(f"no comparisons for dimension(s) {', '.join(unknown)}")
        df = df[df["dimension"].isin(dimensions)]
    kept, notes = exclude(df, max_failed_attention=max_failed_attention)
    scale = scale_table(kept, model=model, reps=reps, seed=seed, progress=progress)[SCALE_COLUMNS]
    effects, effect_notes = condition_effects(kept)
    designs = design_comparison(kept, reps=design_reps, seed=seed) if design_reps > 0 else pd.DataFrame()
    return PairwiseAnalysis(
        comparisons=kept,
        scale=scale,
        effects=effects,
        agreement=agreement(kept, model=model),
        coverage=coverage(kept),
        designs=designs,
        model=model,
        notes=notes + effect_notes,
        seconds=time.perf_counter() - started,
    )


def _table(frame: pd.DataFrame, digits: int = 3) -> Markup:
    if frame is None or frame.empty:
        return Markup("<p>(none)</p>")
    return Markup(frame.to_html(index=False, classes="table", float_format=lambda v: f"{v:.{digits}f}", border=0))


def render_pairwise(analysis: PairwiseAnalysis, *, title: str) -> str:
    dims = sorted(analysis.scale["dimension"].unique())
    sections = []
    for dimension in dims:
        effects = analysis.effects[analysis.effects["dimension"] == dimension]
        designs = analysis.designs[analysis.designs["dimension"] == dimension] if len(analysis.designs) else None
        agreement = analysis.agreement[analysis.agreement["dimension"] == dimension]
        sections.append(
            {
                "name": dimension,
                "scale_plot": scale_plot(analysis.scale, dimension),
                "effects_plot": forest(effects, "condition", f"{dimension}: vs {effects['reference'].iloc[0]}")
                if len(effects)
                else None,
                "effects": _table(effects.drop(columns=["dimension"])),
                "coverage": _table(analysis.coverage[analysis.coverage["dimension"] == dimension]),
                "designs": _table(designs) if designs is not None and len(designs) else None,
                "design_plot": design_plot(analysis.designs, dimension)
                if designs is not None and len(designs)
                else None,
                "outliers": _table(agreement[agreement["outlier"]]),
                "agreement_median": float(agreement["agreement"].median()),
                "scale": _table(analysis.scale[analysis.scale["dimension"] == dimension].drop(columns=["dimension"])),
            }
        )
    env = Environment(loader=PackageLoader("analysis", "templates"), autoescape=select_autoescape(["html", "j2"]))
    unit = "logits" if analysis.model == "bradley-terry" else "JOD"
    return env.get_template("pairwise.html.j2").render(
        title=title,
        generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        seconds=analysis.seconds,
        n_participants=analysis.comparisons["participant"].nunique(),
        n_comparisons=len(analysis.comparisons),
        n_stimuli=len(set(analysis.comparisons["left"]) | set(analysis.comparisons["right"])),
        model=analysis.model,
        unit=unit,
        notes=analysis.notes,
        sections=sections,
    )


def build_pairwise_report(
    source: pd.DataFrame | str | Path,
    out_dir: Path,
    *,
    title: str = "Pairwise comparison report",
    model: str = "bradley-terry",
    reps: int = 200,
    seed: int = 0,
    dimensions: list[str] | None = None,
    rules=None,
    design_reps: int = 3,
    progress: bool = False,
    **_ignored,
) -> Path:
    """Write the pairwise tables and report.html to `out_dir`; returns the HTML path.

    Accepts `build_report`'s options; those that only apply to ratings (slopes, ordinal, splits) are ignored,
    and of the exclusion `rules` only `max_failed_attention` applies.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    max_failed = getattr(rules, "max_failed_attention", 1) if rules is not None else 1
    if title == "Rating study report":
        title = "Pairwise comparison report"
    analysis = analyse_pairwise(
        source,
        model=model,
        reps=reps,
        seed=seed,
        dimensions=dimensions,
        max_failed_attention=max_failed,
        design_reps=design_reps,
        progress=progress,
    )
    analysis.scale.to_csv(out_dir / "scale.csv", index=False)
    analysis.effects.to_csv(out_dir / "condition_effects.csv", index=False)
    analysis.agreement.to_csv(out_dir / "agreement.csv", index=False)
    analysis.coverage.to_csv(out_dir / "coverage.csv", index=False)
    if len(analysis.designs):
        analysis.designs.to_csv(out_dir / "design_comparison.csv", index=False)
    path = out_dir / "report.html"
    path.write_text(render_pairwise(analysis, title=title), encoding="utf-8")
    return path

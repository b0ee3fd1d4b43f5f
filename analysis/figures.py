"""Report figures, returned as base64 PNG data URIs so the report is one self-contained file."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

MAX_BARS = 15  # distinct responses drawn as one bar each (a Likert scale); more are binned
PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def to_data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def rating_distributions(ratings: pd.DataFrame, conditions: list[str]) -> str:
    """Share of each response per condition, one panel per dimension."""
    dims = sorted(ratings["dimension"].unique())
    fig = Figure(figsize=(5.2 * len(dims), 3.6))
    axes = fig.subplots(1, len(dims), squeeze=False)[0]
    values = np.sort(ratings["response"].dropna().unique())
    if len(values) > MAX_BARS:
        # A slider (or fractional values): one bar per value would draw thousands; show shares of 20 equal bins.
        edges = np.linspace(values[0], values[-1], 21)
        binned = pd.cut(ratings["response"], edges, include_lowest=True, labels=(edges[:-1] + edges[1:]) / 2)
        ratings = ratings.assign(response=binned.astype(float))
        values = np.sort(ratings["response"].dropna().unique())
    step = float(np.min(np.diff(values))) if len(values) > 1 else 1.0
    width = 0.8 * step / max(len(conditions), 1)
    for ax, dim in zip(axes, dims, strict=True):
        sub = ratings[ratings["dimension"] == dim]
        for i, cond in enumerate(conditions):
            share = sub.loc[sub["condition"] == cond, "response"].value_counts(normalize=True)
            ax.bar(
                values + (i - (len(conditions) - 1) / 2) * width,
                share.reindex(values, fill_value=0.0),
                width=width,
                label=cond,
                color=PALETTE[i % len(PALETTE)],
            )
        ax.set_title(dim)
        ax.set_xlabel("response")
        ax.set_ylabel("share of ratings")
        if len(values) <= MAX_BARS:
            ax.set_xticks(values)
    axes[-1].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return to_data_uri(fig)


def dose_response(curves: dict[str, dict[str, pd.DataFrame]]) -> str:
    """Condition means against ε (points, 95 % CIs) with the linear and spline dose models (bands)."""
    dims = list(curves)
    fig = Figure(figsize=(5.2 * len(dims), 3.6))
    axes = fig.subplots(1, len(dims), squeeze=False)[0]
    for ax, dim in zip(axes, dims, strict=True):
        parts = curves[dim]
        for key, color in (("linear", PALETTE[0]), ("spline", PALETTE[1])):
            curve = parts.get(key)
            if curve is not None:
                ax.plot(curve["epsilon"], curve["estimate"], color=color, label=f"{key} dose model")
                ax.fill_between(curve["epsilon"], curve["ci_low"], curve["ci_high"], color=color, alpha=0.15)
        points = parts["points"]
        ax.errorbar(
            points["epsilon"],
            points["emmean"],
            yerr=[points["emmean"] - points["ci_low"], points["ci_high"] - points["emmean"]],
            fmt="o",
            color="black",
            capsize=3,
            label="condition means (main model)",
        )
        ax.set_title(dim)
        ax.set_xlabel("perturbation strength ε")
        ax.set_ylabel("estimated mean rating")
    axes[0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return to_data_uri(fig)


def forest(table: pd.DataFrame, label: str, title: str, reference_line: float | None = 0.0) -> str:
    """Point estimates with CIs, one row per label (condition contrasts, classes)."""
    table = table.reset_index(drop=True)
    fig = Figure(figsize=(4.3, 0.28 * len(table) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(table))[::-1]
    ax.errorbar(
        table["estimate"],
        y,
        xerr=[table["estimate"] - table["ci_low"], table["ci_high"] - table["estimate"]],
        fmt="o",
        color=PALETTE[0],
        capsize=2,
        markersize=4,
    )
    if reference_line is not None:
        ax.axvline(reference_line, color="grey", lw=0.8, ls="--")
    ax.set_yticks(y)
    ax.set_yticklabels(table[label].astype(str), fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return to_data_uri(fig)


def dimension_scatter(means: pd.DataFrame, conditions: pd.Series, first: str, second: str, order: list[str]) -> str:
    """Stimulus means of two dimensions, coloured by condition (same colours as the distributions)."""
    fig = Figure(figsize=(5.2, 4.4))
    ax = fig.subplots()
    for i, cond in enumerate(order):
        idx = conditions.index[conditions == cond]
        ax.scatter(
            means.loc[idx, first], means.loc[idx, second], s=12, alpha=0.7, label=cond, color=PALETTE[i % len(PALETTE)]
        )
    ax.set_xlabel(f"mean {first} per stimulus")
    ax.set_ylabel(f"mean {second} per stimulus")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return to_data_uri(fig)


def power_plot(power: pd.DataFrame) -> str:
    """Power against participants, one line per number of stimuli, one panel per term."""
    terms = list(power["term"].unique())
    fig = Figure(figsize=(4.2 * len(terms), 3.4))
    axes = fig.subplots(1, len(terms), squeeze=False)[0]
    for ax, term in zip(axes, terms, strict=True):
        sub = power[power["term"] == term]
        for i, (n_s, line) in enumerate(sub.groupby("n_stimuli")):
            ax.errorbar(
                line["n_participants"],
                line["power"],
                yerr=1.96 * line["mc_se"],
                marker="o",
                capsize=2,
                label=f"{n_s} stimuli",
                color=PALETTE[i % len(PALETTE)],
            )
        ax.axhline(0.8, color="grey", lw=0.8, ls="--")
        ax.set_ylim(0, 1.02)
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("participants")
        ax.set_ylabel("power")
    axes[0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return to_data_uri(fig)


def image_source(value: str, base_dir: Path | None, max_px: int = 160) -> str | None:
    """A local image as an embedded thumbnail, a URL as is; None when neither can be shown."""
    if not isinstance(value, str) or not value:
        return None
    if value.startswith(("http://", "https://", "data:")):
        return value
    path = Path(value)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        return None
    try:
        from PIL import Image

        with Image.open(path) as img:
            img.thumbnail((max_px, max_px))
            buffer = io.BytesIO()
            img.convert("RGB").save(buffer, format="JPEG", quality=85)
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    except (ImportError, OSError):
        return None

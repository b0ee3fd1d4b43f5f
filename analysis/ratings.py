"""Loading and checking the long-format ratings export (one row per rating)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

REQUIRED_COLUMNS: tuple[str, ...] = (
    "participant", "stimulus", "condition", "epsilon", "class_index", "dimension", "response", "rt_ms",
    "trial_index",
)
BOOLEAN_COLUMNS: tuple[str, ...] = ("is_practice", "is_attention_check", "attention_passed")
DESCRIPTOR_COLUMNS: tuple[str, ...] = (
    "colorfulness", "saturation", "rms_contrast", "luminance_entropy", "edge_density", "compression_ratio",
)
REFERENCE_CONDITION = "baseline"

_TRUE = {"true", "t", "1", "1.0", "yes", "y"}
_FALSE = {"false", "f", "0", "0.0", "no", "n", "", "nan", "<na>", "none"}


class RatingsError(ValueError):
    """The ratings export cannot be analysed as given; the message is one line saying why."""


class MissingColumnsError(RatingsError):
    """Required columns are absent from the export."""

    def __init__(self, missing: list[str]):
        self.missing = missing
        super().__init__(f"ratings export is missing required column(s): {', '.join(missing)}")


def _as_bool(series: pd.Series, name: str) -> pd.Series:
    """Exports written by spreadsheets or CSV round-trips carry booleans as strings; accept both."""
    if pd.api.types.is_bool_dtype(series):
        # Nullable booleans (the study export's `attention_passed` is empty off attention checks).
        return series.fillna(False).astype(bool)
    text = series.astype("string").str.strip().str.lower().fillna("")
    unknown = sorted(set(text.unique()) - _TRUE - _FALSE)
    if unknown:
        raise RatingsError(f"column {name} must be boolean; got values such as {unknown[:3]}")
    return text.isin(_TRUE).astype(bool)


def check_ratings(ratings: pd.DataFrame) -> pd.DataFrame:
    """Validate columns and normalise types so every later step can rely on them."""
    missing = [c for c in REQUIRED_COLUMNS if c not in ratings.columns]
    if missing:
        raise MissingColumnsError(missing)
    df = ratings.copy()
    for col in ("participant", "stimulus", "condition", "dimension"):
        df[col] = df[col].astype(str)
    for col in ("epsilon", "response", "rt_ms", "trial_index"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    for col in BOOLEAN_COLUMNS:
        if col in df.columns:
            df[col] = _as_bool(df[col], col)
    if df.empty:
        raise RatingsError("ratings export has no rows")
    return df


def load_ratings(source: pd.DataFrame | str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet export (or take a DataFrame) and check it."""
    if isinstance(source, pd.DataFrame):
        return check_ratings(source)
    path = Path(source)
    if not path.exists():
        raise RatingsError(f"ratings file not found: {path}")
    if path.suffix.lower() in {".parquet", ".pq"}:
        df = pd.read_parquet(path)
    else:
        try:
            df = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise RatingsError(f"cannot read {path} as CSV: {str(exc).splitlines()[0]}") from exc
    return check_ratings(df)


def conditions_in_order(ratings: pd.DataFrame, reference: str = REFERENCE_CONDITION) -> list[str]:
    """Condition levels with the reference first, so patsy's treatment coding contrasts against it."""
    levels = sorted(ratings["condition"].dropna().unique().tolist())
    if reference in levels:
        levels.remove(reference)
        levels.insert(0, reference)
    return levels

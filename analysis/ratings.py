"""Loading and checking the long-format ratings export (one row per rating); the columns are `analysis.schema`'s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.schema import (
    BOOLEAN_COLUMNS,
    DESCRIPTOR_COLUMNS,
    ID_COLUMNS,
    LEGACY_NAMES,
    REQUIRED_COLUMNS,
    SCHEMA_VERSION,
    typed_frame,
)

__all__ = ["BOOLEAN_COLUMNS", "DESCRIPTOR_COLUMNS", "REQUIRED_COLUMNS", "RatingsError", "load_ratings"]

REFERENCE_CONDITION = "baseline"

_TRUE = {"true", "t", "1", "1.0", "yes", "y"}
_FALSE = {"false", "f", "0", "0.0", "no", "n", "", "nan", "<na>", "none"}
_MISSING_TEXT = {"", "nan", "none", "<na>", "null"}


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


def _ids(series: pd.Series) -> pd.Series:
    """Ids as text; missing stays missing (NaN would otherwise become a participant called 'nan')."""
    text = series.astype("string").str.strip()
    text = text.mask(text.str.lower().isin(_MISSING_TEXT))
    return text.astype(object).where(text.notna(), np.nan)


def _non_numeric(series: pd.Series) -> int:
    """Values present in the file that do not parse as numbers."""
    if pd.api.types.is_numeric_dtype(series):
        return 0
    text = series.astype("string").str.strip()
    present = text.notna() & ~text.str.lower().isin(_MISSING_TEXT)
    return int((present & pd.to_numeric(series, errors="coerce").isna()).sum())


def check_ratings(ratings: pd.DataFrame) -> pd.DataFrame:
    """Validate columns and normalise types so every later step can rely on them.

    Rows are not dropped here: the exclusion flow's first step removes unusable rows and says how many
    (``attrs["input_problems"]`` carries what only the raw values show, e.g. non-numeric responses).
    """
    df = ratings.rename(
        columns={old: new for old, new in LEGACY_NAMES.items() if old in ratings.columns and new not in ratings.columns}
    )
    if "schema_version" in df.columns:
        versions = pd.to_numeric(df["schema_version"], errors="coerce").dropna()
        if len(versions) and versions.max() > SCHEMA_VERSION:
            raise RatingsError(
                f"export written with ratings schema {int(versions.max())}; this analysis reads "
                f"schema ≤ {SCHEMA_VERSION} (update the package)"
            )
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise MissingColumnsError(missing)
    if df.empty:
        raise RatingsError("ratings export has no rows")
    problems = {"non_numeric_response": _non_numeric(df["response"])}
    df = typed_frame(df, strict=False)
    for col in ID_COLUMNS:
        # Categorical: a few thousand distinct ids over a million rows take a tenth of the memory of strings,
        # and grouping and factorising them (every model frame) works on integer codes.
        df[col] = _ids(df[col]).astype("category")
    for col in BOOLEAN_COLUMNS:
        if col in df.columns:
            df[col] = _as_bool(df[col], col)
    problems["infinite_response"] = int(np.isinf(df["response"]).sum())
    df.attrs["input_problems"] = problems
    return df


def load_ratings(source: pd.DataFrame | str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet export (or take a DataFrame) and check it."""
    if isinstance(source, pd.DataFrame):
        return check_ratings(source)
    path = Path(source)
    if not path.exists():
        raise RatingsError(f"ratings file not found: {path}")
    if path.suffix.lower() in {".parquet", ".pq"}:
        try:
            df = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise RatingsError(f"cannot read {path} as Parquet: {str(exc).splitlines()[0]}") from exc
    else:
        try:
            # Ids stay text: "007" and "7" are different participants.
            df = pd.read_csv(path, dtype={c: "string" for c in ID_COLUMNS}, low_memory=False)
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

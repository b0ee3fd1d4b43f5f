"""Shared data for the analysis tests: the lme4 validation set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

VALIDATION_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "validation"


@pytest.fixture(scope="session")
def validation_dir() -> Path:
    if not (VALIDATION_DIR / "ratings-reference.csv").exists():
        pytest.fail(f"validation data missing at {VALIDATION_DIR} (CI keeps ../shared beside the clone)")
    return VALIDATION_DIR


@pytest.fixture(scope="session")
def reference_ratings(validation_dir: Path) -> pd.DataFrame:
    return pd.read_csv(validation_dir / "ratings-reference.csv")

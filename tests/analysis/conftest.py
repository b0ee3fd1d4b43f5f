"""Shared data for the analysis tests: the lme4 validation set.

A copy lives in tests/analysis/data/validation/ so the suite passes on any fresh clone; the
authoritative copy is the team's ../shared/validation/, and a test checks the two agree whenever
that folder sits beside the checkout (as it does in CI).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

VALIDATION_DIR = Path(__file__).resolve().parent / "data" / "validation"
SHARED_VALIDATION_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "validation"


def read_reference_ratings(folder: Path) -> pd.DataFrame:
    plain = folder / "ratings-reference.csv"
    return pd.read_csv(plain if plain.exists() else folder / "ratings-reference.csv.gz")


@pytest.fixture(scope="session")
def validation_dir() -> Path:
    return VALIDATION_DIR


@pytest.fixture(scope="session")
def reference_ratings(validation_dir: Path) -> pd.DataFrame:
    return read_reference_ratings(validation_dir)

"""The vendored lme4 validation data must equal the team's shared copy whenever that is present."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.analysis.conftest import SHARED_VALIDATION_DIR, VALIDATION_DIR, read_reference_ratings


@pytest.mark.skipif(not SHARED_VALIDATION_DIR.exists(), reason="../shared/validation is not beside this checkout")
@pytest.mark.parametrize("name", ["lme4-fixed-effects.csv", "lme4-variance-components.csv"])
def test_lme4_results_equal_the_shared_copy(name: str) -> None:
    assert (VALIDATION_DIR / name).read_bytes() == (SHARED_VALIDATION_DIR / name).read_bytes()


@pytest.mark.skipif(not SHARED_VALIDATION_DIR.exists(), reason="../shared/validation is not beside this checkout")
def test_reference_ratings_equal_the_shared_copy() -> None:
    pd.testing.assert_frame_equal(read_reference_ratings(VALIDATION_DIR), read_reference_ratings(SHARED_VALIDATION_DIR))

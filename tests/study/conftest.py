"""Fixtures for the study tests."""

from __future__ import annotations

import pytest

from tests.study.factories import make_stimulus_set, make_study


@pytest.fixture
def stimulus_set(db):
    return make_stimulus_set()


@pytest.fixture
def study(stimulus_set):
    return make_study(stimulus_set=stimulus_set)


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters live in the cache; every test starts with none, as a new minute would."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()

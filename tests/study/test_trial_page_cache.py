"""The cached trial-page skeleton renders exactly what the template renders, for every variant of the page."""

from __future__ import annotations

import re

import pytest
from django.shortcuts import render
from django.test import Client

from study import trial_page, views
from study.models import Study
from tests.study.factories import make_study
from tests.study.helpers import answer_current, to_trials

pytestmark = pytest.mark.django_db

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


@pytest.fixture
def compared(monkeypatch):
    """Every trial page is rendered both ways; the list collects (cached, plain) pairs."""
    pairs = []
    real = trial_page.render_trial_page

    def both(request, context):
        cached = real(request, context).content.decode()
        plain = render(request, "study/trial.html", context).content.decode()
        pairs.append((CSRF.sub("CSRF", cached), CSRF.sub("CSRF", plain)))
        return real(request, context)

    monkeypatch.setattr(views, "render_trial_page", both)
    trial_page._SKELETONS.clear()
    return pairs


@pytest.mark.parametrize(
    ("fields", "dimensions", "language"),
    [
        ({"practice_trials": 2, "attention_checks": 2}, None, "en"),
        ({"practice_trials": 1, "attention_checks": 1, "layout": Study.Layout.BLOCKS}, None, "de"),
        (
            {"practice_trials": 0, "attention_checks": 2, "status": Study.Status.PILOT},
            [{"name": "liking", "prompt": "How much do you like it?", "kind": "slider", "points": 7}],
            "en",
        ),
    ],
)
def test_cached_trial_pages_equal_the_template(stimulus_set, compared, fields, dimensions, language):
    study = make_study(
        stimulus_set=stimulus_set, trials_per_participant=5, dimensions=dimensions, languages=["en", "de"], **fields
    )
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    url, participant = to_trials(client, study, "cache")
    for _ in range(participant.trials.count()):
        assert client.get(url).status_code == 200
        assert client.get(url + "?kept=1").status_code == 200  # the "answer kept" note is a variant too
        assert answer_current(client, url, participant).status_code == 303
    assert len(compared) == 2 * participant.trials.count()
    for cached, plain in compared:
        assert "QZ9trial_" not in cached
        assert cached == plain
    # The skeleton really is reused: fewer variants than pages.
    assert len(trial_page._SKELETONS) < len(compared)

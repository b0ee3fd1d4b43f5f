"""The cached trial-page skeleton renders exactly what the template renders, for every variant of the page."""

from __future__ import annotations

import re

import pytest
from django.shortcuts import render
from django.test import Client

from study import page_skeletons, views
from study.models import Study
from tests.study.factories import make_study
from tests.study.helpers import answer_current, enter, post_step, to_trials

pytestmark = pytest.mark.django_db

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


@pytest.fixture
def compared(monkeypatch):
    """Every trial page is rendered both ways; the list collects (cached, plain) pairs."""
    pairs = []
    real = page_skeletons.render_trial_page

    def both(request, context):
        cached = real(request, context).content.decode()
        plain = render(request, "study/trial.html", context).content.decode()
        pairs.append((CSRF.sub("CSRF", cached), CSRF.sub("CSRF", plain)))
        return real(request, context)

    monkeypatch.setattr(views, "render_trial_page", both)
    page_skeletons._SKELETONS.clear()
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
    assert len(page_skeletons._SKELETONS) < len(compared)


@pytest.mark.parametrize("language", ["en", "de"])
def test_cached_step_pages_equal_the_template(stimulus_set, monkeypatch, language):
    pairs = []
    real = page_skeletons.render_step_page

    def both(request, context):
        cached = real(request, context).content.decode()
        template = page_skeletons.STEP_TEMPLATES[context["step"]]
        plain = render(request, template, context).content.decode()
        pairs.append((context["step"], CSRF.sub("CSRF", cached), CSRF.sub("CSRF", plain)))
        return real(request, context)

    monkeypatch.setattr(views, "render_step_page", both)
    page_skeletons._SKELETONS.clear()
    study = make_study(
        stimulus_set=stimulus_set,
        trials_per_participant=2,
        practice_trials=1,
        attention_checks=0,
        languages=["en", "de"],
    )
    declined = Client(HTTP_ACCEPT_LANGUAGE=language)
    url = enter(declined, study, "no")
    assert declined.get(url).status_code == 200
    assert post_step(declined, url, "consent", choice="decline").status_code == 303
    assert declined.get(url).status_code == 200
    for pid in ("one", "two"):  # the second participant's pages come from the skeletons
        client = Client(HTTP_ACCEPT_LANGUAGE=language)
        url = enter(client, study, pid)
        assert client.get(url).status_code == 200  # consent
        assert post_step(client, url, "consent", choice="agree").status_code == 303
        assert client.get(url).status_code == 200  # instructions
        url, participant = to_trials(client, study, pid)
        for _ in range(participant.trials.count()):
            assert answer_current(client, url, participant).status_code == 303
        assert client.get(url).status_code == 200  # questionnaire
        response = post_step(
            client,
            url,
            "questionnaire",
            age_band="25-34",
            gender="na",
            art_training="some",
            art_expertise="3",
            comment="",
        )
        assert response.status_code == 303
        done = client.get(url)
        assert "C0MPL3TE" in done.content.decode()
    steps = {step for step, _, _ in pairs}
    assert {"consent", "declined", "instructions", "questionnaire", "done"} <= steps
    for step, cached, plain in pairs:
        assert "QZ9trial_" not in cached, step
        assert cached == plain, step
    assert len(page_skeletons._SKELETONS) < len(pairs)

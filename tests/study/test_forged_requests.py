"""Forged or malformed requests get a 4xx page: never a 500, never another participant's data."""

from __future__ import annotations

import pytest
from django.test import Client

from study.models import Participant, Rating
from tests.study.helpers import enter, post_step, to_trials

pytestmark = pytest.mark.django_db


def test_unknown_study_and_participant_are_404(study):
    client = Client()
    url = enter(client, study)
    assert client.get("/s/no-such-study/", {"PROLIFIC_PID": "x"}).status_code == 404
    assert client.get(f"/s/{study.slug}/p/forged-token/").status_code == 404
    assert client.get(url.replace(f"/s/{study.slug}/", "/s/other/")).status_code == 404
    assert client.get(f"/s/{study.slug}/preview/wrong-token/").status_code == 404


def test_another_participants_page_is_forbidden(study):
    alice, mallory = Client(), Client()
    alice_url, alice_participant = to_trials(alice, study, "alice")
    enter(mallory, study, "mallory")
    page = mallory.get(alice_url)
    assert page.status_code == 403
    assert b"stimulus" not in page.content
    response = mallory.post(alice_url, {"step": "trials", "trial": 0, "artistry": 1, "symbolism": 1})
    assert response.status_code == 403
    assert not Rating.objects.filter(trial__participant=alice_participant).exists()


def test_a_forged_participant_cookie_is_refused_after_the_real_one_was_verified(study):
    """Verified cookies are remembered per process (study.views); a forged or altered one must still be refused."""
    alice, mallory = Client(), Client()
    alice_url, _ = to_trials(alice, study, "alice-cookie")
    assert alice.get(alice_url).status_code == 200  # alice's cookie is now verified and remembered
    name = f"study-{study.slug}"
    signed = alice.cookies[name].value
    value, _, signature = signed.rpartition(":")
    for forged in (value, f"{value}:{'A' * len(signature)}", f"{alice_url.rstrip('/').rsplit('/', 1)[1]}"):
        mallory.cookies[name] = forged
        assert mallory.get(alice_url).status_code == 403, forged
    mallory.cookies[name] = signed  # a stolen cookie is the participant, as before: the cookie is the credential
    assert mallory.get(alice_url).status_code == 200


def test_malformed_recruitment_ids_are_400(study):
    client = Client()
    assert client.get(f"/s/{study.slug}/", {"PROLIFIC_PID": "<script>"}).status_code == 400
    assert client.get(f"/s/{study.slug}/", {"PROLIFIC_PID": "x" * 500}).status_code == 400
    assert client.get(f"/s/{study.slug}/", {"pid": "ok", "SESSION_ID": "bad id"}).status_code == 400
    assert not Participant.objects.exists()


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"step": "nonsense"},
        {"step": "trials"},
        {"step": "trials", "trial": "abc", "artistry": 3, "symbolism": 3},
        {"step": "trials", "trial": "5", "artistry": 3, "symbolism": 3},
        {"step": "trials", "trial": "-1x", "artistry": 3, "symbolism": 3},
        {"step": "trials", "trial": "0", "artistry": 3},
        {"step": "trials", "trial": "0", "artistry": 0, "symbolism": 3},
        {"step": "trials", "trial": "0", "artistry": 8, "symbolism": 3},
        {"step": "trials", "trial": "0", "artistry": 3.5, "symbolism": 3},
        {"step": "trials", "trial": "0", "artistry": "nan", "symbolism": 3},
        {"step": "trials", "trial": "0", "artistry": "inf", "symbolism": 3},
        {"step": "trials", "trial": "0", "artistry": "", "symbolism": 3},
        {"step": "trials", "trial": "9" * 400, "artistry": 3, "symbolism": 3},
    ],
)
def test_malformed_trial_posts_are_400_and_store_nothing(study, data):
    client = Client()
    url, participant = to_trials(client, study)
    response = client.post(url, data)
    assert response.status_code == 400
    assert b"Sorry" in response.content
    assert not Rating.objects.exists()
    participant.refresh_from_db()
    assert participant.position == 0


def test_malformed_consent_and_questionnaire_are_400(study):
    client = Client()
    url = enter(client, study)
    assert post_step(client, url, "consent", choice="maybe").status_code == 400
    assert post_step(client, url, "consent").status_code == 400
    participant = Participant.objects.get()
    Participant.objects.filter(pk=participant.pk).update(step="questionnaire")
    assert post_step(client, url, "questionnaire", age_band="200", gender="x").status_code == 400
    participant.refresh_from_db()
    assert participant.step == "questionnaire"


def test_rt_values_that_are_nonsense_become_missing_not_errors(study):
    client = Client()
    url, _ = to_trials(client, study)
    response = client.post(
        url,
        {
            "step": "trials",
            "trial": 0,
            "artistry": 3,
            "symbolism": 4,
            "rt_ms": "-5",
            "rt_ms_artistry": "lots",
            "rt_ms_symbolism": "9e99",
        },
    )
    assert response.status_code == 303
    assert list(Rating.objects.values_list("rt_ms", flat=True)) == [None, None]


def test_csrf_and_methods(study):
    client = Client(enforce_csrf_checks=True)
    url = enter(client, study)
    assert client.post(url, {"step": "consent", "choice": "agree"}).status_code == 403
    assert Client().put(url).status_code in (403, 405)
    assert Client().post(f"/s/{study.slug}/", {}).status_code == 405
    assert Participant.objects.get().step == "consent"


def test_csrf_failure_view_is_a_calm_403(settings, study):
    settings.CSRF_FAILURE_VIEW = "study.views.csrf_failure"
    client = Client(enforce_csrf_checks=True)
    url = enter(client, study)
    response = client.post(url, {"step": "consent", "choice": "agree"})
    assert response.status_code == 403 and b"reload the page" in response.content

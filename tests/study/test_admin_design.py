"""Setting up studies in the admin: default dimensions, tick-box widgets, status buttons, cloning."""

from __future__ import annotations

import pytest
from django.urls import reverse

from study.models import Participant, Study
from tests.study.factories import make_study
from tests.study.test_export import run_bots

pytestmark = pytest.mark.django_db

INLINE = {
    "dimensions-TOTAL_FORMS": "0",
    "dimensions-INITIAL_FORMS": "0",
    "dimensions-MIN_NUM_FORMS": "0",
    "dimensions-MAX_NUM_FORMS": "1000",
}


def study_form(**overrides) -> dict:
    data = {
        "slug": "new-study",
        "title": "New",
        "consent_text": "",
        "instructions": "",
        "debrief": "",
        "layout": "together",
        "between_factor": "none",
        "trials_per_participant": "12",
        "practice_trials": "2",
        "attention_checks": "2",
        "max_run_length": "2",
        "task": "rating",
        "pair_design": "balanced",
        "pairs_per_participant": "20",
        "max_participants": "",
        "completion_code": "",
        "completion_url_template": "",
        "no_consent_url": "",
        **INLINE,
    }
    data.update(overrides)
    return data


def test_a_new_study_gets_the_default_dimensions(admin_client) -> None:
    response = admin_client.post(reverse("admin:study_study_add"), study_form())
    assert response.status_code == 302, response.content.decode()[:3000]
    study = Study.objects.get(slug="new-study")
    assert list(study.dimensions.values_list("name", flat=True)) == ["artistry", "symbolism"]


def test_conditions_and_languages_are_tick_boxes(admin_client, stimulus_set) -> None:
    page = admin_client.get(reverse("admin:study_study_add")).content.decode()
    assert 'type="checkbox" name="conditions" value="baseline"' in page
    assert 'type="checkbox" name="languages" value="de"' in page
    data = study_form(stimulus_sets=[stimulus_set.pk], conditions=["baseline", "symbolic"], languages=["de", "en"])
    assert admin_client.post(reverse("admin:study_study_add"), data).status_code == 302
    study = Study.objects.get(slug="new-study")
    assert study.conditions == ["baseline", "symbolic"] and study.languages == ["de", "en"]
    bad = study_form(slug="other", conditions=["no-such-condition"])
    assert admin_client.post(reverse("admin:study_study_add"), bad).status_code == 200  # the form says why
    assert not Study.objects.filter(slug="other").exists()


def test_status_buttons_on_the_study_page(admin_client, stimulus_set) -> None:
    study = make_study(stimulus_set=stimulus_set, status="draft", consent_text="")
    page = admin_client.get(reverse("admin:study_study_change", args=[study.pk])).content.decode()
    for status in ("pilot", "live", "paused", "closed"):
        assert f'data-status="{status}"' in page
    url = reverse("admin:study_study_set_status", args=[study.pk, "live"])
    assert admin_client.get(url).status_code == 405
    refused = admin_client.post(url, follow=True).content.decode()
    assert "consent text is empty" in refused
    assert Study.objects.get(pk=study.pk).status == "draft"
    Study.objects.filter(pk=study.pk).update(consent_text="Agree?")
    done = admin_client.post(url, follow=True).content.decode()
    assert "is now live" in done and 'data-status="live"' not in done
    assert Study.objects.get(pk=study.pk).status == "live"
    admin_client.post(reverse("admin:study_study_set_status", args=[study.pk, "paused"]))
    assert Study.objects.get(pk=study.pk).status == "paused"


def test_clone_copies_the_design_not_the_participants(admin_client, study) -> None:
    run_bots(study, 2)
    study.conditions = ["baseline", "symbolic"]
    study.save()
    url = reverse("admin:study_study_clone", args=[study.pk])
    assert f'value="{study.slug}-copy"' in admin_client.get(url).content.decode()
    response = admin_client.post(url, {"slug": "cloned", "title": "Second wave"})
    clone = Study.objects.get(slug="cloned")
    assert response.status_code == 302 and response["Location"].endswith(f"/{clone.pk}/change/")
    assert (clone.status, clone.title) == ("draft", "Second wave")
    assert clone.pilot_token != study.pilot_token
    assert clone.conditions == ["baseline", "symbolic"] and clone.consent_text == study.consent_text
    assert clone.trials_per_participant == study.trials_per_participant
    assert list(clone.stimulus_sets.all()) == list(study.stimulus_sets.all())
    assert [(d.name, d.prompt, d.points) for d in clone.dimensions.all()] == [
        (d.name, d.prompt, d.points) for d in study.dimensions.all()
    ]
    assert not Participant.objects.filter(study=clone).exists()
    assert Participant.objects.filter(study=study).count() == 2
    again = admin_client.post(url, {"slug": "cloned"}).content.decode()
    assert "exists already" in again

"""Participant pages in the study's languages: English and a complete German translation."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from study.models import Participant
from tests.study.factories import make_study
from tests.study.helpers import answer_current, enter, post_step

PO = Path(__file__).resolve().parents[2] / "study" / "locale" / "de" / "LC_MESSAGES" / "django.po"
GERMAN = "de-DE,de;q=0.9,en;q=0.5"


def german_client() -> Client:
    return Client(HTTP_ACCEPT_LANGUAGE=GERMAN)


@pytest.mark.django_db
def test_a_german_browser_gets_german_pages_when_the_study_offers_german(stimulus_set):
    study = make_study(
        stimulus_set=stimulus_set,
        languages=["en", "de"],
        trials_per_participant=2,
        practice_trials=0,
        attention_checks=0,
    )
    client = german_client()
    url = enter(client, study, "de1")
    page = client.get(url)
    html = page.content.decode()
    assert '<html lang="de">' in html and page["Content-Language"] == "de"
    assert "Information und Einwilligung" in html and "Ich stimme zu und möchte teilnehmen" in html
    assert "Sie sehen 2 Bilder." in html
    post_step(client, url, "consent", choice="agree")
    assert "Beginnen" in client.get(url).content.decode()
    post_step(client, url, "instructions")
    trial = client.get(url).content.decode()
    assert "Bild 1 von 2" in trial and "Weiter" in trial
    participant = Participant.objects.get(study=study)
    for _ in range(2):
        answer_current(client, url, participant)
    questionnaire = client.get(url).content.decode()
    assert "Einige Fragen zu Ihrer Person" in questionnaire and "Möchte ich nicht sagen" in questionnaire
    invalid = post_step(client, url, "questionnaire")
    assert invalid.status_code == 400 and "Dieses Feld ist zwingend erforderlich." in invalid.content.decode()


@pytest.mark.django_db
def test_a_study_in_english_only_stays_english_for_a_german_browser(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, languages=["en"])
    client = german_client()
    html = client.get(enter(client, study, "de2")).content.decode()
    assert '<html lang="en">' in html and "Information and consent" in html


@pytest.mark.django_db
def test_lang_on_the_entry_link_is_remembered(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, languages=["en", "de"])
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    url = enter(client, study, "de3", lang="de")
    assert "Information und Einwilligung" in client.get(url).content.decode()
    unknown = Client().get(f"/s/{study.slug}/", {"PROLIFIC_PID": "x", "lang": "fr"})
    assert unknown["Content-Language"] == "en"


@pytest.mark.django_db
def test_bots_complete_a_german_study(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, languages=["de"], trials_per_participant=4)
    call_command("run_bots", study.slug, "--participants", "3")
    assert (
        Participant.objects.filter(study=study, step="done").count()
        + Participant.objects.filter(study=study, step="declined").count()
        == 3
    )


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="msgfmt (gettext) is not installed")
def test_german_is_complete_and_compiled(tmp_path):
    result = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", str(tmp_path / "de.mo"), str(PO)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "untranslated" not in result.stderr and "fuzzy" not in result.stderr, result.stderr
    assert (tmp_path / "de.mo").read_bytes() == PO.with_suffix(".mo").read_bytes(), "run compilemessages"

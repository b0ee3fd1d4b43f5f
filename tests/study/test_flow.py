"""The participant flow over the real views: steps, resume, integrity, quotas, pilots, polite pages."""

from __future__ import annotations

import pytest
from django.test import Client

from study.models import Participant, Rating, Study, Trial
from study.services import pseudonym_for
from tests.study.factories import make_study
from tests.study.helpers import answer_current, enter, post_step, step_of, to_trials

pytestmark = pytest.mark.django_db


def test_full_flow_by_hand(study):
    client = Client()
    url = enter(client, study, "abc123", STUDY_ID="s1", SESSION_ID="x1")
    page = client.get(url)
    assert step_of(page) == "consent"
    assert "You agree to rate images." in page.content.decode()
    url, participant = to_trials(client, study, "abc123")
    n_trials = participant.trials.count()
    assert n_trials == 1 + 8 + 1  # practice + rated + attention check
    for _ in range(n_trials):
        page = client.get(url)
        assert step_of(page) == "trials"
        assert answer_current(client, url, participant).status_code == 303
    assert step_of(client.get(url)) == "questionnaire"
    response = post_step(
        client,
        url,
        "questionnaire",
        age_band="25-34",
        gender="na",
        art_training="some",
        art_expertise="3",
        comment="nice",
    )
    assert response.status_code == 303
    done = client.get(url)
    assert step_of(done) == "done"
    text = done.content.decode()
    assert "C0MPL3TE" in text
    assert "https://app.prolific.com/submissions/complete?cc=C0MPL3TE" in text
    participant.refresh_from_db()
    assert participant.status == "completed"
    assert participant.pseudonym == pseudonym_for(source="prolific", external_id="abc123")
    assert "abc123" not in str(participant.recruitment) and "x1" not in str(participant.recruitment)
    assert Rating.objects.filter(trial__participant=participant).count() == (1 + 8) * 2 + 1
    assert participant.attention_failures == 0
    assert Trial.objects.filter(participant=participant, answered_at__isnull=True).count() == 0
    first = Rating.objects.filter(trial__participant=participant).first()
    assert first.rt_ms == 1000 and first.trial.rt_ms == 1234


def test_trial_page_gives_nothing_away(study):
    client = Client()
    url, participant = to_trials(client, study)
    html = client.get(url).content.decode()
    trial = participant.trials.get(index=0)
    for condition in ["baseline", "artistic", "symbolic", "epsilon"]:
        assert condition not in html
    assert trial.stimulus.image.url in html
    assert 'rel="preload"' in html
    assert "cdn" not in html.lower() and "https://" not in html


def test_reload_resumes_the_same_trial_and_keeps_first_shown_time(study):
    client = Client()
    url, participant = to_trials(client, study)
    answer_current(client, url, participant)
    first = client.get(url).content.decode()
    trial = participant.trials.get(index=1)
    shown_at = trial.shown_at
    second = client.get(url).content.decode()
    assert first == second or trial.stimulus.image.url in second
    trial.refresh_from_db()
    assert trial.shown_at == shown_at and trial.shown_count == 2


def test_returning_link_and_second_browser_land_on_the_current_step(study):
    first_browser = Client()
    url, participant = to_trials(first_browser, study, "same-person")
    answer_current(first_browser, url, participant)
    second_browser = Client()
    again = enter(second_browser, study, "same-person")
    assert again == url
    assert step_of(second_browser.get(url)) == "trials"
    assert Participant.objects.filter(study=study).count() == 1
    participant.refresh_from_db()
    assert participant.position == 1


def test_double_submit_is_stored_once(study):
    client = Client()
    url, participant = to_trials(client, study)
    assert answer_current(client, url, participant, value=2).status_code == 303
    trial = participant.trials.get(index=0)
    # The same POST again (double click / reload after submit): redirected, nothing stored, nothing changed.
    data = {"step": "trials", "trial": 0, "artistry": 7, "symbolism": 7, "rt_ms": 50}
    assert client.post(url, data).status_code == 303
    assert client.post(url, data).status_code == 303
    assert Rating.objects.filter(trial=trial).count() == 2
    assert set(Rating.objects.filter(trial=trial).values_list("value", flat=True)) == {2.0}
    participant.refresh_from_db()
    assert participant.position == 1


def test_back_button_form_from_an_earlier_step_is_ignored(study):
    client = Client()
    url, participant = to_trials(client, study)
    assert post_step(client, url, "consent", choice="decline").status_code == 303
    assert post_step(client, url, "instructions").status_code == 303
    participant.refresh_from_db()
    assert participant.step == Participant.Step.TRIALS


def test_decline_shows_return_link_and_records_nothing(study):
    client = Client()
    url = enter(client, study, "no-thanks")
    assert post_step(client, url, "consent", choice="decline").status_code == 303
    page = client.get(url)
    assert step_of(page) == "declined"
    assert "cc=NOCONSENT" in page.content.decode()
    participant = Participant.objects.get(study=study)
    assert participant.status == "declined" and participant.trials.count() == 0
    # Coming back with the same id does not start again.
    assert enter(Client(), study, "no-thanks") == url
    assert Participant.objects.filter(study=study).count() == 1


def test_quota_counts_consented_real_participants_only(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, max_participants=2)
    for pid in ["a", "b"]:
        to_trials(Client(), study, pid)
    declined = Client()
    # A third person who arrived earlier but had not consented gets the polite "full" page on consent.
    Participant.objects.create(
        study=study, pseudonym=pseudonym_for(source="prolific", external_id="late"), source="prolific"
    )
    late_url = enter(declined, study, "late")
    response = post_step(declined, late_url, "consent", choice="agree")
    assert response.status_code == 200 and step_of(response) == "unavailable"
    assert b'data-reason="full"' in response.content
    newcomer = Client().get(f"/s/{study.slug}/", {"PROLIFIC_PID": "c"})
    assert newcomer.status_code == 200 and step_of(newcomer) == "unavailable"
    # Those already in continue; a pilot preview still works and is not counted.
    assert step_of(Client().get(f"/s/{study.slug}/", {"PROLIFIC_PID": "a"}, follow=True)) == "trials"
    preview = Client()
    response = preview.get(f"/s/{study.slug}/preview/{study.pilot_token}/")
    assert response.status_code == 303
    assert post_step(preview, response["Location"], "consent", choice="agree").status_code == 303
    assert Participant.objects.filter(study=study, is_pilot=True, consented_at__isnull=False).count() == 1


@pytest.mark.parametrize(("status", "reason"), [("closed", "closed"), ("paused", "paused"), ("draft", "draft")])
def test_study_not_open_shows_polite_page(stimulus_set, status, reason):
    study = make_study(stimulus_set=stimulus_set, status=status)
    response = Client().get(f"/s/{study.slug}/", {"PROLIFIC_PID": "x"})
    assert response.status_code == 200
    assert step_of(response) == "unavailable"
    assert f'data-reason="{reason}"'.encode() in response.content
    assert not Participant.objects.exists()


def test_started_participants_may_finish_when_paused(study):
    client = Client()
    url, participant = to_trials(client, study)
    Study.objects.filter(pk=study.pk).update(status="paused")
    assert answer_current(client, url, participant).status_code == 303
    assert step_of(client.get(url)) == "trials"


def test_pilot_preview_runs_full_flow_flagged_and_outside_quotas(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, status="draft", max_participants=1)
    client = Client()
    response = client.get(f"/s/{study.slug}/preview/{study.pilot_token}/")
    assert response.status_code == 303
    url = response["Location"]
    assert b"Pilot run" in client.get(url).content
    post_step(client, url, "consent", choice="agree")
    post_step(client, url, "instructions")
    participant = Participant.objects.get(study=study)
    assert participant.is_pilot
    for _ in range(participant.trials.count()):
        answer_current(client, url, participant)
    post_step(client, url, "questionnaire", age_band="na", gender="na", art_training="na", art_expertise="1")
    assert step_of(client.get(url)) == "done"
    # A second preview is a new pilot participant; pilots never touch the allocation counts.
    assert Client().get(f"/s/{study.slug}/preview/{study.pilot_token}/").status_code == 303
    assert Participant.objects.filter(study=study, is_pilot=True).count() == 2
    from study.selectors import stimulus_allocation_counts, study_enrolled_count

    assert stimulus_allocation_counts(study=study) == {}
    assert study_enrolled_count(study=study) == 0


def test_pilot_status_flags_link_participants(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, status="pilot")
    enter(Client(), study, "tester")
    assert Participant.objects.get(study=study).is_pilot


def test_attention_check_failure_is_recorded(study):
    client = Client()
    url, participant = to_trials(client, study)
    while True:
        participant.refresh_from_db()
        trial = participant.trials.get(index=participant.position)
        if trial.kind == Trial.Kind.ATTENTION:
            html = client.get(url).content.decode()
            assert f'data-instructed-value="{trial.expected_value}"' in html
            wrong = 1 if trial.expected_value != 1 else 2
            client.post(url, {"step": "trials", "trial": trial.index, trial.dimensions[0]: wrong})
            break
        answer_current(client, url, participant)
    trial.refresh_from_db()
    participant.refresh_from_db()
    assert trial.attention_passed is False
    assert participant.attention_failures == 1


def test_anonymous_entry_resumes_in_the_same_browser(study):
    study.anonymous_entry = True
    study.save()
    client = Client()
    first = client.get(f"/s/{study.slug}/")
    assert first.status_code == 303
    assert client.get(f"/s/{study.slug}/")["Location"] == first["Location"]
    assert Participant.objects.get(study=study).source == "anonymous"


def test_consent_after_the_study_closed_gets_the_polite_page(study):
    client = Client()
    url = enter(client, study, "slow-reader")
    Study.objects.filter(pk=study.pk).update(status="closed")
    response = post_step(client, url, "consent", choice="agree")
    assert response.status_code == 200 and b'data-reason="closed"' in response.content
    assert Participant.objects.get().trials.count() == 0


def test_researcher_texts_are_paragraphs_and_escaped(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, consent_text="First line\ncontinues.\n\n<script>x</script> & more")
    client = Client()
    html = client.get(enter(client, study)).content.decode()
    assert "<p>First line continues.</p>" in html
    assert "<p>&lt;script&gt;x&lt;/script&gt; &amp; more</p>" in html


def test_released_participants_stop_counting_and_cannot_answer(stimulus_set):
    from study.selectors import stimulus_allocation_counts, study_enrolled_count
    from study.services import participants_release

    study = make_study(
        stimulus_set=stimulus_set, max_participants=1, trials_per_participant=4, practice_trials=0, attention_checks=0
    )
    client = Client()
    url, _ = to_trials(client, study, "gone")
    assert sum(stimulus_allocation_counts(study=study).values()) == 4
    assert participants_release(participants=Participant.objects.filter(study=study)) == 1
    assert stimulus_allocation_counts(study=study) == {} and study_enrolled_count(study=study) == 0
    page = client.get(url)
    assert page.status_code == 200 and b'data-reason="released"' in page.content
    assert client.post(url, {"step": "trials", "trial": 0, "artistry": 3, "symbolism": 3}).status_code == 200
    assert not Rating.objects.exists()
    # The freed place and stimuli go to a newcomer.
    to_trials(Client(), study, "newcomer")
    assert study_enrolled_count(study=study) == 1

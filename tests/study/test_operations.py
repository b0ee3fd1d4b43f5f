"""Participant operations on the real database: withdrawal, idle release, screen-out, outcomes CSV, audit log."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.errors import SetupError
from study import operations, services
from study.models import AuditEntry, Participant, QuestionnaireResponse, Rating, Study, StudyReport, Trial
from study.monitor import study_monitor
from study.tasks import study_release_idle_participants
from tests.study.factories import make_study
from tests.study.helpers import answer_current, enter, post_step, to_trials
from tests.study.test_export import run_bots

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client():
    user = get_user_model().objects.create_superuser("ops", "ops@example.org", "pw-for-tests-only")
    client = Client()
    client.force_login(user)
    return client


def _by_recruitment_id(study: Study, pid: str) -> Participant:
    return operations.participant_find(study=study, recruitment_id=pid)


# Withdrawal -------------------------------------------------------------------------------------------------------


def test_withdrawal_erases_the_participant_marks_outputs_stale_and_is_audited(study, tmp_path):
    run_bots(study, 2)  # bot0 and bot1 complete
    keeper = _by_recruitment_id(study, "bot1")
    kept_ratings = Rating.objects.filter(trial__participant=keeper).count()
    report = StudyReport.objects.create(study=study, status=StudyReport.Status.DONE)
    call_command("export_ratings", study.slug, "--out", str(tmp_path / "r.csv"))
    export = AuditEntry.objects.get(action=AuditEntry.Action.EXPORT)
    participant = _by_recruitment_id(study, "bot0")
    ratings = Rating.objects.filter(trial__participant=participant).count()
    trials = participant.trials.count()
    assert ratings > 0 and trials > 0

    result = operations.participant_withdraw(participant=participant, actor_label="tester")

    assert (result.ratings, result.trials, result.questionnaires) == (ratings, trials, 1)
    assert result.rows == ratings + trials + 1
    assert not Rating.objects.filter(trial__participant=participant).exists()
    assert not Trial.objects.filter(participant=participant).exists()
    assert not QuestionnaireResponse.objects.filter(participant=participant).exists()
    assert Rating.objects.filter(trial__participant=keeper).count() == kept_ratings  # nobody else touched
    participant.refresh_from_db()
    assert participant.status == "withdrawn" and participant.pseudonym.startswith("withdrawn-")
    assert participant.recruitment == {} and participant.user_agent == ""
    with pytest.raises(operations.OperationError):
        _by_recruitment_id(study, "bot0")  # the recruitment id no longer leads anywhere
    report.refresh_from_db()
    export.refresh_from_db()
    assert report.stale_since is not None and export.stale_since is not None
    entry = AuditEntry.objects.get(action=AuditEntry.Action.WITHDRAWAL)
    assert (entry.rows, entry.actor_label, entry.study_slug) == (result.rows, "tester", study.slug)
    assert entry.detail["reports_marked_stale"] == 1 and entry.detail["exports_marked_stale"] == 1
    counts = study_monitor(study=study)
    assert (counts["withdrawn"], counts["completed"]) == (1, 1)
    assert counts["ratings"] == kept_ratings
    # A second withdrawal of the same row erases nothing more.
    assert operations.participant_withdraw(participant=participant).rows == 0


def test_a_report_made_after_the_withdrawal_is_not_stale(study):
    run_bots(study, 1)
    operations.participant_withdraw(participant=_by_recruitment_id(study, "bot0"))
    later = StudyReport.objects.create(study=study)
    assert later.stale_since is None


def test_participant_withdraw_command_by_recruitment_id_and_by_pseudonym(study):
    run_bots(study, 2)
    expected = Rating.objects.filter(trial__participant=_by_recruitment_id(study, "bot0")).count()
    out = io.StringIO()
    call_command("participant_withdraw", study.slug, "--recruitment-id", "bot0", stdout=out)
    trials = 1 + 8 + 1  # practice, rated, attention check (factory defaults)
    assert f"removed {expected + trials + 1} rows ({expected} ratings, {trials} trials, 1 questionnaire)" in (
        out.getvalue()
    )
    pseudonym = _by_recruitment_id(study, "bot1").pseudonym
    out = io.StringIO()
    call_command("participant_withdraw", study.slug, "--pseudonym", pseudonym, stdout=out)
    assert "removed" in out.getvalue()
    assert AuditEntry.objects.filter(action="withdrawal", actor_label="command line").count() == 2
    with pytest.raises(SetupError, match="no participant"):
        call_command("participant_withdraw", study.slug, "--recruitment-id", "bot0")
    with pytest.raises(SetupError, match="not a valid recruitment id"):
        call_command("participant_withdraw", study.slug, "--recruitment-id", "a b")
    with pytest.raises(SetupError, match="no study"):
        call_command("participant_withdraw", "nope", "--recruitment-id", "bot0")


# Idle release -----------------------------------------------------------------------------------------------------


def _backdate(participant: Participant, minutes: int) -> None:
    then = timezone.now() - timedelta(minutes=minutes)
    Participant.objects.filter(pk=participant.pk).update(consented_at=then)
    Trial.objects.filter(participant=participant, answered_at__isnull=False).update(answered_at=then)


def test_idle_participants_are_released_by_the_periodic_task(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, time_limit_minutes=30)
    client = Client()
    url, idle = to_trials(client, study, "idle")
    answer_current(client, url, idle)
    _, active = to_trials(Client(), study, "active")
    _backdate(idle, 31)
    _backdate(active, 29)  # inside the limit
    assert list(operations.idle_participants(study=study)) == [idle]

    assert study_release_idle_participants() == {study.slug: 1}

    idle.refresh_from_db()
    active.refresh_from_db()
    assert idle.released_at is not None and active.released_at is None
    entry = AuditEntry.objects.get(action=AuditEntry.Action.RELEASE)
    assert (entry.rows, entry.actor_label, entry.detail["reason"]) == (1, "automatic", "idle")
    # The released participant's page says the session expired; no more answers are taken.
    page = client.get(url)
    assert b'data-reason="released"' in page.content
    assert study_monitor(study=study)["released"] == 1


def test_assignment_releases_the_idle_without_beat(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, time_limit_minutes=10)
    _, idle = to_trials(Client(), study, "idle")
    _backdate(idle, 11)
    _, newcomer = to_trials(Client(), study, "newcomer")  # consent runs the release under the study lock
    idle.refresh_from_db()
    assert idle.released_at is not None and newcomer.released_at is None
    assert AuditEntry.objects.filter(action="release", rows=1).exists()


def test_a_full_study_takes_a_newcomer_once_the_idle_are_released(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, time_limit_minutes=10, max_participants=1)
    _, idle = to_trials(Client(), study, "idle")
    assert Client().get(f"/s/{study.slug}/", {"PROLIFIC_PID": "early"}).status_code == 200  # "full" page
    _backdate(idle, 11)
    _, newcomer = to_trials(Client(), study, "newcomer")
    assert newcomer.trials.filter(kind="rating").count() == study.trials_per_participant


def test_no_time_limit_means_nobody_is_released(study):
    _, participant = to_trials(Client(), study, "slow")
    _backdate(participant, 10_000)
    assert operations.participants_release_idle(study=study) == 0


# Screen-out -------------------------------------------------------------------------------------------------------


def _fail_attention_checks(client: Client, url: str, participant: Participant) -> None:
    while True:
        participant.refresh_from_db()
        if participant.step != Participant.Step.TRIALS:
            return
        trial = participant.trials.get(index=participant.position)
        wrong = (
            {}
            if trial.expected_value is None
            else {name: 1 if trial.expected_value != 1 else 2 for name in trial.dimensions}
        )
        answer_current(client, url, participant, **wrong)


def test_screen_out_after_the_configured_failures(stimulus_set):
    study = make_study(
        stimulus_set=stimulus_set,
        attention_checks=2,
        screen_out_after=2,
        screen_out_code="SCR33N",
        screen_out_url_template="https://app.prolific.com/submissions/complete?cc={code}",
    )
    client = Client()
    url, participant = to_trials(client, study, "careless")
    _fail_attention_checks(client, url, participant)
    participant.refresh_from_db()
    assert participant.step == Participant.Step.SCREENED_OUT and participant.attention_failures == 2
    assert participant.screened_out_at is not None and participant.status == "screened_out"
    page = client.get(url).content.decode()
    assert 'data-step="screened_out"' in page and 'data-screen-out-code="SCR33N"' in page
    assert "https://app.prolific.com/submissions/complete?cc=SCR33N" in page and "C0MPL3TE" not in page
    # Nothing more is accepted: a trial post is redirected to the screen-out page, nothing stored.
    before = Rating.objects.count()
    response = post_step(client, url, "trials", trial=participant.position, artistry=3, symbolism=3)
    assert response.status_code == 303 and Rating.objects.count() == before
    # Never released (the outcome is final), counted in the monitor.
    assert services.participants_release(participants=Participant.objects.all()) == 0
    assert study_monitor(study=study)["screened_out"] == 1


def test_one_failure_below_the_limit_goes_on(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, attention_checks=2, screen_out_after=3, screen_out_code="S")
    client = Client()
    url, participant = to_trials(client, study, "one-slip")
    _fail_attention_checks(client, url, participant)
    participant.refresh_from_db()
    assert participant.step == Participant.Step.QUESTIONNAIRE and participant.attention_failures == 2


def test_bots_that_fail_checks_end_screened_out(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, screen_out_after=1, screen_out_code="S0")
    outcomes = run_bots(study, 2, inattentive_rate=1.0)
    assert {o.result for o in outcomes} <= {"screened_out", "completed"}
    screened = Participant.objects.filter(study=study, step="screened_out").count()
    assert screened == sum(o.result == "screened_out" for o in outcomes) >= 1


def test_screen_out_without_a_code_is_a_readiness_problem(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, status="draft", screen_out_after=2)
    with pytest.raises(services.StudyNotReady, match="no screen-out code"):
        services.study_set_status(study=study, status="live")


# Outcomes CSV -----------------------------------------------------------------------------------------------------


def test_outcomes_csv_matches_pasted_ids_by_hash_and_stores_none(study):
    run_bots(study, 1)  # bot0 completes
    client = Client()
    post_step(client, enter(client, study, "nope1"), "consent", choice="decline")
    to_trials(Client(), study, "busy1")
    text = "Participant id,Status\nbot0,APPROVED\nnope1,RETURNED\nbusy1,ACTIVE\nstranger,TIMED-OUT\nbot0,APPROVED\n"
    ids = operations.recruitment_ids_parse(text)
    assert ids == ["bot0", "nope1", "busy1", "stranger"]
    rows = list(csv.DictReader(io.StringIO(operations.recruitment_outcomes_csv(study=study, recruitment_ids=ids))))
    assert [(r["recruitment_id"], r["outcome"]) for r in rows] == [
        ("bot0", "completed"),
        ("nope1", "declined"),
        ("busy1", "in_progress"),
        ("stranger", "not_found"),
    ]
    assert rows[0]["suggested_action"] == "approve" and rows[0]["completed_at"]
    entry = AuditEntry.objects.get(action=AuditEntry.Action.OUTCOMES)
    assert entry.rows == 4 and "bot0" not in json.dumps(entry.detail)  # the ids are not kept
    assert operations.recruitment_ids_parse("a1\n\n b2 \n") == ["a1", "b2"]


def test_recruitment_outcomes_command(study, tmp_path):
    run_bots(study, 1)
    ids = tmp_path / "ids.txt"
    ids.write_text("bot0\nghost\n")
    out = io.StringIO()
    call_command("recruitment_outcomes", study.slug, str(ids), stdout=out)
    assert out.getvalue().splitlines()[1].startswith("bot0,completed,approve")
    with pytest.raises(SetupError, match="cannot read"):
        call_command("recruitment_outcomes", study.slug, str(tmp_path / "missing.txt"))


# Monitor command and admin ----------------------------------------------------------------------------------------


def test_study_monitor_json_contract(study):
    run_bots(study, 3)
    to_trials(Client(), study, "busy")
    client = Client()
    post_step(client, enter(client, study, "no"), "consent", choice="decline")
    out = io.StringIO()
    call_command("study_monitor", study.slug, "--json", stdout=out)
    data = json.loads(out.getvalue())
    for key in [
        "entered",
        "consented",
        "declined",
        "in_progress",
        "completed",
        "screened_out",
        "released",
        "withdrawn",
        "ratings",
    ]:
        assert isinstance(data[key], int), key
    assert (data["entered"], data["consented"], data["declined"], data["in_progress"], data["completed"]) == (
        5,
        4,
        1,
        1,
        3,
    )
    assert data["ratings"] == Rating.objects.filter(trial__participant__study=study).count()
    assert data["completion_rate"] == 0.75 and data["median_duration_s"] is not None
    coverage = data["coverage"]
    assert coverage["stimuli"] == 24 and coverage["min"] <= coverage["median"] <= coverage["max"]
    assert len(coverage["least_covered"]) == 5 and data["completions"]["points"][-1]["cumulative"] == 3
    assert sum(r["ratings"] for r in data["conditions"]) == Rating.objects.filter(trial__kind="rating").count()
    text = io.StringIO()
    call_command("study_monitor", study.slug, stdout=text)
    assert "completed 3" in text.getvalue()


def test_monitor_page_and_data_are_staff_only_and_csp_strict(staff_client, study):
    run_bots(study, 1)
    page = staff_client.get(reverse("admin:study_study_monitor", args=[study.pk]))
    assert page.status_code == 200
    csp = page["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    html = page.content.decode()
    assert "<script>" not in html and " style=" not in html and "study/monitor.js" in html
    data = staff_client.get(reverse("admin:study_study_monitor_data", args=[study.pk])).json()
    assert data["completed"] == 1
    assert staff_client.get("/admin/study/study/abc/monitor/").status_code == 404
    assert staff_client.get("/admin/study/study/99999/monitor/data/").status_code == 404
    anonymous = Client().get(reverse("admin:study_study_monitor_data", args=[study.pk]))
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_monitor_status_buttons_change_status_refuse_unready_and_audit(staff_client, stimulus_set):
    study = make_study(stimulus_set=stimulus_set, status="draft", consent_text="")
    url = reverse("admin:study_study_monitor_status", args=[study.pk])
    response = staff_client.post(url, {"status": "live"}, follow=True)
    assert "consent text is empty" in response.content.decode()
    assert Study.objects.get(pk=study.pk).status == "draft"
    Study.objects.filter(pk=study.pk).update(consent_text="OK")
    staff_client.post(url, {"status": "live"})
    staff_client.post(url, {"status": "paused"})
    assert Study.objects.get(pk=study.pk).status == "paused"
    entries = AuditEntry.objects.filter(action=AuditEntry.Action.STATUS).order_by("created_at", "pk")
    assert [(e.detail["from"], e.detail["to"], e.actor_label) for e in entries] == [
        ("draft", "live", "ops"),
        ("live", "paused", "ops"),
    ]
    assert staff_client.get(url).status_code == 405


def test_admin_search_finds_a_participant_by_recruitment_id(staff_client, study):
    run_bots(study, 2)
    target = _by_recruitment_id(study, "bot1")
    url = reverse("admin:study_participant_changelist")
    html = staff_client.get(url, {"q": "bot1"}).content.decode()
    assert target.pseudonym[:12] in html and _by_recruitment_id(study, "bot0").pseudonym[:12] not in html
    assert "0 results" in staff_client.get(url, {"q": "someone-else"}).content.decode()


def test_admin_withdraw_form_and_audit_log_is_read_only(staff_client, study):
    run_bots(study, 1)
    ops = reverse("admin:study_study_participant_ops", args=[study.pk])
    assert staff_client.get(ops).status_code == 200
    response = staff_client.post(ops, {"operation": "withdraw", "recruitment_id": "bot0"})
    assert "This field is required" in response.content.decode()  # the confirmation box
    response = staff_client.post(ops, {"operation": "withdraw", "recruitment_id": "bot0", "confirm": "on"}, follow=True)
    assert "Withdrawn: erased" in response.content.decode()
    assert not Rating.objects.exists()
    response = staff_client.post(ops, {"operation": "outcomes", "recruitment_ids": "bot0\nx1"})
    assert response["Content-Type"].startswith("text/csv") and b"bot0,not_found" in response.content
    log = reverse("admin:study_auditentry_changelist")
    assert "withdrawal" in staff_client.get(log).content.decode().lower()
    entry = AuditEntry.objects.filter(action="withdrawal").get()
    assert staff_client.get(reverse("admin:study_auditentry_add")).status_code == 403
    change = staff_client.post(reverse("admin:study_auditentry_change", args=[entry.pk]), {"rows": 0})
    assert change.status_code == 403 and AuditEntry.objects.get(pk=entry.pk).rows > 0


def test_study_file_keys_for_time_limit_and_screen_out(tmp_path, stimulus_set):
    import yaml

    from tests.study.test_load_study import EXAMPLE

    data = yaml.safe_load(EXAMPLE.read_text())
    data["stimulus_sets"] = [stimulus_set.name]
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    call_command("load_study", str(path))
    study = Study.objects.get(slug=data["slug"])
    assert (study.time_limit_minutes, study.screen_out_after, study.screen_out_code) == (60, 2, "S1EXAMPLE")
    assert study.screen_out_url == "https://app.prolific.com/submissions/complete?cc=S1EXAMPLE"
    data["screen_out_url"] = "ftp://x"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SetupError, match=r"^screen_out_url: must be an http"):
        call_command("load_study", str(path))


def test_beat_schedules_a_registered_task():
    from config.celery import app

    names = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "study.release_idle_participants" in names and names <= set(app.tasks)


def test_manual_release_and_exports_are_audited(staff_client, study):
    _, participant = to_trials(Client(), study, "gone")
    staff_client.post(
        reverse("admin:study_participant_changelist"), {"action": "release", "_selected_action": [participant.pk]}
    )
    entry = AuditEntry.objects.get(action=AuditEntry.Action.RELEASE)
    assert (entry.rows, entry.actor_label, entry.study_id) == (1, "ops", study.pk)
    staff_client.post(reverse("admin:study_study_changelist"), {"action": "export_csv", "_selected_action": [study.pk]})
    export = AuditEntry.objects.get(action=AuditEntry.Action.EXPORT)
    assert export.actor_label == "ops" and export.detail == {"format": "csv"}

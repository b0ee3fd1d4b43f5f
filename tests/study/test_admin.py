"""The researcher's admin: pages render, publishing refuses unready studies, exports download, reports run."""

from __future__ import annotations

import importlib.util
import io

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from study.models import Participant, Study, StudyReport
from tests.study.factories import make_study
from tests.study.test_export import run_bots

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_():
    user = get_user_model().objects.create_superuser("admin", "a@example.org", "pw-for-tests-only")
    client = Client()
    client.force_login(user)
    return client


def test_admin_pages_render(admin_client_, study):
    run_bots(study, 1)
    participant = Participant.objects.get()
    for url in [
        reverse("admin:study_study_changelist"),
        reverse("admin:study_study_change", args=[study.pk]),
        reverse("admin:study_study_add"),
        reverse("admin:study_participant_changelist") + f"?study__id__exact={study.pk}",
        reverse("admin:study_participant_change", args=[participant.pk]),
        reverse("admin:study_rating_changelist"),
        reverse("admin:study_studyreport_changelist"),
    ]:
        response = admin_client_.get(url)
        assert response.status_code == 200, url
    page = admin_client_.get(reverse("admin:study_study_change", args=[study.pk])).content.decode()
    assert study.pilot_token in page and "PROLIFIC_PID={{%PROLIFIC_PID%}}" in page
    assert 'name="status"' not in page  # status changes only through the actions (readiness check)
    # Real participants have consented: the design (trial counts, dimensions) is read-only now.
    assert 'name="trials_per_participant"' not in page and 'name="dimensions-0-prompt"' not in page
    assert 'name="consent_text"' in page


def test_publish_refuses_an_unready_study_and_says_what_is_missing(admin_client_, stimulus_set):
    study = make_study(stimulus_set=stimulus_set, status="draft", consent_text="", completion_code="")
    page = admin_client_.get(reverse("admin:study_study_change", args=[study.pk])).content.decode()
    assert 'name="dimensions-0-prompt"' in page and 'name="trials_per_participant"' in page  # editable in draft
    response = admin_client_.post(
        reverse("admin:study_study_changelist"), {"action": "make_live", "_selected_action": [study.pk]}, follow=True
    )
    text = response.content.decode()
    assert "consent text is empty" in text and "no completion code" in text
    assert Study.objects.get(pk=study.pk).status == "draft"
    Study.objects.filter(pk=study.pk).update(consent_text="OK", completion_code="X1")
    admin_client_.post(reverse("admin:study_study_changelist"), {"action": "make_live", "_selected_action": [study.pk]})
    assert Study.objects.get(pk=study.pk).status == "live"


@pytest.mark.parametrize(("action", "reader"), [("export_csv", pd.read_csv), ("export_parquet", pd.read_parquet)])
def test_export_actions_download_the_long_format(admin_client_, study, action, reader):
    run_bots(study, 2)
    response = admin_client_.post(
        reverse("admin:study_study_changelist"), {"action": action, "_selected_action": [study.pk]}
    )
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    frame = reader(io.BytesIO(b"".join(response.streaming_content)))
    assert len(frame) == 2 * 19 and {"participant", "stimulus", "dimension", "response"} <= set(frame.columns)


def _check_report(report: StudyReport) -> None:
    if importlib.util.find_spec("analysis.report") is None:
        # The analysis package is built separately; until it has build_report the failure is recorded, not raised.
        assert report.status == StudyReport.Status.FAILED
        assert "report" in report.error
    else:
        assert report.status == StudyReport.Status.DONE, report.error
        assert "report.html" in report.files and "ratings.csv" in report.files


# The full report (random slopes, ordinal models, 100 splits) takes a minute; the wiring is what is tested here.
FAST_REPORT = {"slopes": False, "ordinal": False, "n_splits": 10}


@pytest.fixture
def eager_celery(settings):
    from config.celery import app

    settings.CELERY_BROKER_URL = None
    settings.STUDY_REPORT_OPTIONS = FAST_REPORT
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.mark.django_db(transaction=True)
def test_generate_report_action_runs_the_analysis_task(admin_client_, study, eager_celery):
    from config.background import wait_idle

    run_bots(study, 4)
    response = admin_client_.post(
        reverse("admin:study_study_changelist"),
        {"action": "generate_report", "_selected_action": [study.pk]},
        follow=True,
    )
    assert response.status_code == 200
    report = StudyReport.objects.get(study=study)
    # Without a broker the task runs on the web process's worker thread, never inside the request.
    assert report.celery_task_id.startswith("thread-")
    assert wait_idle(timeout=300)
    report.refresh_from_db()
    _check_report(report)
    page = admin_client_.get(reverse("admin:study_studyreport_change", args=[report.pk])).content.decode()
    if report.status == StudyReport.Status.DONE:
        assert 'data-report-state="done"' in page
        assert f'href="/staff/reports/{report.pk}/report.html"' in page  # the staff-only view, not /media/
        links = [line for line in page.splitlines() if f"/staff/reports/{report.pk}/" in line]
        assert links and "report.html" in links[0].split("</li>")[0]  # report.html is listed first


@pytest.mark.django_db(transaction=True)
def test_a_failed_report_shows_failed_and_its_error(admin_client_, study, eager_celery, settings):
    from config.background import wait_idle

    settings.STUDY_REPORT_OPTIONS = {"no_such_option": 1}
    admin_client_.post(
        reverse("admin:study_study_changelist"), {"action": "generate_report", "_selected_action": [study.pk]}
    )
    assert wait_idle(timeout=120)
    report = StudyReport.objects.get(study=study)
    assert report.status == StudyReport.Status.FAILED and report.error
    page = admin_client_.get(reverse("admin:study_studyreport_change", args=[report.pk])).content.decode()
    assert 'data-report-state="failed"' in page and report.error.splitlines()[0][:40] in page


@pytest.mark.broker
@pytest.mark.slow
def test_report_task_runs_in_a_worker_process(celery_worker_process, stimulus_set):
    import time

    from study.services import study_report_request

    study = make_study(stimulus_set=stimulus_set)
    run_bots(study, 4)
    report = study_report_request(study=study, options=FAST_REPORT)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        report.refresh_from_db()
        if report.status in {StudyReport.Status.DONE, StudyReport.Status.FAILED}:
            break
        time.sleep(0.5)
    assert report.celery_task_id
    _check_report(report)


def test_release_action_in_the_participant_admin(admin_client_, study):
    from tests.study.helpers import to_trials

    _, participant = to_trials(Client(), study, "left")
    response = admin_client_.post(
        reverse("admin:study_participant_changelist"),
        {"action": "release", "_selected_action": [participant.pk]},
        follow=True,
    )
    assert response.status_code == 200 and b"Released 1 participant" in response.content
    participant.refresh_from_db()
    assert participant.released_at is not None and participant.status == "released"

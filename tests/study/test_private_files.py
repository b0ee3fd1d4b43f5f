"""Reports hold participant data: written outside the public media, served over a real server to staff only."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client

from study.models import StudyReport
from tests.study.factories import make_study
from tests.study.test_export import run_bots

# The full report (random slopes, ordinal models, 100 splits) takes a minute; the wiring is what is tested here.
FAST_REPORT = {"slopes": False, "ordinal": False, "n_splits": 10}
PASSWORD = "a-test-password-4711"
TIMEOUT = 30  # the machine may be busy; the test server runs in this process


class Visitor:
    """Keeps cookies as a browser does, with a fresh connection per request: the test server's keep-alive
    handling (Django's development server) is not what is under test, and under load it drops reused ones."""

    def __init__(self) -> None:
        self.cookies = requests.cookies.RequestsCookieJar()

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        with requests.Session() as session:
            session.cookies.update(self.cookies)
            response = session.request(method, url, timeout=TIMEOUT, **kwargs)
            self.cookies.update(session.cookies)
        return response

    def get(self, url: str, **kwargs) -> requests.Response:
        return self.request("GET", url, allow_redirects=False, **kwargs)


def _session() -> Visitor:
    return Visitor()


@pytest.fixture
def private_dirs(settings, tmp_path):
    from django_sendfile.utils import _get_sendfile

    from config.celery import app

    settings.PRIVATE_ROOT = tmp_path / "private"
    settings.SENDFILE_ROOT = str(settings.PRIVATE_ROOT)
    settings.SENDFILE_BACKEND = "django_sendfile.backends.simple"
    settings.CELERY_BROKER_URL = None
    settings.STUDY_REPORT_OPTIONS = FAST_REPORT
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    _get_sendfile.cache_clear()  # django-sendfile2 caches the backend for the process
    yield settings.PRIVATE_ROOT
    _get_sendfile.cache_clear()
    app.conf.task_always_eager = previous


def _login(base: str, username: str) -> Visitor:
    """Sign in through the real admin login form (CSRF cookie and token, as a browser does)."""
    session = _session()
    session.get(f"{base}/admin/login/")
    response = session.request(
        "POST",
        f"{base}/admin/login/?next=/admin/",
        allow_redirects=False,
        data={
            "username": username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": "/admin/",
        },
        headers={"Referer": f"{base}/admin/login/"},
    )
    assert response.status_code == 302, response.text[:300]
    assert "sessionid" in session.cookies, "login failed"
    return session


def _user(username: str, *, staff: bool, perms: tuple[str, ...] = ()):
    user = get_user_model().objects.create_user(username, f"{username}@example.org", PASSWORD, is_staff=staff)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="study", codename=codename))
    return user


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_report_files_are_private_and_reach_only_staff_with_permission(
    live_server, private_dirs, stimulus_set, settings
):
    study = make_study(stimulus_set=stimulus_set)
    run_bots(study, 4)
    out = io.StringIO()
    # The contract: the command runs the admin's report task and prints the staff URL of report.html.
    call_command("study_report", study.slug, "--base-url", live_server.url, stdout=out)
    report = StudyReport.objects.get(study=study)
    assert report.status == StudyReport.Status.DONE, report.error
    html_url = f"{live_server.url}/staff/reports/{report.pk}/report.html"
    csv_url = f"{live_server.url}/staff/reports/{report.pk}/ratings.csv"
    assert out.getvalue().strip().endswith(html_url)

    folder = Path(settings.PRIVATE_ROOT) / report.folder
    assert (folder / "ratings.csv").is_file() and (folder / "report.html").is_file()
    media = Path(settings.MEDIA_ROOT)
    assert not list(media.rglob("ratings.csv")) and not list(media.rglob("report.html"))
    # The old public path is gone, whatever the media server.
    assert _session().get(f"{live_server.url}/media/{report.folder}/ratings.csv").status_code == 404

    anonymous = _session()
    for url in (html_url, csv_url):
        response = anonymous.get(url)
        assert response.status_code == 404, url
        assert "participant" not in response.text

    _user("visitor", staff=False, perms=("view_study", "view_studyreport"))
    _user("assistant", staff=True)  # staff, but no permission on studies
    _user("analyst", staff=True, perms=("view_study", "view_studyreport"))
    for name in ("visitor", "assistant"):
        session = _login(live_server.url, name) if name == "assistant" else _force_session(live_server, name)
        for url in (html_url, csv_url):
            response = session.get(url)
            assert response.status_code == 403, (name, url, response.status_code)
            assert "pseudonym" not in response.text

    analyst = _login(live_server.url, "analyst")
    csv = analyst.get(csv_url)
    assert csv.status_code == 200
    assert csv.content == (folder / "ratings.csv").read_bytes()
    assert csv.headers["Content-Disposition"].startswith("attachment")
    assert "no-store" in csv.headers["Cache-Control"]
    html = analyst.get(html_url)
    assert html.status_code == 200 and html.headers["Content-Type"].startswith("text/html")
    # The report runs no script even if a comment smuggled one in: sandboxed, no script source.
    policy = html.headers["Content-Security-Policy"]
    assert "sandbox" in policy and "script-src 'none'" in policy
    # Names outside the report's own file list are not served, traversal included.
    for name in ("../../secret_key", "..%2F..%2Fsecret_key", "nothing.csv"):
        assert analyst.get(f"{live_server.url}/staff/reports/{report.pk}/{name}").status_code == 404

    # The admin links go through the staff view.
    superuser = get_user_model().objects.create_superuser("boss", "boss@example.org", PASSWORD)
    assert superuser.is_superuser
    page = _login(live_server.url, "boss").get(f"{live_server.url}/admin/study/studyreport/{report.pk}/change/").text
    assert f'href="/staff/reports/{report.pk}/report.html"' in page
    assert "/media/" not in page


def _force_session(live_server, username: str) -> Visitor:
    """A signed-in non-staff user (the admin form refuses them), via a real session cookie."""
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    session = _session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    return session


@pytest.mark.django_db
def test_admin_export_leaves_no_file_behind(private_dirs, study):
    from django.test import Client

    run_bots(study, 2)
    user = get_user_model().objects.create_superuser("admin", "a@example.org", PASSWORD)
    client = Client()
    client.force_login(user)
    response = client.post("/admin/study/study/", {"action": "export_csv", "_selected_action": [study.pk]})
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert body.startswith(b"study,") or b"participant" in body.splitlines()[0]
    assert not [p for p in Path(private_dirs).rglob("*") if p.is_file()]


@pytest.mark.django_db
def test_export_and_report_actions_need_permission_on_participant_data(study):
    from django.test import Client

    _user("helper", staff=True, perms=("view_study", "change_study"))
    client = Client()
    client.force_login(get_user_model().objects.get(username="helper"))
    page = client.get("/admin/study/study/").content.decode()
    assert "export_csv" not in page and "generate_report" not in page
    response = client.post("/admin/study/study/", {"action": "export_csv", "_selected_action": [study.pk]})
    assert response.status_code in {200, 302} and not getattr(response, "streaming", False)


@pytest.mark.django_db
def test_behind_nginx_the_view_answers_with_x_accel_redirect(private_dirs, settings, study, admin_client):
    settings.SENDFILE_BACKEND = "django_sendfile.backends.nginx"
    settings.SENDFILE_URL = "/private-files"
    report = StudyReport.objects.create(
        study=study, status=StudyReport.Status.DONE, folder=f"reports/{study.slug}-9", files=["ratings.csv"]
    )
    folder = Path(private_dirs) / report.folder
    folder.mkdir(parents=True)
    (folder / "ratings.csv").write_text("participant,response\n")
    response = admin_client.get(f"/staff/reports/{report.pk}/ratings.csv")
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/private-files/reports/{study.slug}-9/ratings.csv"
    assert response.content == b""  # nginx sends the bytes from its internal location
    assert Client().get(f"/staff/reports/{report.pk}/ratings.csv").status_code == 404

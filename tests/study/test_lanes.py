"""The two middleware lanes of config.wsgi: participant pages skip what only the admin uses, and keep the rest.

Django's test client always runs settings.MIDDLEWARE, so these tests call the real WSGI application (the one
gunicorn serves) with hand-made environs and walk a participant to their first answer through it.
"""

from __future__ import annotations

import io
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.core import signals
from django.db import close_old_connections

from study.bots import read_page
from study.models import Participant, Rating
from tests.study.factories import make_study

pytestmark = pytest.mark.django_db


class WsgiBrowser:
    """A minimal cookie-keeping client for a WSGI callable (no Django test machinery in between)."""

    def __init__(self, application) -> None:
        self.application = application
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, data: dict | None = None) -> tuple[int, dict[str, list[str]], str]:
        path, _, query = path.partition("?")
        body = urlencode(data or {}).encode()
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "testserver",
            "HTTP_COOKIE": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
            "wsgi.version": (1, 0),
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if method == "POST":
            environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
            environ["CONTENT_LENGTH"] = str(len(body))
        seen = {}

        def start_response(status, headers, exc_info=None):
            seen["status"] = int(status.split()[0])
            seen["headers"] = headers

        # As Django's test client does: the request signals would close the test's transactional connection.
        signals.request_started.disconnect(close_old_connections)
        signals.request_finished.disconnect(close_old_connections)
        try:
            result = self.application(environ, start_response)
            text = b"".join(result).decode()
            if hasattr(result, "close"):
                result.close()
        finally:
            signals.request_started.connect(close_old_connections)
            signals.request_finished.connect(close_old_connections)
        headers: dict[str, list[str]] = {}
        for name, value in seen["headers"]:
            headers.setdefault(name.lower(), []).append(value)
        for raw in headers.get("set-cookie", []):
            cookie = SimpleCookie(raw)
            for key, morsel in cookie.items():
                self.cookies[key] = morsel.value
        return seen["status"], headers, text


@pytest.fixture
def wsgi_app():
    from config.wsgi import application

    return application


def test_participant_lane_is_the_full_chain_less_the_admin_only_middleware():
    lane = settings.PARTICIPANT_MIDDLEWARE
    assert lane == [m for m in settings.MIDDLEWARE if m in set(lane)]  # same order
    assert lane[0] == "study.request_guard.RequestGuardMiddleware"
    for kept in ("SecurityMiddleware", "CsrfViewMiddleware", "XFrameOptionsMiddleware", "CSPMiddleware"):
        assert any(m.endswith(kept) for m in lane), kept
    for skipped in ("SessionMiddleware", "AuthenticationMiddleware", "MessageMiddleware", "AxesMiddleware"):
        assert not any(m.endswith(skipped) for m in lane), skipped


def test_a_participant_answers_through_the_short_lane_with_every_header(wsgi_app, stimulus_set):
    study = make_study(stimulus_set=stimulus_set, trials_per_participant=3, practice_trials=0, attention_checks=0)
    browser = WsgiBrowser(wsgi_app)
    status, headers, _ = browser.request("GET", f"/s/{study.slug}/?PROLIFIC_PID=lane1")
    assert status == 303
    url = headers["location"][0]
    for _ in range(3):  # consent, instructions, then the first trial page
        status, headers, text = browser.request("GET", url)
        assert status == 200
        page = read_page(text)
        if page.step == "trials":
            break
        data = dict(page.hidden, **({"choice": "agree"} if page.step == "consent" else {}))
        assert browser.request("POST", url, data)[0] == 303
    assert page.step == "trials"
    # What the skipped middleware would have added is absent; the security headers and CSRF are not.
    assert "sessionid" not in browser.cookies and "csrftoken" in browser.cookies
    assert headers["x-frame-options"] == ["DENY"] and headers["x-content-type-options"] == ["nosniff"]
    assert "content-security-policy" in headers and headers["content-language"] == ["en"]
    # The page is never cached (so no Vary is needed); the full lane's LocaleMiddleware would add one.
    assert "no-store" in headers["cache-control"][0]
    assert "Accept-Language" not in ",".join(headers.get("vary", []))
    data = dict(page.hidden)
    for d in page.dimensions:
        data[d["data-dimension"]] = d["data-min"]
    forged = {k: v for k, v in data.items() if k != "csrfmiddlewaretoken"}
    assert browser.request("POST", url, forged)[0] == 403  # CSRF still guards the participant lane
    assert browser.request("POST", url, data)[0] == 303
    participant = Participant.objects.get(public_id=url.rstrip("/").rsplit("/", 1)[-1])
    assert participant.position == 1
    assert Rating.objects.filter(trial__participant=participant).count() == len(page.dimensions)


def test_other_urls_keep_the_full_chain(wsgi_app):
    browser = WsgiBrowser(wsgi_app)
    status, headers, _ = browser.request("GET", "/admin/login/")
    assert status == 200
    # LocaleMiddleware (full lane only) negotiates the admin's language and says so.
    assert "content-language" in headers and "Accept-Language" in headers["vary"][0]
    assert "content-security-policy" in headers

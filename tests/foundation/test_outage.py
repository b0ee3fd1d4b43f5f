"""A database outage, seen from a real gunicorn process: calm 503 pages, a health check that names no hosts."""

from __future__ import annotations

import sys

import requests
from django.test import RequestFactory

from config.error_views import server_error
from tests.servers import free_port, gunicorn

CALM = "The answers you have given so far are saved"


def test_database_outage_gives_calm_503_pages_and_a_quiet_health_check(tmp_path) -> None:
    closed = free_port()  # nothing listens here: the database is "down"
    log = tmp_path / "gunicorn.log"
    with gunicorn(
        log=log,
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed}/nowhere",
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
    ) as base:
        for path in ("/s/example/", "/s/example/?PROLIFIC_PID=abc&STUDY_ID=s&SESSION_ID=x", "/s/example/p/abc/"):
            response = requests.get(f"{base}{path}", timeout=30, allow_redirects=False)
            assert response.status_code == 503, (path, response.status_code, response.text[:300])
            assert CALM in response.text and "reload" in response.text
            assert response.headers["Retry-After"] == "60"
            assert "Traceback" not in response.text and str(closed) not in response.text
            assert "Server Error (500)" not in response.text
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        health = requests.get(f"{base}/healthz", timeout=30)
        assert health.status_code == 503
        assert health.json() == {"status": "down", "database": "down", "broker": "ok"}
        assert str(closed) not in health.text and "127.0.0.1" not in health.text
    # The details are in the server's log, for the operator.
    assert "healthz: database is down" in log.read_text() and str(closed) in log.read_text()


def test_an_unexpected_error_gives_the_calm_500_page() -> None:
    request = RequestFactory().get("/s/example/")
    try:
        raise ValueError("a bug")
    except ValueError:
        assert sys.exc_info()[0] is ValueError
        response = server_error(request)
    assert response.status_code == 500
    assert CALM in response.content.decode() and "Retry-After" not in response

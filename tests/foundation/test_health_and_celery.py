"""The foundation's promises: /healthz, the Celery round trip through a real broker, eager mode."""

from __future__ import annotations

import os

import pytest
from django.test import Client

from config.tasks import ping


@pytest.mark.django_db
def test_healthz_reports_database_and_broker(admin_client) -> None:
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body == {"status": "ok", "database": "ok", "broker": "ok"}  # nothing more for the public
    details = admin_client.get("/healthz").json()["details"]  # staff see the details
    assert details["database"]["ok"] is True
    assert details["broker"]["ok"] is True
    expected_mode = "broker" if os.environ.get("CELERY_BROKER_URL") else "eager"
    assert details["broker"]["mode"] == expected_mode


@pytest.mark.django_db
def test_healthz_reports_unreachable_broker_as_503_without_details(settings, admin_client, caplog) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "down", "database": "ok", "broker": "down"}
    assert "127.0.0.1" not in response.content.decode()
    assert any("127.0.0.1:1" in r.getMessage() for r in caplog.records)  # the details go to the log
    staff = admin_client.get("/healthz")
    assert staff.status_code == 503 and staff.json()["details"]["broker"]["ok"] is False


def test_healthz_rejects_post() -> None:
    assert Client().post("/healthz").status_code == 405


@pytest.mark.broker
def test_task_travels_through_broker_to_a_worker_process(celery_worker_process) -> None:
    result = ping.delay("hello")
    answer = result.get(timeout=30)
    assert answer["payload"] == "hello"
    assert answer["pid"] == celery_worker_process.pid
    assert answer["pid"] != os.getpid()


def test_eager_mode_without_broker(settings) -> None:
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        answer = ping.delay("local").get()
    finally:
        app.conf.task_always_eager = previous
    assert answer == {"payload": "local", "pid": os.getpid(), "host": answer["host"]}

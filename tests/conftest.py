"""Fixtures shared by every test module: service requirements and a real Celery worker process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    """In CI (REQUIRE_SERVICES=1) a missing service is a failure; locally the test is skipped."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def database_url_for_test_db() -> str:
    """The URL of the database pytest-django created, for processes started by a test."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}{port}/{db['NAME']}"


def subprocess_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings.base", "PYTHONUNBUFFERED": "1"})
    env.update(overrides)
    return env


@pytest.fixture
def celery_worker_process(transactional_db, settings, tmp_path) -> Iterator[subprocess.Popen]:
    """A real `celery worker` process on the configured broker, using the test database.

    Tests using it must commit their data (transactional_db) so the worker can see it.
    """
    broker = os.environ.get("CELERY_BROKER_URL")
    if not broker:
        skip_or_fail("CELERY_BROKER_URL is not set (CI sets it to Redis)")
    from config.celery import app, broker_connection_error

    error = broker_connection_error(timeout=3)
    if error is not None:
        skip_or_fail(f"broker {broker} unreachable: {error}")
    app.control.purge()
    log = tmp_path / "worker.log"
    queues = ",".join(q for q in ["celery", settings.CELERY_GPU_QUEUE] if q)
    env = subprocess_env(
        DATABASE_URL=database_url_for_test_db(),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        WEIGHTS_DIR=str(settings.WEIGHTS_DIR),
    )
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool=solo",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-Q",
                queues,
                "--loglevel=INFO",
                "-n",
                f"test-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    pytest.fail(f"worker exited early:\n{log.read_text()[-3000:]}")
                if app.control.ping(timeout=0.5):
                    break
            else:
                pytest.fail(f"worker did not answer pings within 60 s:\n{log.read_text()[-3000:]}")
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

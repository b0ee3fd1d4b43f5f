"""Set-up mistakes give one readable line, and the production settings pass `check --deploy`."""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest

from tests.conftest import ROOT, subprocess_env


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        ("nonsense://what", "configuration error"),
        ("postgres://nobody@127.0.0.1:1/nowhere", "cannot use the database"),
    ],
)
def test_bad_database_url_gives_one_line(database_url: str, expected: str) -> None:
    result = run_manage("migrate", "--check", DATABASE_URL=database_url)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in result.stderr


def test_unreachable_broker_gives_one_line() -> None:
    result = run_manage("celery_ping", "--timeout", "2", CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot reach the Celery broker at redis://127.0.0.1:1/0" in lines[0]


def test_production_settings_pass_check_deploy(tmp_path) -> None:
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        MEDIA_ROOT=str(tmp_path / "media"),  # the worktree's var/media may hold files of other tests
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY=secrets.token_urlsafe(64),
        PSEUDONYM_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="studies.example.org",
        CACHE_URL="redis://127.0.0.1:6379/2",
        DEBUG="false",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def _env_example() -> dict[str, str]:
    lines = (ROOT / "docker" / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


@pytest.mark.parametrize(
    ("secret_key", "pseudonym_key", "expected"),
    [
        ("EXAMPLE", "EXAMPLE", ["project.E001", "project.E003"]),  # both copied from docker/.env.example
        ("short-but-random-Zq8", "OTHER", ["project.E001"]),
        ("GOOD", "SAME", ["project.E002"]),  # the pseudonym key equal to the secret key
    ],
)
def test_check_deploy_fails_on_placeholder_short_or_shared_keys(secret_key, pseudonym_key, expected) -> None:
    example = _env_example()
    good, other = secrets.token_urlsafe(64), secrets.token_urlsafe(64)
    secret = {"EXAMPLE": example["SECRET_KEY"], "GOOD": good}.get(secret_key, secret_key)
    pseudonym = {"EXAMPLE": example["PSEUDONYM_KEY"], "OTHER": other, "SAME": secret}[pseudonym_key]
    result = run_manage(
        "check",
        "--deploy",
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY=secret,
        PSEUDONYM_KEY=pseudonym,
        ALLOWED_HOSTS="studies.example.org",
        DEBUG="false",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    for check_id in expected:
        assert check_id in result.stderr
    assert "ERRORS" in result.stderr and "Traceback" not in result.stderr
    assert secret not in result.stderr  # the error names the problem, never the key


def test_production_settings_require_pseudonym_key() -> None:
    env = subprocess_env(
        DJANGO_SETTINGS_MODULE="config.settings.production", ALLOWED_HOSTS="x.org", SECRET_KEY=secrets.token_urlsafe(64)
    )
    env.pop("PSEUDONYM_KEY", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: configuration error: Set the PSEUDONYM_KEY environment variable"
    ]


def test_production_settings_require_secret_key() -> None:
    env = subprocess_env(DJANGO_SETTINGS_MODULE="config.settings.production", ALLOWED_HOSTS="x.org")
    env.pop("SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: configuration error: Set the SECRET_KEY environment variable"]


def test_production_settings_require_a_shared_cache_for_the_rate_limits() -> None:
    result = run_manage(
        "check",
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY="x" * 20 + "a-long-random-production-secret-key-0123456789",
        ALLOWED_HOSTS="studies.example.org",
        PSEUDONYM_KEY="another-long-random-key-for-pseudonyms-0123456789",
        CACHE_URL="",
        REDIS_URL="",
        DEBUG="false",
    )
    assert result.returncode != 0
    assert "django_ratelimit.E003" in result.stderr + result.stdout

"""Deployment checks that fail (Error level) instead of warning: `manage.py check --deploy`.

Django only warns about a weak SECRET_KEY; a placeholder copied from docker/.env.example signs every session
and, worse, used to be the pseudonym key too, so anyone with the repository could re-identify participants.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

MIN_KEY_LENGTH = 50
MIN_UNIQUE_CHARACTERS = 5
# Words that mark a value as copied from an example file rather than generated.
PLACEHOLDER_MARKERS = (
    "change-me",
    "change_me",
    "changeme",
    "replace-me",
    "your-secret",
    "placeholder",
    "django-insecure",
    "example",
)


def key_problem(value: str) -> str | None:
    """Why a key is unfit for production, or None."""
    if not value:
        return "is empty"
    lowered = value.lower()
    marker = next((m for m in PLACEHOLDER_MARKERS if m in lowered), None)
    if marker is not None:
        return f"is a placeholder (contains {marker!r})"
    if len(value) < MIN_KEY_LENGTH:
        return f"is too short ({len(value)} characters; use at least {MIN_KEY_LENGTH})"
    if len(set(value)) < MIN_UNIQUE_CHARACTERS:
        return "has too few distinct characters"
    return None


GENERATE = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(64))'"


@register(Tags.security, deploy=True)
def check_keys(app_configs=None, **kwargs) -> list:
    errors = []
    secret_problem = key_problem(settings.SECRET_KEY)
    if secret_problem:
        errors.append(Error(f"SECRET_KEY {secret_problem}.", hint=GENERATE, id="project.E001"))
    pseudonym_key = getattr(settings, "PSEUDONYM_KEY", "")
    if pseudonym_key == settings.SECRET_KEY:
        errors.append(
            Error(
                "PSEUDONYM_KEY is not set or equals SECRET_KEY.",
                hint="Set PSEUDONYM_KEY to its own random value and keep it for the life of the study (changing it "
                "breaks resuming); " + GENERATE,
                id="project.E002",
            )
        )
    else:
        pseudonym_problem = key_problem(pseudonym_key)
        if pseudonym_problem:
            errors.append(Error(f"PSEUDONYM_KEY {pseudonym_problem}.", hint=GENERATE, id="project.E003"))
    return errors


@register(Tags.security, deploy=True)
def check_private_files(app_configs=None, **kwargs) -> list:
    """Reports written by older versions sit in the public media tree; a proxy serving /media/ would expose them."""
    legacy = Path(settings.MEDIA_ROOT) / "reports"
    if legacy.is_dir() and any(legacy.iterdir()):
        return [
            Warning(
                f"{legacy} holds reports (participant data) inside the public MEDIA_ROOT.",
                hint=f"Move them to {Path(settings.PRIVATE_ROOT) / 'reports'} or delete them; reports are "
                "now written under PRIVATE_ROOT and served to staff only.",
                id="project.W001",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_stimulus_file_times(app_configs=None, **kwargs) -> list:
    """Stimulus files written by older versions keep their own mtimes, which a proxy sends as Last-Modified."""
    import os

    from generation.files import STIMULI_DIR, STIMULUS_MTIME

    folder = Path(settings.MEDIA_ROOT) / STIMULI_DIR
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        dated = sum(1 for e in entries if e.is_file() and int(e.stat().st_mtime) != STIMULUS_MTIME)
    if not dated:
        return []
    return [
        Warning(
            f"{dated} stimulus file(s) in {folder} carry their own modification time, which can reveal the "
            "condition through Last-Modified.",
            hint="Run: python manage.py make_stimuli_uniform",
            id="project.W002",
        )
    ]

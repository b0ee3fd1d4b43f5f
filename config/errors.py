"""Turn the set-up mistakes people actually make into one readable line instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Sequence


class SetupError(Exception):
    """A configuration problem the user can fix; its message says how."""


def describe_setup_error(exc: BaseException) -> str | None:
    """Return a one-line explanation for known set-up failures, or None for real bugs."""
    from django.core.exceptions import ImproperlyConfigured
    from django.db.utils import OperationalError as DatabaseOperationalError

    if isinstance(exc, SetupError):
        return str(exc)
    if isinstance(exc, ImproperlyConfigured):
        return f"configuration error: {first_line(exc)}"
    if isinstance(exc, DatabaseOperationalError):
        from django.conf import settings

        db = settings.DATABASES["default"]
        where = db.get("HOST") or db.get("NAME")
        return (
            f"cannot use the database ({db['ENGINE'].rsplit('.', 1)[-1]} at {where}): "
            f"{first_line(exc)} — check DATABASE_URL and that the server is running"
        )
    try:
        from kombu.exceptions import OperationalError as BrokerOperationalError
    except ImportError:  # pragma: no cover - kombu ships with celery
        return None
    if isinstance(exc, BrokerOperationalError):
        return broker_unreachable_message(exc)
    return None


def broker_unreachable_message(exc: BaseException) -> str:
    from django.conf import settings

    return (
        f"cannot reach the Celery broker at {settings.CELERY_BROKER_URL}: {first_line(exc)} — "
        "start Redis, or unset CELERY_BROKER_URL to run tasks in-process"
    )


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def run_with_readable_errors(argv: Sequence[str]) -> None:
    """Run a management command; known set-up failures exit 1 with a single line on stderr."""
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(list(argv))
    except Exception as exc:
        message = describe_setup_error(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(1) from None

"""The Celery app: tasks are autodiscovered in the Django apps; no broker means eager, in-process runs."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("aesthetics")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    broker_connection_retry_on_startup=True,
    broker_connection_timeout=5,
    # Publishing to a dead broker fails after a few seconds instead of hanging forever.
    broker_transport_options={"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_track_started=True,
    result_expires=60 * 60 * 24,
)
app.autodiscover_tasks(["config", "generation", "study"])
# `celery -A config beat` runs these; nothing depends on it (assignment releases the idle on the fly too).
app.conf.beat_schedule = {
    "release-idle-participants": {"task": "study.release_idle_participants", "schedule": 300.0},
}


def broker_connection_error(timeout: float = 3.0) -> Exception | None:
    """Try one connection to the configured broker; the exception if it fails, None if it works or is eager."""
    from django.conf import settings

    if settings.CELERY_BROKER_URL is None:
        return None
    try:
        with app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - any failure to connect means the same thing to the user
        return exc
    return None


def require_broker(timeout: float = 3.0) -> None:
    """Fail fast, with one line that says what to do, when a configured broker is unreachable.

    Without it, publishing to a dead Redis blocks for ~20 s of reconnect attempts and ends in a
    traceback. In eager mode (no broker) there is nothing to check.
    """
    from config.errors import SetupError, broker_unreachable_message

    error = broker_connection_error(timeout)
    if error is not None:
        raise SetupError(broker_unreachable_message(error))

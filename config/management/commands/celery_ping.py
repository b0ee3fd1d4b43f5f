"""`manage.py celery_ping`: send the health task through the broker and wait for a worker's answer."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.errors import SetupError, broker_unreachable_message


class Command(BaseCommand):
    help = "Round-trip a task through the Celery broker to a worker (or run it eagerly without a broker)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a worker")

    def handle(self, *args: object, timeout: float, **options: object) -> None:
        from celery.exceptions import TimeoutError as CeleryTimeoutError
        from kombu.exceptions import OperationalError

        from config.celery import require_broker
        from config.tasks import ping

        require_broker()
        try:
            answer = ping.delay("pong").get(timeout=timeout)
        except OperationalError as exc:
            raise SetupError(broker_unreachable_message(exc)) from None
        except CeleryTimeoutError:
            raise CommandError(
                f"no worker answered within {timeout:g} s; start one with: celery -A config worker"
            ) from None
        mode = "eager (no broker)" if settings.CELERY_BROKER_URL is None else settings.CELERY_BROKER_URL
        self.stdout.write(f"pong from pid {answer['pid']} on {answer['host']} via {mode}")

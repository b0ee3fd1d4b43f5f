"""`manage.py study_report SLUG`: the admin's "Generate report", from the shell; prints the staff URL of report.html.

Same service, same Celery task. Without a broker the task runs on this process's worker thread, and the command
waits for it; with one it queues the task and, with --wait, polls until the worker is done.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.background import wait_idle
from config.errors import SetupError
from study import services
from study.models import Study, StudyReport
from study.private_files import report_file_url

POLL_S = 1.0


class Command(BaseCommand):
    help = "Generate a study's analysis report (as the admin action does) and print the staff URL of report.html."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="this site's address, to print a full URL"
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=None,
            metavar="SECONDS",
            help="with a broker: wait up to this long for the worker (default: do not wait)",
        )

    def handle(self, *args, slug: str, base_url: str, wait: float | None, **options) -> None:
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise SetupError(f"no study {slug!r}; load it first: python manage.py load_study STUDY.yaml")
        report = services.study_report_request(study=study, actor_label="command line")
        if settings.CELERY_BROKER_URL is None:
            wait_idle(timeout=wait or 3600.0)
        elif wait is not None:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                report.refresh_from_db()
                if report.status in {StudyReport.Status.DONE, StudyReport.Status.FAILED}:
                    break
                time.sleep(POLL_S)
        report.refresh_from_db()
        url = report_file_url(report=report, name="report.html", base_url=base_url)
        if report.status == StudyReport.Status.FAILED:
            raise CommandError(f"report {report.pk} of {slug} failed: {report.error.splitlines()[0]}")
        if report.status != StudyReport.Status.DONE:
            self.stdout.write(
                f"report {report.pk} of {slug} is {report.status} (queued on the broker); when done: {url}"
            )
            return
        self.stdout.write(f"report {report.pk} of {slug}: {url}")

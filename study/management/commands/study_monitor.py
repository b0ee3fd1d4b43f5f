"""`manage.py study_monitor SLUG [--json]`: the monitor's numbers (counts by outcome, coverage, durations)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from config.errors import SetupError
from study.models import Study
from study.monitor import COUNT_KEYS, study_monitor


class Command(BaseCommand):
    help = "Print a study's progress: participants by outcome, ratings, completion rate, coverage."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="One JSON object (what the admin monitor polls)."
        )

    def handle(self, *args, slug: str, as_json: bool, **options) -> None:
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise SetupError(f"no study {slug!r}")
        data = study_monitor(study=study)
        if as_json:
            self.stdout.write(json.dumps(data, sort_keys=True))
            return
        self.stdout.write(f"{study.slug} ({data['status']}): " + ", ".join(f"{k} {data[k]}" for k in COUNT_KEYS))
        rate = data["completion_rate"]
        self.stdout.write(
            f"completion rate {'-' if rate is None else f'{100 * rate:.1f} %'}, median duration "
            f"{data['median_duration_s'] or '-'} s, attention checks failed "
            f"{data['attention_checks_failed']} of {data['attention_checks_answered']}"
        )
        coverage = data["coverage"]
        self.stdout.write(
            f"ratings per stimulus over {coverage['stimuli']} stimuli: min {coverage['min']}, "
            f"median {coverage['median']}, max {coverage['max']}"
        )
        for problem in data.get("readiness_problems", []):
            self.stdout.write(f"not ready: {problem}")

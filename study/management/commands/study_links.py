"""`manage.py study_links SLUG`: the participant link, the pilot preview link and the admin link."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from config.errors import SetupError
from study.models import Study
from study.selectors import study_links


class Command(BaseCommand):
    help = "Print the links a researcher needs for a study."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, slug: str, base_url: str, **options) -> None:
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise SetupError(f"no study {slug!r}; load it first: python manage.py load_study STUDY.yaml")
        for label, url in study_links(study=study, base_url=base_url).items():
            self.stdout.write(f"{label + ':':<14} {url}")

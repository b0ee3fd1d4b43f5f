"""`manage.py load_study STUDY.yaml`: create or update a study from its file (studies as code)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from study import selectors, services
from study.spec import study_spec_read


class Command(BaseCommand):
    help = "Create or update a study (by slug) from a YAML file; --publish makes it live after the readiness check."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--publish", action="store_true", help="Set the study live (refused if not ready).")
        parser.add_argument(
            "--force", action="store_true", help="Allow design changes although participants have started."
        )

    def handle(self, *args, path: Path, publish: bool, force: bool, **options) -> None:
        spec = study_spec_read(path)
        if publish:
            spec.status = "live"
        study, created = services.study_load(spec=spec, force=force)
        n_stimuli = selectors.study_stimuli(study=study).count()
        self.stdout.write(
            f"{'created' if created else 'updated'} study {study.slug!r} ({study.status}): "
            f"{study.dimensions.count()} dimensions, {n_stimuli} stimuli, "
            f"{study.trials_per_participant} trials per participant"
        )
        problems = selectors.study_readiness_problems(study=study)
        if problems:
            self.stdout.write(f"not ready to publish: {'; '.join(problems)}")

"""`make_stimuli_uniform [SET ...]`: re-encode and re-date stimulus files stored by older versions.

Older imports kept the source bytes (extension, EXIF, text chunks) and every file its own mtime; both can tell
conditions apart. Run once after upgrading; `check --deploy` warns (project.W002) until it has run.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from config.errors import SetupError
from generation.models import StimulusSet
from generation.services import stimuli_make_uniform


class Command(BaseCommand):
    help = "Re-encode imported stimuli to their set's format without metadata; give every stimulus file one mtime."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("sets", nargs="*", help="set names (default: all sets)")

    def handle(self, *args, sets: list[str], **options) -> None:
        stimulus_sets = list(StimulusSet.objects.filter(name__in=sets) if sets else StimulusSet.objects.all())
        missing = sorted(set(sets) - {s.name for s in stimulus_sets})
        if missing:
            raise SetupError(f"no stimulus set {', '.join(missing)}")
        encoded, dated = stimuli_make_uniform(stimulus_sets=stimulus_sets)
        self.stdout.write(
            f"{len(stimulus_sets)} set(s): re-encoded {encoded} imported image(s), re-dated {dated} file(s)"
        )

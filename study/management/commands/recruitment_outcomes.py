"""`manage.py recruitment_outcomes SLUG IDS.txt|IDS.csv [--out FILE]`: each recruitment id's outcome, as CSV."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from config.errors import SetupError
from study import operations
from study.models import Study


class Command(BaseCommand):
    help = (
        "Match recruitment ids (one per line, or Prolific's submissions CSV) to outcomes by hash; the ids are "
        "not stored."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("ids", type=Path, help="Text file of ids, or a CSV with a participant id column.")
        parser.add_argument("--out", type=Path, help="Write the CSV here instead of standard output.")

    def handle(self, *args, slug: str, ids: Path, out: Path | None, **options) -> None:
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise SetupError(f"no study {slug!r}")
        try:
            text = ids.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise SetupError(f"cannot read {ids}: {exc.strerror}") from None
        csv_text = operations.recruitment_outcomes_csv(
            study=study, recruitment_ids=operations.recruitment_ids_parse(text), actor_label=operations.COMMAND_LINE
        )
        if out is None:
            self.stdout.write(csv_text, ending="")
        else:
            out.write_text(csv_text, encoding="utf-8")
            self.stdout.write(f"wrote {csv_text.count(chr(10)) - 1} rows to {out}")

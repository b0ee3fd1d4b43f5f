"""`manage.py export_ratings SLUG --out FILE.csv|.parquet`: the long-format analysis input."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from config.errors import SetupError
from study import operations, services
from study.models import AuditEntry, Study


class Command(BaseCommand):
    help = "Write one row per rating (long format) to CSV or Parquet, by the file's extension."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--out", type=Path, help="Output file (.csv or .parquet); default SLUG-ratings.csv")
        parser.add_argument("--include-pilot", action="store_true", help="Also export pilot participants.")

    def handle(self, *args, slug: str, out: Path | None, include_pilot: bool, **options) -> None:
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise SetupError(f"no study {slug!r}")
        out = out or Path(f"{slug}-ratings.csv")
        rows = services.ratings_export(study=study, path=out, include_pilot=include_pilot)
        operations.audit_record(
            action=AuditEntry.Action.EXPORT,
            study=study,
            actor_label=operations.COMMAND_LINE,
            rows=rows,
            detail={"file": out.name, "include_pilot": include_pilot},
        )
        self.stdout.write(f"wrote {rows} ratings to {out}")

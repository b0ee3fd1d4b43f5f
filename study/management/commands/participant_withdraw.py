"""`manage.py participant_withdraw SLUG --recruitment-id ID | --pseudonym P`: erasure of one participant."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from config.errors import SetupError
from study import operations
from study.models import Study


class Command(BaseCommand):
    help = "Withdraw one participant: delete their trials, ratings and questionnaire, mark reports/exports stale."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--recruitment-id", default="", help="e.g. the Prolific ID (hashed here, never stored).")
        who.add_argument("--pseudonym", default="", help="The export's `participant` column.")

    def handle(self, *args, slug: str, recruitment_id: str, pseudonym: str, **options) -> None:
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise SetupError(f"no study {slug!r}")
        try:
            participant = operations.participant_find(study=study, recruitment_id=recruitment_id, pseudonym=pseudonym)
        except operations.OperationError as exc:
            raise SetupError(str(exc)) from None
        result = operations.participant_withdraw(participant=participant, actor_label=operations.COMMAND_LINE)
        self.stdout.write(
            f"withdrew 1 participant of {slug}: removed {result.rows} rows ({result.ratings} ratings, "
            f"{result.trials} trials, {result.questionnaires} questionnaire); marked {result.reports_marked_stale} "
            f"report(s) and {result.exports_marked_stale} export(s) stale"
        )

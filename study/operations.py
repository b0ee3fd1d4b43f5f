"""Participant operations: find by recruitment id, withdraw (erasure), release the idle, screen out, match a
recruitment list to outcomes, and the audit log every data operation writes to.

Recruitment ids are never stored (only their keyed hashes, see `services.pseudonym_for`), so every lookup by
recruitment id hashes the query with the same key and matches the hash.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Max, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from study.models import AuditEntry, Participant, QuestionnaireResponse, Rating, Study, StudyReport, Trial, new_token

# The query-string sources whose ids are hashed as `<source>:<id>` (views._recruitment decides which one arrived).
RECRUITMENT_SOURCES = ("prolific", "pid")
RECRUITMENT_ID = re.compile(r"^[A-Za-z0-9_.@:-]{1,128}$")
ACTIVE_STEPS = [Participant.Step.INSTRUCTIONS, Participant.Step.TRIALS, Participant.Step.QUESTIONNAIRE]
OUTCOME_COLUMNS = ["recruitment_id", "outcome", "suggested_action", "attention_failures", "started_at", "completed_at"]
# What a researcher usually does on Prolific for each outcome; a suggestion, the researcher decides.
SUGGESTED_ACTION = {
    "completed": "approve",
    "screened_out": "screened out: pay the screen-out rate",
    "declined": "ask to return (no consent)",
    "released": "timed out or returned",
    "in_progress": "wait: still in the study",
    "on_consent_page": "wait: has not consented yet",
    "not_found": "never entered (or withdrew)",
}
AUTOMATIC = "automatic"
COMMAND_LINE = "command line"


class OperationError(Exception):
    """An operation a researcher asked for cannot be done; the message says why."""


def actor_label_of(user) -> str:
    return getattr(user, "get_username", lambda: "")() or AUTOMATIC


def audit_record(
    *,
    action: str,
    study: Study | None = None,
    actor=None,
    actor_label: str = "",
    rows: int = 0,
    detail: Mapping[str, object] | None = None,
) -> AuditEntry:
    """Append one entry to the audit log; `actor` is a user (admin) or None with a label (command, automatic)."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEntry.objects.create(
        action=action,
        study=study,
        study_slug=study.slug if study else "",
        actor=user,
        actor_label=actor_label or (actor_label_of(user) if user else AUTOMATIC),
        rows=rows,
        detail=dict(detail or {}),
    )


def recruitment_pseudonyms(*, external_id: str) -> list[str]:
    """The pseudonyms a recruitment id can have (one per source); empty when it cannot be an id at all."""
    from study.services import pseudonym_for

    external_id = external_id.strip()
    if not RECRUITMENT_ID.match(external_id):
        return []
    return [pseudonym_for(source=source, external_id=external_id) for source in RECRUITMENT_SOURCES]


def participant_find(*, study: Study, recruitment_id: str = "", pseudonym: str = "") -> Participant:
    """The participant of this study with that recruitment id (hashed here) or pseudonym; OperationError if none."""
    if bool(recruitment_id) == bool(pseudonym):
        raise OperationError("give either a recruitment id or a pseudonym")
    hashes = recruitment_pseudonyms(external_id=recruitment_id) if recruitment_id else [pseudonym.strip()]
    if not hashes:
        raise OperationError(f"{recruitment_id!r} is not a valid recruitment id")
    participant = Participant.objects.filter(study=study, pseudonym__in=hashes).first()
    if participant is None:
        what = "recruitment id" if recruitment_id else "pseudonym"
        raise OperationError(
            f"no participant of study {study.slug!r} with that {what} (withdrawn already, or never entered)"
        )
    return participant


@dataclass(frozen=True)
class Withdrawal:
    ratings: int
    trials: int
    questionnaires: int
    reports_marked_stale: int
    exports_marked_stale: int

    @property
    def rows(self) -> int:
        """Rows erased: what the command prints and the audit log records."""
        return self.ratings + self.trials + self.questionnaires


def participant_withdraw(*, participant: Participant, actor=None, actor_label: str = "") -> Withdrawal:
    """Erase a participant's trials, ratings and questionnaire (GDPR erasure) and mark earlier outputs stale.

    The participant row stays as an anonymous tombstone so the monitor can count withdrawals: its pseudonym and
    page token are replaced by random ones (the recruitment id no longer leads to it), its recruitment hashes and
    browser string cleared, and it is released so it counts for nothing. Reports and exports made before now
    contain the erased rows, so they are marked stale.
    """
    now = timezone.now()
    with transaction.atomic():
        current = Participant.objects.select_for_update().select_related("study").get(pk=participant.pk)
        if current.withdrawn_at is not None:
            return Withdrawal(0, 0, 0, 0, 0)
        study = current.study
        # Ratings first, so the trials' delete counts only trials.
        ratings, _ = Rating.objects.filter(trial__participant=current).delete()
        trials, _ = Trial.objects.filter(participant=current).delete()
        questionnaires, _ = QuestionnaireResponse.objects.filter(participant=current).delete()
        Participant.objects.filter(pk=current.pk).update(
            withdrawn_at=now,
            released_at=Coalesce("released_at", now),
            pseudonym=f"withdrawn-{new_token()}",
            public_id=new_token(),
            recruitment={},
            user_agent="",
            seed=None,
            position=0,
        )
        reports = StudyReport.objects.filter(study=study, created_at__lte=now, stale_since=None).update(stale_since=now)
        exports = AuditEntry.objects.filter(
            study=study, action=AuditEntry.Action.EXPORT, created_at__lte=now, stale_since=None
        ).update(stale_since=now)
        result = Withdrawal(
            ratings=ratings,
            trials=trials,
            questionnaires=questionnaires,
            reports_marked_stale=reports,
            exports_marked_stale=exports,
        )
        audit_record(
            action=AuditEntry.Action.WITHDRAWAL,
            study=study,
            actor=actor,
            actor_label=actor_label,
            rows=result.rows,
            detail={
                "ratings": result.ratings,
                "trials": result.trials,
                "questionnaires": result.questionnaires,
                "reports_marked_stale": reports,
                "exports_marked_stale": exports,
            },
        )
    participant.refresh_from_db()
    return result


def idle_participants(*, study: Study, now: datetime | None = None) -> QuerySet[Participant]:
    """Consented, unfinished, unreleased participants with no answer for longer than the study's time limit."""
    if not study.time_limit_minutes:
        return Participant.objects.none()
    cutoff = (now or timezone.now()) - timedelta(minutes=study.time_limit_minutes)
    return (
        Participant.objects.filter(study=study, released_at=None, consented_at__isnull=False, step__in=ACTIVE_STEPS)
        .annotate(last_active=Coalesce(Max("trials__answered_at"), "consented_at"))
        .filter(last_active__lt=cutoff)
    )


def participants_release_idle(*, study: Study, now: datetime | None = None) -> int:
    """Release the idle participants of one study (their stimuli go to newcomers) and log it; returns how many."""
    from study.services import participants_release

    ids = list(idle_participants(study=study, now=now).values_list("pk", flat=True))
    if not ids:
        return 0
    released = participants_release(participants=Participant.objects.filter(pk__in=ids))
    if released:
        audit_record(
            action=AuditEntry.Action.RELEASE,
            study=study,
            rows=released,
            detail={"reason": "idle", "time_limit_minutes": study.time_limit_minutes},
        )
    return released


def studies_release_idle(*, now: datetime | None = None) -> dict[str, int]:
    """The periodic sweep (Celery beat): every study with a time limit; {slug: released} for those that had any."""
    released = {}
    for study in Study.objects.filter(time_limit_minutes__isnull=False).exclude(status=Study.Status.DRAFT):
        n = participants_release_idle(study=study, now=now)
        if n:
            released[study.slug] = n
    return released


def participant_screen_out_if_due(*, participant: Participant, failures: int) -> bool:
    """Screen out after the study's number of failed attention checks; True if this call did it.

    Called inside the answer's transaction, after the failure was counted; the step's compare-and-set means a
    racing request cannot screen out twice.
    """
    limit = participant.study.screen_out_after
    if not limit or failures < limit:
        return False
    return bool(
        Participant.objects.filter(
            pk=participant.pk,
            step__in=[Participant.Step.TRIALS, Participant.Step.QUESTIONNAIRE],
            released_at=None,
        ).update(step=Participant.Step.SCREENED_OUT, screened_out_at=timezone.now())
    )


def recruitment_ids_parse(text: str) -> list[str]:
    """Recruitment ids from pasted text: one per line, or a CSV whose header names the id column (Prolific's)."""
    rows = [row for row in csv.reader(io.StringIO(text.strip())) if any(cell.strip() for cell in row)]
    if not rows:
        return []
    column = 0
    header = [cell.strip().lower().replace(" ", "_") for cell in rows[0]]
    for i, name in enumerate(header):
        if name in {"participant_id", "prolific_pid", "participant", "pid", "recruitment_id"}:
            column, rows = i, rows[1:]
            break
    ids = []
    for row in rows:
        value = row[column].strip() if column < len(row) else ""
        if value and value not in ids:
            ids.append(value)
    return ids


def _outcome(row: Mapping[str, object]) -> str:
    if row["step"] == Participant.Step.DONE:
        return "completed"
    if row["step"] == Participant.Step.SCREENED_OUT:
        return "screened_out"
    if row["step"] == Participant.Step.DECLINED:
        return "declined"
    if row["released_at"] is not None:
        return "released"
    if row["step"] == Participant.Step.CONSENT:
        return "on_consent_page"
    return "in_progress"


def recruitment_outcomes(*, study: Study, recruitment_ids: Iterable[str]) -> list[dict[str, object]]:
    """One row per given recruitment id with its outcome in this study, matched by hash (one query).

    The ids come from the researcher (e.g. pasted from Prolific's submissions list) and are not stored.
    """
    ids = list(dict.fromkeys(i.strip() for i in recruitment_ids if i.strip()))
    hash_to_id = {h: external_id for external_id in ids for h in recruitment_pseudonyms(external_id=external_id)}
    found = {
        hash_to_id[row["pseudonym"]]: row
        for row in Participant.objects.filter(study=study, pseudonym__in=list(hash_to_id)).values(
            "pseudonym", "step", "released_at", "attention_failures", "started_at", "completed_at", "screened_out_at"
        )
    }
    rows = []
    for external_id in ids:
        row = found.get(external_id)
        outcome = _outcome(row) if row else "not_found"
        finished = (row["completed_at"] or row["screened_out_at"]) if row else None
        rows.append(
            {
                "recruitment_id": external_id,
                "outcome": outcome,
                "suggested_action": SUGGESTED_ACTION[outcome],
                "attention_failures": row["attention_failures"] if row else "",
                "started_at": row["started_at"].isoformat() if row else "",
                "completed_at": finished.isoformat() if finished else "",
            }
        )
    return rows


def recruitment_outcomes_csv(*, study: Study, recruitment_ids: Iterable[str], actor=None, actor_label: str = "") -> str:
    """The outcomes as CSV text (OUTCOME_COLUMNS), logged as a data operation (the ids themselves are not)."""
    rows = recruitment_outcomes(study=study, recruitment_ids=recruitment_ids)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=OUTCOME_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row["outcome"])] = counts.get(str(row["outcome"]), 0) + 1
    audit_record(
        action=AuditEntry.Action.OUTCOMES,
        study=study,
        actor=actor,
        actor_label=actor_label,
        rows=len(rows),
        detail={"outcomes": counts},
    )
    return buffer.getvalue()

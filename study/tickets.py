"""Answer tickets: what the answer to a trial page needs, signed into that page, so the answer skips the state read.

A rating trial's answer used to read the participant's state (one statement) before storing it (another): the read
supplied the trial's dimensions, the study version for the dimensions cache and the trial count. The trial page now
carries those in a hidden field, signed with the site's key and bound to the participant's page id and the trial
index, and on PostgreSQL the answer is then a single statement that re-checks everything it relies on (position,
step, release, study version, the trial's kind and dimensions) in its compare-and-set. Whenever a ticket is missing,
forged, stale or does not match, the answer takes the full path, which reads the state and says what is wrong;
tickets only make the common case cheaper, never decide an outcome. Attention checks and pairwise trials get no
ticket (a failed check may screen out, which the full path does in one transaction).

A ticket holds nothing a participant cannot see on the page already (the dimensions, their position in the study)
except the study's row id and version stamp; it never holds a condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core import signing

from study.models import Participant, Study, Trial

TICKET_FIELD = "ticket"  # the hidden field of the trial form (study/templates/study/trial.html)
_SALT = "study.answer-ticket"


@dataclass(frozen=True)
class Ticket:
    public_id: str
    index: int
    trial_count: int
    study_id: int
    study_version: str  # Study.updated_at, ISO 8601: the key of the per-process dimensions cache
    dimensions: tuple[str, ...]

    @property
    def study_updated_at(self) -> datetime:
        return datetime.fromisoformat(self.study_version)


def ticket_issue(*, participant: Participant, study: Study, trial: Trial) -> str:
    """The signed ticket for the answer to `trial`, or "" where answers always take the full path."""
    if trial.kind == Trial.Kind.ATTENTION or trial.stimulus_right_id is not None or study.updated_at is None:
        return ""
    payload = [
        participant.public_id,
        trial.index,
        participant.trial_count,
        study.pk,
        study.updated_at.isoformat(),
        list(trial.dimensions),
    ]
    return signing.dumps(payload, salt=_SALT, compress=False)


def ticket_read(*, token: object, public_id: str, index: object) -> Ticket | None:
    """The ticket in `token` if it is genuine and names this participant and trial index; None otherwise."""
    if not isinstance(token, str) or not token or len(token) > 2000:
        return None
    try:
        data = signing.loads(token, salt=_SALT)
        public, position, count, study_id, version, dimensions = data
        ticket = Ticket(
            public_id=str(public),
            index=int(position),
            trial_count=int(count),
            study_id=int(study_id),
            study_version=str(version),
            dimensions=tuple(str(d) for d in dimensions),
        )
        ticket.study_updated_at  # noqa: B018 -- a version that is not a timestamp is not a ticket
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if ticket.public_id != public_id or str(ticket.index) != str(index).strip():
        return None
    return ticket

"""Writes: entering, consenting (assignment), answering, the questionnaire, publishing and exporting.

Every step that moves a participant is a compare-and-set UPDATE on the participant row inside
`transaction.atomic`, so a double click, a reload, a second tab or two racing requests move them exactly once;
the unique constraints on trials and ratings are the backstop.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext  # the reasons are shown on the error page

from config.errors import SetupError
from study import fastpath, pairwise, selectors
from study.assignment import ScaleRange, StimulusRef, plan_trials
from study.models import (
    AuditEntry,
    Participant,
    QuestionnaireResponse,
    Rating,
    RatingDimension,
    Study,
    StudyReport,
    Trial,
)
from study.operations import audit_record, participant_screen_out_if_due, participants_release_idle
from study.parsing import finite_number, whole_number
from study.spec import StudySpec, StudySpecError
from study.tickets import Ticket

ACCEPTING_NEW = {Study.Status.PILOT, Study.Status.LIVE}
ANONYMOUS = "anonymous"  # Participant.source of people who arrived without a recruitment id
MAX_RT_MS = 60 * 60 * 1000


class StudyUnavailable(Exception):
    """The study takes no new participants; `reason` is closed, paused, draft or full."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadSubmission(Exception):
    """A request no honest page can produce (missing or out-of-range answer, a future trial): answered with 400."""


class StudyNotReady(SetupError):
    """Publishing refused; the message lists what is missing."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("study is not ready: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class AnswerOutcome:
    recorded: bool  # False: a duplicate of an answer already stored (idempotent resubmission)


def pseudonym_for(*, source: str, external_id: str) -> str:
    """Keyed hash of a recruitment id: stable for resuming, useless without the key (settings.PSEUDONYM_KEY)."""
    key = settings.PSEUDONYM_KEY.encode()
    return hmac.new(key, f"{source}:{external_id}".encode(), hashlib.sha256).hexdigest()[:40]


def participant_enter(
    *,
    study: Study,
    source: str,
    external_id: str,
    recruitment: Mapping[str, str] | None = None,
    user_agent: str = "",
    pilot: bool = False,
) -> Participant:
    """Find or create the participant for a recruitment id; the same id never starts twice.

    A returning id resumes whatever the study's state; a new one needs a study open to newcomers and not full, and
    a live study takes anonymous newcomers only with `anonymous_entry` on.
    """
    pseudonym = pseudonym_for(source=source, external_id=external_id)
    existing = fastpath.participant_by_pseudonym(study=study, pseudonym=pseudonym)
    if existing is not None:
        return existing
    if not pilot:
        if study.status not in ACCEPTING_NEW:
            raise StudyUnavailable(study.status)
        if source == ANONYMOUS and study.status == Study.Status.LIVE and not study.anonymous_entry:
            # Anonymous visits cost nothing to make: a live study admits them only when it says so.
            raise StudyUnavailable("recruitment_id_required")
        # Idle participants may be holding the last places: release them now rather than wait for beat.
        if (
            study.status == Study.Status.LIVE
            and selectors.study_is_full(study=study)
            and (not participants_release_idle(study=study) or selectors.study_is_full(study=study))
        ):
            raise StudyUnavailable("full")
    hashed = {key: pseudonym_for(source=key, external_id=value) for key, value in (recruitment or {}).items() if value}
    try:
        with transaction.atomic():
            return Participant.objects.create(
                study=study,
                pseudonym=pseudonym,
                source=source,
                recruitment=hashed,
                is_pilot=pilot or study.status == Study.Status.PILOT,
                user_agent=user_agent[:300],
            )
    except IntegrityError:
        # Two tabs opened the link at the same moment: the other request created it; use that one.
        return Participant.objects.get(study=study, pseudonym=pseudonym)


def _participant_step_move(*, participant: Participant, from_step: str, to_step: str) -> Participant:
    """Move only if still at `from_step`: a double click or a stale tab then changes nothing."""
    if fastpath.participant_move(participant_id=participant.pk, from_step=from_step, values={"step": to_step}):
        participant.step = to_step
    else:  # another request moved first: read where it went (only the step, the cached study stays)
        participant.refresh_from_db(fields=["step"])
    return participant


def participant_decline(*, participant: Participant) -> Participant:
    return _participant_step_move(
        participant=participant, from_step=Participant.Step.CONSENT, to_step=Participant.Step.DECLINED
    )


def _scales(dimensions: list[RatingDimension]) -> list[ScaleRange]:
    return [
        ScaleRange(name=d.name, minimum=d.minimum, maximum=d.maximum, is_slider=d.kind == d.Kind.SLIDER)
        for d in dimensions
    ]


def participant_consent(*, participant: Participant) -> Participant:
    """Consent and assignment in one transaction, serialised per study so concurrent arrivals stay balanced.

    The transaction's first statement is a write on the study row: PostgreSQL takes its row lock, SQLite its write
    lock, so the counts read next (quota, groups, allocation) cannot change under us. Raises
    StudyUnavailable('full') when the quota is reached.
    """
    # What depends on no other participant is read before the lock (the participant, the study's design, the
    # pool), and what is left inside is precompiled (fastpath, selectors' CompiledQuery): consents of one study
    # queue for the lock, so its hold time is the consent's tail latency under load.
    current = fastpath.participant_for_assignment(participant_id=participant.pk)
    if current.step != Participant.Step.CONSENT:
        return current
    study = current.study
    if not current.is_pilot and study.status not in ACCEPTING_NEW:
        raise StudyUnavailable(study.status)  # closed or paused while the consent page was open
    dimensions = list(selectors.study_dimensions(study=study).values())  # per process, keyed on updated_at
    pool = [StimulusRef(id=pk, condition=c) for pk, c in selectors.study_pool(study=study)]
    pairwise_task = study.task == Study.Task.PAIRWISE
    if len(pool) < (2 if pairwise_task else study.trials_per_participant):
        raise StudyUnavailable("not_ready")
    with transaction.atomic():
        stored = fastpath.study_lock(study_id=study.pk)
        if study.time_limit_minutes:
            # Under the study lock, so the counts below no longer include stimuli held by the idle.
            participants_release_idle(study=study)
        counted = None if current.is_pilot else selectors.study_enrolled_count(study=study)
        if counted is not None and study.max_participants is not None and counted >= study.max_participants:
            raise StudyUnavailable("full")
        seed = secrets.randbits(62)
        rng = random.Random(seed)
        group = ""
        if study.between_factor == Study.BetweenFactor.DIMENSION:
            groups = selectors.group_counts(study=study)
            group = min((d.name for d in dimensions), key=lambda name: (groups.get(name, 0), rng.random()))
            dimensions = [d for d in dimensions if d.name == group]
        allocation = None  # the counts to keep after this assignment
        if pairwise_task:  # pairs from the study's pair design (study/pairwise.py)
            trials = pairwise.plan_pair_trials(
                study=study,
                participant=current,
                dimensions=dimensions,
                pool=[pairwise.PoolItem(id=s.id, condition=s.condition) for s in pool],
                seed=seed,
            )
        else:
            if counted is None:
                counts = {}  # a pilot is not balanced against anyone
            elif stored.basis == counted:
                counts = stored.counts  # kept by the last assignment, and nobody was released or withdrawn since
            else:
                counts = selectors.stimulus_allocation_counts(study=study)
            plan = plan_trials(
                pool=pool,
                counts=counts,
                scales=_scales(dimensions),
                n_rated=study.trials_per_participant,
                n_practice=study.practice_trials,
                n_attention=study.attention_checks,
                layout=study.layout,
                max_run=study.max_run_length,
                rng=rng,
            )
            trials = [
                Trial(
                    participant=current,
                    index=i,
                    kind=t.kind,
                    stimulus_id=t.stimulus_id,
                    dimensions=list(t.dimensions),
                    block=t.block,
                    expected_value=t.expected_value,
                )
                for i, t in enumerate(plan)
            ]
            if counted is not None:
                allocation = dict(counts)
                for stimulus_id in {t.stimulus_id for t in plan if t.kind == Trial.Kind.RATING}:
                    allocation[stimulus_id] = allocation.get(stimulus_id, 0) + 1
        moved = {
            "step": Participant.Step.INSTRUCTIONS,
            "consented_at": timezone.now(),
            "seed": seed,
            "group": group,
            "position": 0,
            "trial_count": len(trials),
        }
        # The move first: a second tab's consent (or a decline) that committed while this one waited for the lock
        # makes it fail, and then nothing of this assignment is written.
        if allocation is not None:  # the kept counts change with the move, or not at all
            assigned = fastpath.participant_assign(
                participant_id=current.pk, values=moved, study_id=study.pk, counts=allocation, basis=counted + 1
            )
        elif counted is not None and stored.basis != -1:  # pair designs keep no counts: mark them unbuilt
            assigned = fastpath.participant_assign(
                participant_id=current.pk, values=moved, study_id=study.pk, counts={}, basis=-1
            )
        else:
            assigned = fastpath.participant_move(
                participant_id=current.pk, from_step=Participant.Step.CONSENT, values=moved
            )
        if assigned:
            fastpath.trials_insert(trials=trials)
            for name, value in moved.items():  # what was written, without reading the row back
                setattr(current, name, value)
            return current
    current.refresh_from_db()  # another request moved them on: say what is stored
    return current


def participants_release(*, participants: QuerySet[Participant]) -> int:
    """Release abandoned participants (e.g. returned or timed out on Prolific) so their stimuli go to newcomers.

    Completed, screened-out and declined participants are never released; released ones' data stay in the
    export, marked 'released'.
    """
    with transaction.atomic():
        return (
            participants.filter(released_at=None, consented_at__isnull=False)
            .exclude(step__in=[Participant.Step.DONE, Participant.Step.DECLINED, Participant.Step.SCREENED_OUT])
            .update(released_at=timezone.now())
        )


def participant_start_trials(*, participant: Participant) -> Participant:
    return _participant_step_move(
        participant=participant, from_step=Participant.Step.INSTRUCTIONS, to_step=Participant.Step.TRIALS
    )


def trial_mark_shown(*, trial: Trial) -> None:
    """Server-side shown timestamp: the first time the trial was served; reloads are counted, not re-stamped."""
    fastpath.trial_mark_shown(trial_id=trial.pk, now=timezone.now())


def parse_rt(value: object) -> int | None:
    """Client RTs are advisory: absent or implausible values (inf, NaN, 1e400, 5,000 digits) become missing."""
    number = finite_number(value)
    if number is None or not 0 <= number <= MAX_RT_MS:
        return None
    return round(number)


def response_record(*, trial: Trial, dimension: RatingDimension, value: float, rt_ms: int | None) -> Rating:
    """Store one rating; the (trial, dimension) unique constraint makes a second copy impossible."""
    with transaction.atomic(savepoint=False):
        return Rating.objects.create(trial=trial, dimension=dimension, value=value, rt_ms=rt_ms)


def _parse_value(raw: object, dimension: RatingDimension) -> float:
    value = finite_number(raw)
    if value is None:
        raise BadSubmission(gettext("no valid answer for %(name)s") % {"name": dimension.name})
    if not dimension.minimum <= value <= dimension.maximum:
        raise BadSubmission(gettext("answer for %(name)s out of range") % {"name": dimension.name})
    if dimension.kind == RatingDimension.Kind.LIKERT and value != int(value):
        raise BadSubmission(gettext("answer for %(name)s must be a whole scale point") % {"name": dimension.name})
    return value


def _rating_rows(
    *,
    dimensions: Mapping[str, RatingDimension],
    values: Mapping[str, float],
    rts: Mapping[str, object],
    trial_rt: int | None,
) -> list[fastpath.RatingRow]:
    """One row per answered dimension; a dimension's own RT where the page sent one, else the trial's."""
    return [
        fastpath.RatingRow(
            dimension_id=dimensions[name].pk,
            value=value,
            rt_ms=parse_rt(rts.get(name)) if rts.get(name) not in (None, "") else trial_rt,
        )
        for name, value in values.items()
    ]


def trial_answer(
    *,
    participant: Participant,
    index: object,
    answers: Mapping[str, object],
    rt_ms: object = None,
    rt_by_dimension: Mapping[str, object] | None = None,
) -> AnswerOutcome:
    """Record the answers to the participant's current trial exactly once and move them on.

    An index below the current position is a resubmission (double click, back button): nothing is stored. An index
    that is not a number, points past the current trial or lacks a valid answer is a BadSubmission.
    """
    index = whole_number(index)
    if index is None:
        raise BadSubmission(gettext("trial index is not a number"))
    if participant.step != Participant.Step.TRIALS:
        if participant.step in {Participant.Step.QUESTIONNAIRE, Participant.Step.DONE} and index >= 0:
            return AnswerOutcome(recorded=False)
        raise BadSubmission(gettext("not at the trials step"))
    if index < participant.position:
        return AnswerOutcome(recorded=False)
    if index > participant.position:
        raise BadSubmission(gettext("not the current trial"))
    # The page view has already read the current trial together with the participant (one query).
    trial = getattr(participant, "current_trial", None)
    if trial is None or trial.index != index:
        trial = Trial.objects.filter(participant=participant, index=index).first()
    if trial is None:
        raise BadSubmission(gettext("no such trial"))
    if trial.stimulus_right_id is not None:  # a pairwise trial: choices, not ratings (study/pairwise.py)
        return _pair_answer(
            participant=participant, trial=trial, answers=answers, rt_ms=rt_ms, rt_by_dimension=rt_by_dimension or {}
        )
    known = selectors.study_dimensions(study=participant.study)
    dimensions = {name: known[name] for name in trial.dimensions if name in known}
    if len(dimensions) != len(trial.dimensions):
        raise BadSubmission(gettext("a rating dimension of this trial was removed from the study"))
    values = {name: _parse_value(answers.get(name), dimensions[name]) for name in trial.dimensions}
    rts = rt_by_dimension or {}
    trial_rt = parse_rt(rt_ms)
    now = timezone.now()
    last = index + 1 >= participant.trial_count
    passed = None
    if trial.kind == Trial.Kind.ATTENTION:
        given = values[trial.dimensions[0]]
        tolerance = 5 if dimensions[trial.dimensions[0]].kind == RatingDimension.Kind.SLIDER else 0
        passed = abs(given - trial.expected_value) <= tolerance
    next_step = Participant.Step.QUESTIONNAIRE if last else Participant.Step.TRIALS
    ratings = _rating_rows(dimensions=dimensions, values=values, rts=rts, trial_rt=trial_rt)
    screened_out = False
    # A failed check may end the study for the participant: the screen-out commits with the answer.
    with transaction.atomic() if passed is False else nullcontext():
        moved = fastpath.trial_answer_store(
            participant_id=participant.pk,
            index=index,
            next_step=next_step,
            trial_id=trial.pk,
            ratings=ratings,
            trial_rt_ms=trial_rt,
            attention_passed=passed,
            now=now,
        )
        if not moved:
            return AnswerOutcome(recorded=False)
        if passed is False:
            participant.attention_failures += 1
            screened_out = participant_screen_out_if_due(
                participant=participant, failures=participant.attention_failures
            )
    participant.position = index + 1
    participant.step = Participant.Step.QUESTIONNAIRE if last else Participant.Step.TRIALS
    if screened_out:
        participant.step = Participant.Step.SCREENED_OUT
    return AnswerOutcome(recorded=True)


def trial_answer_ticketed(
    *,
    slug: str,
    ticket: Ticket,
    answers: Mapping[str, object],
    rt_ms: object = None,
    rt_by_dimension: Mapping[str, object] | None = None,
) -> bool:
    """Record a rating trial's answer in one statement from its page's ticket (study.tickets); True if stored.

    False means "take the full path" (trial_answer): the dimensions are not cached in this process, an answer does
    not parse, or the database no longer matches the ticket (already answered, released, study edited). Nothing
    is stored then, so the full path decides and words the outcome exactly as without tickets.
    """
    if not fastpath.ticketed_answers_supported():
        return False
    known = selectors.study_dimensions_if_cached(study_id=ticket.study_id, version=ticket.study_version)
    if known is None or not ticket.dimensions or any(name not in known for name in ticket.dimensions):
        return False
    dimensions = {name: known[name] for name in ticket.dimensions}
    try:
        values = {name: _parse_value(answers.get(name), dimensions[name]) for name in ticket.dimensions}
    except BadSubmission:
        return False
    rts = rt_by_dimension or {}
    trial_rt = parse_rt(rt_ms)
    last = ticket.index + 1 >= ticket.trial_count
    return fastpath.trial_answer_store_ticketed(
        slug=slug,
        public_id=ticket.public_id,
        index=ticket.index,
        next_step=Participant.Step.QUESTIONNAIRE if last else Participant.Step.TRIALS,
        study_id=ticket.study_id,
        study_updated_at=ticket.study_updated_at,
        dimensions=list(ticket.dimensions),
        ratings=_rating_rows(dimensions=dimensions, values=values, rts=rts, trial_rt=trial_rt),
        trial_rt_ms=trial_rt,
        now=timezone.now(),
    )


def _pair_answer(
    *,
    participant: Participant,
    trial: Trial,
    answers: Mapping[str, object],
    rt_ms: object,
    rt_by_dimension: Mapping[str, object],
) -> AnswerOutcome:
    last = trial.index + 1 >= participant.trial_count
    next_step = Participant.Step.QUESTIONNAIRE if last else Participant.Step.TRIALS
    rts = {name: parse_rt(value) for name, value in rt_by_dimension.items() if value not in (None, "")}
    try:
        outcome = pairwise.pair_answer(
            participant=participant,
            trial=trial,
            answers=answers,
            rt_ms=parse_rt(rt_ms),
            rt_by_dimension=rts,
            next_step=next_step,
        )
    except pairwise.PairSubmissionError as exc:
        raise BadSubmission(str(exc)) from None
    if outcome.recorded:
        participant.position = trial.index + 1
        participant.step = Participant.Step.SCREENED_OUT if outcome.screened_out else next_step
    return AnswerOutcome(recorded=outcome.recorded)


def questionnaire_submit(*, participant: Participant, answers: Mapping[str, object]) -> AnswerOutcome:
    """Store the questionnaire once and complete the participant."""
    now = timezone.now()
    with transaction.atomic():
        moved = fastpath.participant_move(
            participant_id=participant.pk,
            from_step=Participant.Step.QUESTIONNAIRE,
            values={"step": Participant.Step.DONE, "completed_at": now},
            unreleased=True,
        )
        if not moved:
            return AnswerOutcome(recorded=False)
        QuestionnaireResponse.objects.create(
            participant=participant,
            age_band=answers["age_band"],
            gender=answers["gender"],
            art_training=answers["art_training"],
            art_expertise=answers["art_expertise"],
            comment=answers.get("comment", ""),
        )
    participant.step, participant.completed_at = Participant.Step.DONE, now
    return AnswerOutcome(recorded=True)


def study_set_status(*, study: Study, status: str, actor=None, actor_label: str = "") -> Study:
    """Change status; going to pilot or live checks readiness first and says what is missing. Audited."""
    if status not in Study.Status.values:
        raise SetupError(f"unknown status {status!r}; use one of {', '.join(Study.Status.values)}")
    if status in ACCEPTING_NEW:
        problems = selectors.study_readiness_problems(study=study)
        if problems:
            raise StudyNotReady(problems)
    updates = {"status": status}
    if status == Study.Status.LIVE and study.published_at is None:
        updates["published_at"] = timezone.now()
    before = study.status
    Study.objects.filter(pk=study.pk).update(**updates)
    study.refresh_from_db()
    if before != status:
        audit_record(
            action=AuditEntry.Action.STATUS,
            study=study,
            actor=actor,
            actor_label=actor_label,
            rows=1,
            detail={"from": before, "to": status},
        )
    return study


def ratings_export(*, study: Study, path: Path, include_pilot: bool = False) -> int:
    """Write the long-format ratings file (CSV or Parquet by extension) atomically; returns the row count."""
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".parquet"}:
        raise SetupError(f"cannot export to {path.name}: use a .csv or .parquet file name")
    if study.task == Study.Task.PAIRWISE:  # one row per choice (study/pairwise_export.py)
        from study.pairwise_export import comparisons_frame

        frame = comparisons_frame(study=study, include_pilot=include_pilot)
    else:
        frame = selectors.ratings_frame(study=study, include_pilot=include_pilot)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    if suffix == ".csv":
        frame.to_csv(partial, index=False)
    else:
        frame.to_parquet(partial, index=False)
    partial.replace(path)
    return len(frame)


def _design_of_study(study: Study) -> dict[str, object]:
    return {
        "stimulus_sets": sorted(study.stimulus_sets.values_list("name", flat=True)),
        "conditions": sorted(study.conditions),
        "dimensions": [(d.name, d.kind, d.points) for d in study.dimensions.all()],
        "layout": study.layout,
        "between_subject": study.between_factor,
        "trials_per_participant": study.trials_per_participant,
        "practice_trials": study.practice_trials,
        "attention_checks": study.attention_checks,
        "task": study.task,
        "pairs": (study.pair_design, study.pairs_per_participant, study.pair_within_fraction, study.pair_allow_tie),
    }


def _design_of_spec(spec: StudySpec) -> dict[str, object]:
    return {
        "stimulus_sets": sorted(spec.stimulus_sets),
        "conditions": sorted(spec.conditions),
        "dimensions": [(d.name, d.kind, d.points) for d in spec.dimensions],
        "layout": spec.layout,
        "between_subject": spec.between_subject,
        "trials_per_participant": spec.trials_per_participant,
        "practice_trials": spec.practice_trials,
        "attention_checks": spec.attention_checks,
        "task": spec.task,
        "pairs": (spec.pairs.design, spec.pairs.per_participant, spec.pairs.within_fraction, spec.pairs.allow_tie),
    }


def study_load(*, spec: StudySpec, force: bool = False) -> tuple[Study, bool]:
    """Create or update a study from its spec (by slug); returns (study, created).

    Once real participants exist, design changes (stimuli, dimensions, trial counts) are refused unless forced,
    because they would make earlier and later data incomparable; texts and quotas may always change.
    """
    from generation.models import Stimulus, StimulusSet

    sets = []
    for name in spec.stimulus_sets:
        stimulus_set = StimulusSet.objects.filter(name=name).first()
        if stimulus_set is None:
            raise StudySpecError(
                f"stimulus_sets: no stimulus set named {name!r} "
                "(render it first: python manage.py render_set SPEC.yaml)"
            )
        sets.append(stimulus_set)
    if spec.conditions and sets:
        present = set(Stimulus.objects.filter(stimulus_set__in=sets).values_list("condition", flat=True))
        absent = [c for c in spec.conditions if c not in present]
        if absent:
            raise StudySpecError(
                f"conditions: {', '.join(map(repr, absent))} not in the stimulus set(s) "
                f"(they have: {', '.join(sorted(present)) or 'no stimuli'})"
            )
    with transaction.atomic():
        study = Study.objects.select_for_update().filter(slug=spec.slug).first()
        created = study is None
        if study is None:
            study = Study(slug=spec.slug)
        elif not force and Participant.objects.filter(study=study, is_pilot=False, consented_at__isnull=False).exists():
            before, after = _design_of_study(study), _design_of_spec(spec)
            changed = [key for key in before if before[key] != after[key]]
            if changed:
                raise StudySpecError(
                    f"{changed[0]}: cannot change the design of study {spec.slug!r} after participants started "
                    f"(changed: {', '.join(changed)}); make a new study or pass --force"
                )
        study.title = spec.title
        study.consent_text = spec.consent
        study.instructions = spec.instructions
        study.debrief = spec.debrief
        study.conditions = spec.conditions
        study.layout = spec.layout
        study.between_factor = spec.between_subject
        study.trials_per_participant = spec.trials_per_participant
        study.practice_trials = spec.practice_trials
        study.attention_checks = spec.attention_checks
        study.max_run_length = spec.max_run_length
        study.max_participants = spec.max_participants
        study.completion_code = spec.completion_code
        study.completion_url_template = spec.completion_url
        study.no_consent_url = spec.no_consent_url
        study.time_limit_minutes = spec.time_limit_minutes
        study.screen_out_after = spec.screen_out_after
        study.screen_out_code = spec.screen_out_code
        study.screen_out_url_template = spec.screen_out_url
        study.anonymous_entry = spec.anonymous_entry
        study.timed_out_code = spec.timed_out_code
        study.timed_out_url = spec.timed_out_url
        study.languages = spec.languages
        study.task = spec.task
        study.pair_design = spec.pairs.design
        study.pairs_per_participant = spec.pairs.per_participant
        study.pair_within_fraction = spec.pairs.within_fraction
        study.pair_allow_tie = spec.pairs.allow_tie
        study.source = spec.raw
        study.save()
        study.stimulus_sets.set(sets)
        keep = []
        for order, d in enumerate(spec.dimensions):
            dimension, _ = RatingDimension.objects.update_or_create(
                study=study,
                name=d.name,
                defaults={
                    "prompt": d.prompt,
                    "kind": d.kind,
                    "points": d.points,
                    "low_label": d.low_label,
                    "high_label": d.high_label,
                    "order": order,
                },
            )
            keep.append(dimension.pk)
        stale = study.dimensions.exclude(pk__in=keep)
        if stale.filter(ratings__isnull=False).exists():
            raise StudySpecError(
                f"dimensions: cannot remove {', '.join(stale.values_list('name', flat=True))}: it already has ratings"
            )
        stale.delete()
        if spec.status != study.status:
            study_set_status(study=study, status=spec.status)
    study.refresh_from_db()
    return study, created


def study_report_request(
    *, study: Study, options: Mapping[str, object] | None = None, actor=None, actor_label: str = ""
) -> StudyReport:
    """Queue the analysis report of a study (on a worker thread of this process when no broker is configured).

    `options` go to `analysis.build_report`; the default comes from settings.STUDY_REPORT_OPTIONS (if set).
    """
    from config.celery import require_broker
    from study.tasks import study_report_build

    require_broker()
    if options is None:
        options = getattr(settings, "STUDY_REPORT_OPTIONS", {})
    report = StudyReport.objects.create(study=study, options={"title": study.title, **dict(options)})
    audit_record(
        action=AuditEntry.Action.REPORT,
        study=study,
        actor=actor,
        actor_label=actor_label,
        rows=selectors.study_summary(study=study)["ratings"],
        detail={"report": report.pk},
    )
    transaction.on_commit(lambda: _dispatch_report(report.pk, study_report_build))
    return report


def _dispatch_report(report_id: int, task) -> None:
    # Never inside the request: Celery when configured, else the process-local worker thread.
    from config.background import task_submit

    task_id = task_submit(task, report_id)
    StudyReport.objects.filter(pk=report_id).update(celery_task_id=task_id)

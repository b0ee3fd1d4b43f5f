"""Reads for the study monitor: counts by outcome, durations, coverage, attention checks, completions over time.

Every number comes from aggregate queries (COUNT/SUM/GROUP BY in the database); Python only combines the grouped
rows (hundreds: kinds x stimuli x dimensions, time buckets), never the ratings, so it stays fast on 100k ratings.
The ratings are scanned once (`rating_groups`) for the total, the per-condition table and the coverage.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Min, Q, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from generation.models import Stimulus
from study import selectors
from study.models import Participant, Rating, RatingDimension, Study, Trial

COUNT_KEYS = [
    "entered",
    "on_consent_page",
    "consented",
    "declined",
    "in_progress",
    "completed",
    "screened_out",
    "released",
    "withdrawn",
    "pilots",
    "ratings",
]
LEAST_COVERED = 5
ACTIVE = [Participant.Step.INSTRUCTIONS, Participant.Step.TRIALS, Participant.Step.QUESTIONNAIRE]


def participant_counts(*, study: Study) -> dict[str, int]:
    """Real (non-pilot) participants by outcome in one query; the outcomes do not overlap except `consented`."""
    kept = Q(withdrawn_at=None)
    counts = Participant.objects.filter(study=study, is_pilot=False).aggregate(
        entered=Count("pk"),
        on_consent_page=Count("pk", filter=Q(step=Participant.Step.CONSENT) & kept),
        consented=Count("pk", filter=Q(consented_at__isnull=False)),
        declined=Count("pk", filter=Q(step=Participant.Step.DECLINED) & kept),
        in_progress=Count("pk", filter=Q(step__in=ACTIVE, released_at=None) & kept),
        completed=Count("pk", filter=Q(step=Participant.Step.DONE) & kept),
        screened_out=Count("pk", filter=Q(step=Participant.Step.SCREENED_OUT) & kept),
        released=Count("pk", filter=Q(step__in=ACTIVE, released_at__isnull=False) & kept),
        withdrawn=Count("pk", filter=Q(withdrawn_at__isnull=False)),
        attention_failed_participants=Count("pk", filter=Q(attention_failures__gt=0) & kept),
    )
    counts["pilots"] = Participant.objects.filter(study=study, is_pilot=True).count()
    return counts


def median_duration_s(*, study: Study, completed: int) -> float | None:
    """Median consent-to-completion time: the middle row(s) of the durations sorted in the database."""
    if not completed:
        return None
    durations = (
        Participant.objects.filter(
            study=study,
            is_pilot=False,
            step=Participant.Step.DONE,
            withdrawn_at=None,
            consented_at__isnull=False,
            completed_at__isnull=False,
        )
        .annotate(duration=ExpressionWrapper(F("completed_at") - F("consented_at"), output_field=DurationField()))
        .order_by("duration")
        .values_list("duration", flat=True)
    )
    n = durations.count()
    if not n:
        return None
    low, high = durations[(n - 1) // 2], durations[n // 2]
    return round((low + high).total_seconds() / 2, 1)


def attention_summary(*, study: Study) -> dict[str, int]:
    return Trial.objects.filter(
        participant__study=study, participant__is_pilot=False, kind=Trial.Kind.ATTENTION, answered_at__isnull=False
    ).aggregate(answered=Count("pk"), failed=Count("pk", filter=Q(attention_passed=False)))


def rating_groups(*, study: Study) -> list[dict[str, object]]:
    """Real participants' ratings grouped by (trial kind, stimulus, dimension): count and sum of values.

    One pass over the ratings serves the total, the per-condition table and the per-stimulus coverage; the
    result has at most kinds x stimuli x dimensions rows (hundreds), whatever the number of ratings.
    """
    return list(
        Rating.objects.filter(trial__participant__study=study, trial__participant__is_pilot=False)
        .values("trial__kind", "trial__stimulus_id", "dimension_id")
        .annotate(n=Count("pk"), total=Sum("value"))
        .order_by()
    )


def ratings_by_condition(*, study: Study, groups: list[dict[str, object]]) -> list[dict[str, object]]:
    """Rated-trial ratings per (condition, dimension): how many and their mean."""
    # Names are looked up here rather than joined in the grouped query: two joins fewer over every rating.
    dimensions = dict(RatingDimension.objects.filter(study=study).values_list("pk", "name"))
    stimuli = [g["trial__stimulus_id"] for g in groups]
    conditions = dict(Stimulus.objects.filter(pk__in=set(stimuli)).values_list("pk", "condition"))
    cells: dict[tuple[str, str], list[float]] = {}
    for g in groups:
        if g["trial__kind"] == Trial.Kind.RATING:
            key = (conditions[g["trial__stimulus_id"]], dimensions.get(g["dimension_id"], "?"))
            cell = cells.setdefault(key, [0, 0.0])
            cell[0] += g["n"]
            cell[1] += g["total"] or 0.0
    return [
        {"condition": condition, "dimension": dimension, "ratings": n, "mean": round(total / n, 2) if n else None}
        for (condition, dimension), (n, total) in sorted(cells.items())
    ]


def stimulus_coverage(*, study: Study, groups: list[dict[str, object]], least: int = LEAST_COVERED) -> dict:
    """Ratings per stimulus of the study's pool (zeros included): min/median/max and the least covered."""
    per_stimulus: dict[int, int] = {}
    for g in groups:
        if g["trial__kind"] == Trial.Kind.RATING:
            per_stimulus[g["trial__stimulus_id"]] = per_stimulus.get(g["trial__stimulus_id"], 0) + g["n"]
    pool = selectors.study_stimuli(study=study).values_list("pk", "public_id", "condition")
    rows = sorted(((per_stimulus.get(pk, 0), pk, public_id, condition) for pk, public_id, condition in pool))
    if not rows:
        return {"stimuli": 0, "min": None, "median": None, "max": None, "least_covered": []}
    mid = len(rows) // 2
    median = rows[mid][0] if len(rows) % 2 else (rows[mid - 1][0] + rows[mid][0]) / 2
    return {
        "stimuli": len(rows),
        "min": rows[0][0],
        "median": median,
        "max": rows[-1][0],
        "least_covered": [
            {"stimulus": public_id, "condition": condition, "ratings": n} for n, _, public_id, condition in rows[:least]
        ],
    }


def _bucket(first: datetime, last: datetime) -> str:
    span = last - first
    if span <= timedelta(hours=3):
        return "minute"
    return "hour" if span <= timedelta(days=7) else "day"


def completions_over_time(*, study: Study) -> dict[str, object]:
    """Completions per time bucket (minute, hour or day, by the span) with the running total, for the chart."""
    done = Participant.objects.filter(
        study=study, is_pilot=False, step=Participant.Step.DONE, withdrawn_at=None, completed_at__isnull=False
    )
    span = done.aggregate(first=Min("completed_at"), last=Max("completed_at"))
    if span["first"] is None:
        return {"bucket": None, "points": []}
    kind = _bucket(span["first"], span["last"])
    rows = done.annotate(t=Trunc("completed_at", kind)).values("t").annotate(n=Count("pk")).order_by("t")
    points, total = [], 0
    for row in rows:
        total += row["n"]
        points.append({"t": row["t"].isoformat(), "n": row["n"], "cumulative": total})
    return {"bucket": kind, "points": points}


def study_monitor(*, study: Study, include_readiness: bool = True) -> dict[str, object]:
    """Everything the monitor page shows, JSON-ready; `study_monitor --json` prints the same object."""
    study.refresh_from_db()
    counts = participant_counts(study=study)
    groups = rating_groups(study=study)
    counts["ratings"] = sum(g["n"] for g in groups)
    consented = counts["consented"] - counts["withdrawn"]
    attention = attention_summary(study=study)
    data: dict[str, object] = {
        "study": study.slug,
        "title": study.title,
        "status": study.status,
        "generated_at": timezone.now().isoformat(),
        **counts,
        "max_participants": study.max_participants,
        "completion_rate": round(counts["completed"] / consented, 3) if consented > 0 else None,
        "median_duration_s": median_duration_s(study=study, completed=counts["completed"]),
        "attention_checks_answered": attention["answered"],
        "attention_checks_failed": attention["failed"],
        "screen_out_after": study.screen_out_after,
        "time_limit_minutes": study.time_limit_minutes,
        "conditions": ratings_by_condition(study=study, groups=groups),
        "coverage": stimulus_coverage(study=study, groups=groups),
        "completions": completions_over_time(study=study),
    }
    if include_readiness:
        data["readiness_problems"] = selectors.study_readiness_problems(study=study)
    return data

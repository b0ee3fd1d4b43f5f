"""Reads: the stimuli a study draws from, allocation counts, readiness, quotas and the long-format export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Count, QuerySet

from generation.models import Stimulus
from study.models import Participant, QuestionnaireResponse, Rating, Study, Trial

if TYPE_CHECKING:
    import pandas as pd

DESCRIPTOR_KEYS = ["colorfulness", "saturation", "rms_contrast", "luminance_entropy", "edge_density",
                   "compression_ratio"]

EXPORT_COLUMNS = [
    "study", "participant", "is_pilot", "group", "stimulus", "condition", "epsilon", "class_index", "class_name",
    "seed", "draw", "stimulus_set", "dimension", "scale", "scale_min", "scale_max", "response", "rt_ms",
    "trial_rt_ms", "trial_index", "block", "is_practice", "is_attention_check", "expected_response",
    "attention_passed", "shown_at", "answered_at", "shown_count", "participant_status", "participant_seed",
    "consented_at", "completed_at", "duration_s", "attention_failures", "age_band", "gender", "art_training",
    "art_expertise", "comment", *DESCRIPTOR_KEYS, "image_path",
]


def study_stimuli(*, study: Study) -> QuerySet[Stimulus]:
    """Stimuli of the study's sets in its chosen conditions that have an image."""
    qs = Stimulus.objects.filter(stimulus_set__in=study.stimulus_sets.all()).exclude(image="")
    if study.conditions:
        qs = qs.filter(condition__in=study.conditions)
    return qs.order_by("pk")


def stimulus_allocation_counts(*, study: Study) -> dict[int, int]:
    """Participants (pilots excluded) assigned to rate each stimulus: the least-rated-first criterion."""
    rows = (
        Trial.objects.filter(participant__study=study, participant__is_pilot=False, participant__released_at=None,
                             kind=Trial.Kind.RATING)
        .values("stimulus_id")
        .annotate(n=Count("participant_id", distinct=True))
    )
    return {row["stimulus_id"]: row["n"] for row in rows}


def study_enrolled_count(*, study: Study) -> int:
    """Non-pilot participants who consented: what the quota counts."""
    return Participant.objects.filter(study=study, is_pilot=False, consented_at__isnull=False,
                                      released_at=None).count()


def study_is_full(*, study: Study) -> bool:
    return study.max_participants is not None and study_enrolled_count(study=study) >= study.max_participants


def group_counts(*, study: Study) -> dict[str, int]:
    rows = (
        Participant.objects.filter(study=study, is_pilot=False, consented_at__isnull=False, released_at=None)
        .values("group").annotate(n=Count("pk"))
    )
    return {row["group"]: row["n"] for row in rows}


def study_readiness_problems(*, study: Study) -> list[str]:
    """What stops a study from going live, in words a researcher can act on; empty when it is ready."""
    problems = []
    if not study.consent_text.strip():
        problems.append("consent text is empty")
    if not study.instructions.strip():
        problems.append("instructions are empty")
    if not study.completion_code.strip():
        problems.append("no completion code")
    dimensions = list(study.dimensions.all())
    if not dimensions:
        problems.append("no rating dimensions")
    if study.trials_per_participant < 1:
        problems.append("trials per participant must be at least 1")
    if not study.stimulus_sets.exists():
        problems.append("no stimulus set chosen")
    else:
        stimuli = list(study_stimuli(study=study))
        if not stimuli:
            problems.append("no rendered stimuli in the chosen sets and conditions")
        elif study.task == Study.Task.PAIRWISE and len(stimuli) < 2:
            problems.append("a pairwise study needs at least 2 stimuli")
        elif study.task != Study.Task.PAIRWISE and len(stimuli) < study.trials_per_participant:
            problems.append(f"only {len(stimuli)} stimuli for {study.trials_per_participant} trials per participant")
        missing = [s.public_id for s in stimuli if not Path(s.image.path).is_file()]
        if missing:
            problems.append(f"{len(missing)} stimulus image file(s) missing on disk (e.g. {missing[0]})")
        if study.conditions:
            present = set(Stimulus.objects.filter(stimulus_set__in=study.stimulus_sets.all())
                          .values_list("condition", flat=True))
            absent = [c for c in study.conditions if c not in present]
            if absent:
                problems.append(f"condition(s) not in the stimulus sets: {', '.join(absent)}")
    if study.between_factor == Study.BetweenFactor.DIMENSION and len(dimensions) < 2:
        problems.append("a between-subject dimension factor needs at least two dimensions")
    return problems


def study_summary(*, study: Study) -> dict[str, int]:
    participants = Participant.objects.filter(study=study, is_pilot=False)
    return {
        "entered": participants.count(),
        "consented": participants.filter(consented_at__isnull=False).count(),
        "declined": participants.filter(step=Participant.Step.DECLINED).count(),
        "completed": participants.filter(step=Participant.Step.DONE).count(),
        "pilots": Participant.objects.filter(study=study, is_pilot=True).count(),
        "ratings": Rating.objects.filter(trial__participant__study=study, trial__participant__is_pilot=False).count(),
    }


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def ratings_rows(*, study: Study, include_pilot: bool = False) -> list[dict]:
    """One dict per rating, long format, self-describing (jsPsych style): the analysis input."""
    ratings = (
        Rating.objects.filter(trial__participant__study=study)
        .select_related("dimension", "trial__stimulus__stimulus_set", "trial__participant")
        .order_by("trial__participant__pk", "trial__index", "dimension__order", "dimension__pk")
    )
    if not include_pilot:
        ratings = ratings.filter(trial__participant__is_pilot=False)
    questionnaires = {
        q.participant_id: q for q in QuestionnaireResponse.objects.filter(participant__study=study)
    }
    media_root = Path(settings.MEDIA_ROOT).resolve()
    rows = []
    for rating in ratings.iterator(chunk_size=2000):
        trial = rating.trial
        participant = trial.participant
        stimulus = trial.stimulus
        dimension = rating.dimension
        q = questionnaires.get(participant.pk)
        descriptors = stimulus.descriptors or {}
        row = {
            "study": study.slug,
            "participant": participant.pseudonym,
            "is_pilot": participant.is_pilot,
            "group": participant.group,
            "stimulus": stimulus.public_id,
            "condition": stimulus.condition,
            "epsilon": stimulus.epsilon,
            "class_index": stimulus.class_index,
            "class_name": stimulus.class_name,
            "seed": stimulus.seed,
            "draw": stimulus.draw,
            "stimulus_set": stimulus.stimulus_set.name,
            "dimension": dimension.name,
            "scale": dimension.kind,
            "scale_min": dimension.minimum,
            "scale_max": dimension.maximum,
            "response": rating.value,
            "rt_ms": rating.rt_ms,
            "trial_rt_ms": trial.rt_ms,
            "trial_index": trial.index,
            "block": trial.block,
            "is_practice": trial.kind == Trial.Kind.PRACTICE,
            "is_attention_check": trial.kind == Trial.Kind.ATTENTION,
            "expected_response": trial.expected_value,
            "attention_passed": trial.attention_passed,
            "shown_at": _iso(trial.shown_at),
            "answered_at": _iso(trial.answered_at),
            "shown_count": trial.shown_count,
            "participant_status": participant.status,
            "participant_seed": participant.seed,
            "consented_at": _iso(participant.consented_at),
            "completed_at": _iso(participant.completed_at),
            "duration_s": participant.duration_s,
            "attention_failures": participant.attention_failures,
            "age_band": q.age_band if q else None,
            "gender": q.gender if q else None,
            "art_training": q.art_training if q else None,
            "art_expertise": q.art_expertise if q else None,
            "comment": q.comment if q else None,
            **{key: descriptors.get(key) for key in DESCRIPTOR_KEYS},
            "image_path": str((media_root / stimulus.image.name).resolve()) if stimulus.image else None,
        }
        rows.append(row)
    return rows


def ratings_frame(*, study: Study, include_pilot: bool = False) -> pd.DataFrame:
    """The export as a DataFrame with stable columns and dtypes, even when there are no ratings yet."""
    import pandas as pd

    frame = pd.DataFrame(ratings_rows(study=study, include_pilot=include_pilot), columns=EXPORT_COLUMNS)
    for column in ["shown_at", "answered_at", "consented_at", "completed_at"]:
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    for column in ["is_pilot", "is_practice", "is_attention_check"]:
        frame[column] = frame[column].astype(bool)
    frame["attention_passed"] = frame["attention_passed"].astype("boolean")
    for column in ["rt_ms", "trial_rt_ms", "class_index", "seed", "draw", "expected_response", "art_expertise",
                   "participant_seed"]:
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    frame["response"] = frame["response"].astype(float)
    for column in ["duration_s", *DESCRIPTOR_KEYS]:
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    frame["epsilon"] = pd.to_numeric(frame["epsilon"]).astype(float)
    return frame


def study_links(*, study: Study, base_url: str = "http://127.0.0.1:8000") -> dict[str, str]:
    """Participant (Prolific-style), pilot preview and admin links for a study."""
    from django.urls import reverse

    base = base_url.rstrip("/")
    entry = reverse("study:entry", kwargs={"slug": study.slug})
    preview = reverse("study:preview", kwargs={"slug": study.slug, "token": study.pilot_token})
    admin = reverse("admin:study_study_change", args=[study.pk])
    return {
        "participant": f"{base}{entry}?PROLIFIC_PID=demo1&STUDY_ID=demo&SESSION_ID=demo1",
        "prolific": f"{base}{entry}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&STUDY_ID={{{{%STUDY_ID%}}}}"
                    f"&SESSION_ID={{{{%SESSION_ID%}}}}",
        "pilot preview": f"{base}{preview}",
        "admin": f"{base}{admin}",
    }

"""Reads: the stimuli a study draws from, allocation counts, readiness, quotas and the long-format export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Count, QuerySet

from analysis.schema import DESCRIPTOR_COLUMNS, EXPORT_COLUMNS, SCHEMA_VERSION, recipe_columns, typed_frame
from generation.models import Stimulus, StimulusSet
from study.caching import BoundedCache
from study.compiled import CompiledQuery
from study.models import Participant, QuestionnaireResponse, Rating, RatingDimension, Study, Trial

if TYPE_CHECKING:
    import pandas as pd


def study_stimuli(*, study: Study) -> QuerySet[Stimulus]:
    """Stimuli of the study's sets in its chosen conditions that have an image."""
    return _stimuli_of(study_id=study.pk, conditions=study.conditions)


def _stimuli_of(*, study_id: int, conditions: list[str]) -> QuerySet[Stimulus]:
    qs = Stimulus.objects.filter(stimulus_set__in=StimulusSet.objects.filter(studies=study_id)).exclude(image="")
    if conditions:
        qs = qs.filter(condition__in=conditions)
    return qs.order_by("pk")


# The reads of every consent (and the quota check of every entry), compiled once per process (study/compiled.py).
_POOL = CompiledQuery(
    lambda study_id, conditions: _stimuli_of(study_id=study_id, conditions=conditions).values_list("pk", "condition")
)
_ALLOCATION = CompiledQuery(
    lambda study_id: (
        Trial.objects.filter(
            participant__study=study_id,
            participant__is_pilot=False,
            participant__released_at=None,
            kind=Trial.Kind.RATING,
        )
        .values_list("stimulus_id")
        .annotate(n=Count("participant_id", distinct=True))
        .order_by()
    )
)


def _enrolled(study_id: int) -> QuerySet[Participant]:
    return Participant.objects.filter(study=study_id, is_pilot=False, consented_at__isnull=False, released_at=None)


_ENROLLED = CompiledQuery(lambda study_id: _enrolled(study_id).values("pk").order_by(), count=True)
_GROUPS = CompiledQuery(lambda study_id: _enrolled(study_id).values_list("group").annotate(n=Count("pk")).order_by())


def study_by_slug(*, slug: str) -> Study | None:
    """The study of a recruitment link, from a statement compiled once per process (study.fastpath)."""
    from study.fastpath import study_by_slug as read_study

    return read_study(slug=slug)


def study_pool(*, study: Study) -> list[tuple[int, str]]:
    """(id, condition) of each of study_stimuli, in id order: what an assignment draws from."""
    return _POOL.rows(study_id=study.pk, conditions=[str(c) for c in study.conditions or []])


def stimulus_allocation_counts(*, study: Study) -> dict[int, int]:
    """Participants (pilots excluded) assigned to rate each stimulus: the least-rated-first criterion."""
    return dict(_ALLOCATION.rows(study_id=study.pk))


def study_enrolled_count(*, study: Study) -> int:
    """Non-pilot participants who consented: what the quota counts."""
    return _ENROLLED.scalar(study_id=study.pk)


def study_is_full(*, study: Study) -> bool:
    return study.max_participants is not None and study_enrolled_count(study=study) >= study.max_participants


def group_counts(*, study: Study) -> dict[str, int]:
    return dict(_GROUPS.rows(study_id=study.pk))


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
            present = set(
                Stimulus.objects.filter(stimulus_set__in=study.stimulus_sets.all()).values_list("condition", flat=True)
            )
            absent = [c for c in study.conditions if c not in present]
            if absent:
                problems.append(f"condition(s) not in the stimulus sets: {', '.join(absent)}")
    if study.screen_out_after and not study.screen_out_code.strip():
        problems.append("screen-out is on but there is no screen-out code")
    if study.between_factor == Study.BetweenFactor.DIMENSION and len(dimensions) < 2:
        problems.append("a between-subject dimension factor needs at least two dimensions")
    from study.counts import text_count_problems

    problems += text_count_problems(study=study)
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


def participant_export_columns(*, participant: Participant, questionnaire) -> dict[str, object]:
    """A participant's status, timing and questionnaire columns: the same in the ratings and comparisons exports."""
    q = questionnaire
    return {
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
    }


def ratings_rows(*, study: Study, include_pilot: bool = False) -> list[dict]:
    """One dict per rating, long format, self-describing (jsPsych style): the analysis input."""
    ratings = (
        Rating.objects.filter(trial__participant__study=study)
        .select_related("dimension", "trial__stimulus__stimulus_set", "trial__participant")
        .order_by("trial__participant__pk", "trial__index", "dimension__order", "dimension__pk")
    )
    if not include_pilot:
        ratings = ratings.filter(trial__participant__is_pilot=False)
    questionnaires = {q.participant_id: q for q in QuestionnaireResponse.objects.filter(participant__study=study)}
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
            "schema_version": SCHEMA_VERSION,
            "study": study.slug,
            "participant": participant.pseudonym,
            "is_pilot": participant.is_pilot,
            "group": participant.group,
            "stimulus": stimulus.public_id,
            "condition": stimulus.condition,
            **recipe_columns(
                condition=stimulus.condition, epsilon=stimulus.epsilon, draw=stimulus.draw, recipe=stimulus.recipe
            ),
            "draw": stimulus.draw,
            "seed": stimulus.seed,
            "class_index": stimulus.class_index,
            "class_name": stimulus.class_name,
            "recipe_id": stimulus.recipe_id,
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
            **participant_export_columns(participant=participant, questionnaire=q),
            **{key: descriptors.get(key) for key in DESCRIPTOR_COLUMNS},
            "image_path": str((media_root / stimulus.image.name).resolve()) if stimulus.image else None,
        }
        rows.append(row)
    return rows


def ratings_frame(*, study: Study, include_pilot: bool = False) -> pd.DataFrame:
    """The export as a DataFrame with the schema's columns and dtypes (analysis.schema), even with no ratings yet."""
    return typed_frame(ratings_rows(study=study, include_pilot=include_pilot), columns=EXPORT_COLUMNS)


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


# ---- the participant hot path: one query for the state, per-process caches for what is per study ----------------
#
# A participant page must cost almost nothing (issue: <= 4 ms of server CPU per submission). What changes per request
# (the participant's step and position, the current and neighbouring trials) is read in one query; what is per study
# (dimensions, their pre-rendered scales) is cached per process (and the frozen trial counts, in study.counts). Study
# texts and dimensions change only through saves of the study (the admin's inline forms and load_study both save
# it), which bump `Study.updated_at`: that timestamp is part of every cache key, so a change invalidates explicitly.


def participant_page_state(
    *, slug: str, public_id: str, stamp_shown_at=None, neighbours: bool = True
) -> Participant | None:
    """The participant with its study and previous, current and next trial: one precompiled statement.

    With `stamp_shown_at`, the same statement also stamps the current rating trial as shown; `neighbours=False`
    reads only the current trial, for an answer (see study.fastpath).
    """
    from study.fastpath import participant_page_state as read_state

    return read_state(slug=slug, public_id=public_id, stamp_shown_at=stamp_shown_at, neighbours=neighbours)


_DIMENSIONS = BoundedCache(256)
_SCALES_HTML = BoundedCache(1024)


def _study_key(study: Study) -> tuple[int, str]:
    return study.pk, study.updated_at.isoformat() if study.updated_at else ""


def study_dimensions(*, study: Study) -> dict[str, RatingDimension]:
    """The study's rating dimensions by name, in order (cached per process until the study is saved)."""
    key = _study_key(study)
    cached = _DIMENSIONS.get(key)
    if cached is None:
        cached = _DIMENSIONS.put(key, {d.name: d for d in RatingDimension.objects.filter(study_id=study.pk)})
    return cached


def study_dimensions_if_cached(*, study_id: int, version: str) -> dict[str, RatingDimension] | None:
    """The dimensions study_dimensions cached for this study version in this process, or None (no query)."""
    return _DIMENSIONS.get((study_id, version))


def scales_html(*, study: Study, names: tuple[str, ...]) -> str:
    """The rating scales of a trial screen, rendered once per study version and dimension list."""
    from django.template.loader import render_to_string

    key = (*_study_key(study), names)
    cached = _SCALES_HTML.get(key)
    if cached is None:
        dimensions = study_dimensions(study=study)
        html = render_to_string(
            "study/_scales.html",
            {"dimensions": [dimensions[n] for n in names if n in dimensions], "slider": RatingDimension.Kind.SLIDER},
        )
        cached = _SCALES_HTML.put(key, html)  # a SafeString: escaped when it was rendered
    return cached

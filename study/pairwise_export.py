"""The comparisons table of a pairwise study: one row per choice, the input of `analysis.pairwise`.

The column list is owned by `analysis.pairwise.COMPARISON_EXPORT_COLUMNS`, so the export and the analysis
cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from analysis.pairwise import COMPARISON_EXPORT_COLUMNS, PAIR_STIMULUS_COLUMNS
from study.models import Choice, QuestionnaireResponse, Study, Trial
from study.selectors import participant_export_columns

if TYPE_CHECKING:
    import pandas as pd

    from generation.models import Stimulus


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _stimulus_columns(stimulus: Stimulus, side: str, media_root: Path) -> dict[str, object]:
    descriptors = stimulus.descriptors or {}
    values = {
        "condition": stimulus.condition,
        "epsilon": stimulus.epsilon,
        "class_index": stimulus.class_index,
        "class_name": stimulus.class_name,
        "seed": stimulus.seed,
        "draw": stimulus.draw,
        "stimulus_set": stimulus.stimulus_set.name,
        "image_path": str((media_root / stimulus.image.name).resolve()) if stimulus.image else None,
    }
    return {f"{c}_{side}": values[c] if c in values else descriptors.get(c) for c in PAIR_STIMULUS_COLUMNS}


def comparisons_rows(*, study: Study, include_pilot: bool = False) -> list[dict]:
    choices = (
        Choice.objects.filter(trial__participant__study=study)
        .select_related(
            "dimension",
            "chosen",
            "trial__participant",
            "trial__stimulus__stimulus_set",
            "trial__stimulus_right__stimulus_set",
        )
        .order_by("trial__participant__pk", "trial__index", "dimension__order", "dimension__pk")
    )
    if not include_pilot:
        choices = choices.filter(trial__participant__is_pilot=False)
    questionnaires = {q.participant_id: q for q in QuestionnaireResponse.objects.filter(participant__study=study)}
    media_root = Path(settings.MEDIA_ROOT).resolve()
    rows = []
    for choice in choices.iterator(chunk_size=2000):
        trial = choice.trial
        participant = trial.participant
        q = questionnaires.get(participant.pk)
        rows.append(
            {
                "participant": participant.pseudonym,
                "left": trial.stimulus.public_id,
                "right": trial.stimulus_right.public_id,
                "chosen": choice.chosen.public_id if choice.chosen else None,
                "dimension": choice.dimension.name,
                "rt_ms": choice.rt_ms,
                "trial_index": trial.index,
                "pair_source": trial.pair_source,
                "study": study.slug,
                "is_pilot": participant.is_pilot,
                "group": participant.group,
                "chosen_side": choice.side,
                "trial_rt_ms": trial.rt_ms,
                "block": trial.block,
                "is_practice": trial.kind == Trial.Kind.PRACTICE,
                "is_attention_check": trial.kind == Trial.Kind.ATTENTION,
                "expected_side": ("left", "right")[trial.expected_value] if trial.expected_value is not None else None,
                "attention_passed": trial.attention_passed,
                "shown_at": _iso(trial.shown_at),
                "answered_at": _iso(trial.answered_at),
                "shown_count": trial.shown_count,
                "posterior_seq": choice.posterior_seq,
                **participant_export_columns(participant=participant, questionnaire=q),
                **_stimulus_columns(trial.stimulus, "left", media_root),
                **_stimulus_columns(trial.stimulus_right, "right", media_root),
            }
        )
    return rows


def comparisons_frame(*, study: Study, include_pilot: bool = False) -> pd.DataFrame:
    """The table with stable columns and dtypes, even before the first choice."""
    import pandas as pd

    frame = pd.DataFrame(
        comparisons_rows(study=study, include_pilot=include_pilot), columns=list(COMPARISON_EXPORT_COLUMNS)
    )
    for column in ["shown_at", "answered_at", "consented_at", "completed_at"]:
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    for column in ["is_pilot", "is_practice", "is_attention_check"]:
        frame[column] = frame[column].astype(bool)
    frame["attention_passed"] = frame["attention_passed"].astype("boolean")
    for column in [
        "rt_ms",
        "trial_rt_ms",
        "posterior_seq",
        "art_expertise",
        "participant_seed",
        *(f"{c}_{side}" for side in ("left", "right") for c in ("class_index", "seed", "draw")),
    ]:
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    for column in [
        "duration_s",
        *(f"{c}_{side}" for side in ("left", "right") for c in (*PAIR_STIMULUS_COLUMNS[7:13], "epsilon")),
    ]:
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    return frame

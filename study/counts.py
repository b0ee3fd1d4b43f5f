"""How many images a participant sees: one owner for the numbers on the consent, progress bar and debrief.

Researchers write `{images}` (and `{practice}`) in their texts instead of a number, so the consent can never
say 12 when the progress bar says 14 (12 rated images + 2 attention checks are 14 screens).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Count

from study.compiled import CompiledQuery
from study.models import Participant, Study, Trial

PLACEHOLDERS = ("{images}", "{practice}")
_STATED_COUNT = re.compile(r"\b(\d+)\s+(?:images|pictures|Bilder|Bildern)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ScreenCounts:
    practice: int  # practice images, shown first
    main: int  # every image after practice: rated screens (per block) plus attention checks

    def as_text_values(self) -> dict[str, str]:
        return {"{images}": str(self.main), "{practice}": str(self.practice)}


def planned_counts(*, study: Study) -> ScreenCounts:
    """What a new participant will see, from the design (matches plan_trials: one block per dimension in
    `blocks` layout, unless each participant rates one dimension)."""
    from study.selectors import study_dimensions  # cached per process; selectors imports this module

    n_dimensions = len(study_dimensions(study=study))
    blocks = (
        n_dimensions
        if study.layout == Study.Layout.BLOCKS and n_dimensions > 1 and study.between_factor == Study.BetweenFactor.NONE
        else 1
    )
    return ScreenCounts(
        practice=study.practice_trials, main=study.trials_per_participant * blocks + study.attention_checks
    )


_FROZEN: dict[str, ScreenCounts] = {}
# Read once per participant and process, on their first trial page (study/compiled.py: compiled once).
_BY_KIND = CompiledQuery(
    lambda participant_id: (
        Trial.objects.filter(participant=participant_id).values_list("kind").annotate(n=Count("pk")).order_by()
    )
)


def participant_counts(*, participant: Participant) -> ScreenCounts:
    """What this participant's frozen list holds (the design may not change after consent, so both agree).

    A frozen list never changes, so its counts are cached per process (keyed by the participant's random token).
    """
    if not participant.trial_count:
        return planned_counts(study=participant.study)
    cached = _FROZEN.get(participant.public_id)
    if cached is None:
        by_kind = dict(_BY_KIND.rows(participant_id=participant.pk))
        practice = by_kind.get(Trial.Kind.PRACTICE, 0)
        cached = ScreenCounts(practice=practice, main=sum(by_kind.values()) - practice)
        if len(_FROZEN) > 20000:
            _FROZEN.clear()
        _FROZEN[participant.public_id] = cached
    return cached


def fill_counts(text: str, counts: ScreenCounts) -> str:
    for placeholder, value in counts.as_text_values().items():
        text = text.replace(placeholder, value)
    return text


def text_count_problems(*, study: Study) -> list[str]:
    """A number of images written into a text that differs from what participants will see."""
    main = planned_counts(study=study).main
    problems = []
    for label, text in (
        ("consent", study.consent_text),
        ("instructions", study.instructions),
        ("debrief", study.debrief),
    ):
        stated = {int(n) for n in _STATED_COUNT.findall(text or "")} - {main, study.practice_trials}
        if stated:
            problems.append(
                f"the {label} text says {min(stated)} images but participants see {main} "
                f"(rated images and attention checks); write {{images}} instead of the number"
            )
    return problems

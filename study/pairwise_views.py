"""The pairwise trial page: two images side by side (stacked on phones), one question, click or keys."""

from __future__ import annotations

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from study import services
from study.models import Participant, Trial


def render_pair_trial(request: HttpRequest, participant: Participant, context: dict) -> HttpResponse:
    position = participant.position
    nearby = {
        t.index: t
        for t in participant.trials.select_related("stimulus", "stimulus_right").filter(
            index__in=[position - 1, position, position + 1]
        )
    }
    current, previous, upcoming = nearby[position], nearby.get(position - 1), nearby.get(position + 1)
    services.trial_mark_shown(trial=current)
    study = participant.study
    dimensions = {d.name: d for d in study.dimensions.all()}
    counts = dict.fromkeys(Trial.Kind.values, 0)
    counts.update(participant.trials.values_list("kind").annotate(n=Count("pk")))
    n_practice = counts[Trial.Kind.PRACTICE]
    is_practice = current.kind == Trial.Kind.PRACTICE
    is_attention = current.kind == Trial.Kind.ATTENTION
    preload = [t.stimulus.image.url for t in (upcoming,) if t] + [
        t.stimulus_right.image.url for t in (upcoming,) if t and t.stimulus_right_id
    ]
    context.update(
        {
            "trial": current,
            "left": current.stimulus,
            "right": current.stimulus_right,
            "preload": preload,
            "dimensions": [dimensions[name] for name in current.dimensions if name in dimensions],
            "allow_tie": study.pair_allow_tie and not is_attention,
            "is_practice": is_practice,
            "is_attention": is_attention,
            "instructed_side": ("left", "right")[current.expected_value or 0] if is_attention else "",
            "number": current.index + 1 if is_practice else current.index + 1 - n_practice,
            "total": n_practice if is_practice else counts[Trial.Kind.RATING] + counts[Trial.Kind.ATTENTION],
            "practice_over": bool(previous and previous.kind == Trial.Kind.PRACTICE and not is_practice),
            "new_block": bool(
                previous
                and not is_practice
                and previous.kind != Trial.Kind.PRACTICE
                and previous.block != current.block
            ),
        }
    )
    return render(request, "study/pair_trial.html", context)

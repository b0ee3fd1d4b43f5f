"""Practice trials and attention checks never show a participant an image twice (issue: 41 of 45 saw a repeat)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from django.core.management import call_command

from study.assignment import StimulusRef, extra_stimuli
from study.models import Participant, Trial
from tests.study.factories import make_study


@pytest.mark.django_db
@pytest.mark.slow
def test_no_participant_in_a_200_bot_run_sees_an_image_twice(stimulus_set):
    # 24 stimuli; 12 rated + 2 practice + 2 checks = 16 screens, as in examples/study.yaml.
    study = make_study(
        stimulus_set=stimulus_set,
        trials_per_participant=12,
        practice_trials=2,
        attention_checks=2,
        source={"bots": {"decline_rate": 0.0, "inattentive_rate": 0.1}},
    )
    call_command("run_bots", study.slug, "--participants", "200", "--seed", "11")
    assert Participant.objects.filter(study=study, step=Participant.Step.DONE).count() == 200
    seen: dict[int, list[int]] = {}
    for participant_id, stimulus_id in Trial.objects.filter(participant__study=study).values_list(
        "participant_id", "stimulus_id"
    ):
        seen.setdefault(participant_id, []).append(stimulus_id)
    assert len(seen) == 200
    repeats = {p: [s for s, n in Counter(ids).items() if n > 1] for p, ids in seen.items()}
    assert not {p: r for p, r in repeats.items() if r}
    assert all(len(ids) == 16 for ids in seen.values())


def test_extras_come_from_outside_the_rated_set_least_used_first():
    pool = [StimulusRef(id=i, condition="c") for i in range(10)]
    rated = {0, 1, 2, 3, 4, 5}
    counts = {6: 5, 7: 0, 8: 9, 9: 1}
    extras = extra_stimuli(pool=pool, rated_ids=rated, counts=counts, n=2, rng=random.Random(1))
    assert sorted(r.id for r in extras) == [7, 9]


def test_extras_fall_back_on_least_used_rated_stimuli_only_when_the_pool_is_too_small():
    pool = [StimulusRef(id=i, condition="c") for i in range(5)]
    extras = extra_stimuli(
        pool=pool, rated_ids={0, 1, 2, 3}, counts={0: 3, 1: 0, 2: 7, 3: 2}, n=3, rng=random.Random(2)
    )
    ids = [r.id for r in extras]
    assert len(set(ids)) == 3 and 4 in ids and 1 in ids and 3 in ids

"""Service-level guarantees that the views rely on."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from study.services import response_record, trial_answer
from tests.study.helpers import to_trials

pytestmark = pytest.mark.django_db


def test_response_record_refuses_a_second_rating_of_the_same_trial_and_dimension(study, client):
    _, participant = to_trials(client, study)
    trial = participant.trials.get(index=0)
    dimension = study.dimensions.get(name="artistry")
    response_record(trial=trial, dimension=dimension, value=3, rt_ms=100)
    with pytest.raises(IntegrityError):
        response_record(trial=trial, dimension=dimension, value=5, rt_ms=100)


def test_trial_answer_is_idempotent_for_a_stale_participant_object(study, client):
    _, participant = to_trials(client, study)
    stale = type(participant).objects.get(pk=participant.pk)
    assert trial_answer(participant=participant, index=0, answers={"artistry": 2, "symbolism": 6}).recorded
    # A second request that loaded the participant before the first one moved it: compare-and-set says no.
    assert not trial_answer(participant=stale, index=0, answers={"artistry": 7, "symbolism": 7}).recorded
    assert sorted(participant.trials.get(index=0).ratings.values_list("value", flat=True)) == [2.0, 6.0]

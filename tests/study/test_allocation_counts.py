"""The allocation counts the assignment keeps on the study row always equal the aggregate over the study's trials
that they replace (selectors.stimulus_allocation_counts), through consents, pilots, releases and withdrawals."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from study import selectors, services
from study.models import Participant, Study
from study.operations import participant_withdraw
from tests.study.factories import make_study

pytestmark = pytest.mark.django_db


def _consent(study: Study, pid: str, *, pilot: bool = False) -> Participant:
    participant = services.participant_enter(study=study, source="prolific", external_id=pid, pilot=pilot)
    return services.participant_consent(participant=participant)


def _stored(study: Study) -> tuple[dict[int, int], int]:
    study.refresh_from_db(fields=["allocation_counts", "allocation_basis"])
    return {int(k): v for k, v in study.allocation_counts.items()}, study.allocation_basis


def _assert_kept(study: Study) -> None:
    counts, basis = _stored(study)
    assert counts == selectors.stimulus_allocation_counts(study=study)
    assert basis == selectors.study_enrolled_count(study=study)


def test_kept_counts_follow_consents_pilots_releases_and_withdrawals(study):
    assert _stored(study) == ({}, 0)
    for i in range(4):
        _consent(study, f"k{i}")
        _assert_kept(study)
    assert sum(_stored(study)[0].values()) == 4 * study.trials_per_participant
    _consent(study, "pilot", pilot=True)  # a pilot counts for nothing: the kept counts do not change
    _assert_kept(study)
    first = Participant.objects.filter(study=study, is_pilot=False).order_by("pk").first()
    services.participants_release(participants=Participant.objects.filter(pk=first.pk))
    _consent(study, "after-release")  # the basis no longer matches: counted afresh, then kept
    _assert_kept(study)
    participant_withdraw(participant=Participant.objects.filter(study=study, is_pilot=False, released_at=None).first())
    _consent(study, "after-withdrawal")
    _assert_kept(study)


def test_a_study_from_before_the_counts_builds_them_at_its_next_consent(study):
    _consent(study, "old-1")
    Study.objects.filter(pk=study.pk).update(allocation_counts={"999999": 7}, allocation_basis=-1)
    _consent(study, "old-2")
    _assert_kept(study)
    assert 999999 not in _stored(study)[0]


def test_a_consent_with_valid_kept_counts_does_not_aggregate_the_trials(study):
    _consent(study, "warm")
    participant = services.participant_enter(study=study, source="prolific", external_id="measured")
    with CaptureQueriesContext(connection) as log:
        services.participant_consent(participant=participant)
    trial_table = '"study_trial"'
    aggregates = [q["sql"] for q in log if "COUNT(DISTINCT" in q["sql"] and trial_table in q["sql"]]
    assert aggregates == []
    _assert_kept(study)


def test_an_edit_saved_from_a_stale_copy_keeps_the_assignments_fields(study):
    """The admin (or a spec reload) saves the whole study; a copy read before the last consent must not write back
    its older counts, basis or lock serial."""
    stale = Study.objects.get(pk=study.pk)
    _consent(study, "meanwhile")
    stale.title = "Renamed"
    stale.save()
    study.refresh_from_db()
    assert study.title == "Renamed"
    assert study.assignment_serial == stale.assignment_serial + 1
    _assert_kept(study)
    assert _stored(study)[1] == 1


def test_pair_studies_mark_the_counts_unbuilt():
    study = make_study(task=Study.Task.PAIRWISE, pairs_per_participant=4)
    _consent(study, "pairs")
    assert _stored(study)[1] == -1

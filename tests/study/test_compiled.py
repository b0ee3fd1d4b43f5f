"""The consent's precompiled statements (study.compiled, study.fastpath): they read and write what the ORM does."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from study import fastpath, selectors, services
from study.compiled import CompiledQuery
from study.models import Participant, Study, Trial
from study.services import participants_release
from tests.study.factories import make_stimulus_set, make_study

pytestmark = pytest.mark.django_db


def _consented(study: Study, n: int, *, pilot: bool = False) -> list[Participant]:
    out = []
    for i in range(n):
        p = services.participant_enter(study=study, source="prolific", external_id=f"c{i}-{pilot}", pilot=pilot)
        out.append(services.participant_consent(participant=p))
    return out


def _orm_allocation(study: Study) -> dict[int, int]:
    rows = (
        Trial.objects.filter(
            participant__study=study, participant__is_pilot=False, participant__released_at=None, kind="rating"
        )
        .values("stimulus_id")
        .annotate(n=Count("participant_id", distinct=True))
    )
    return {r["stimulus_id"]: r["n"] for r in rows}


def test_compiled_selectors_agree_with_the_orm_as_the_study_changes(study):
    """Same answers as the ORM querysets they are compiled from, before and after consents, pilots and releases,
    and for a second study (the compiled SQL is reused with new values, not frozen on the first)."""
    other = make_study(stimulus_set=make_stimulus_set(), trials_per_participant=4, conditions=["baseline", "symbolic"])
    for s in (study, other):
        assert selectors.study_enrolled_count(study=s) == 0
        assert selectors.stimulus_allocation_counts(study=s) == {}
    participants = _consented(study, 3) + _consented(study, 1, pilot=True) + _consented(other, 2)
    participants_release(participants=Participant.objects.filter(pk=participants[0].pk))
    for s in (study, other):
        enrolled = Participant.objects.filter(study=s, is_pilot=False, consented_at__isnull=False, released_at=None)
        assert selectors.study_enrolled_count(study=s) == enrolled.count()
        assert selectors.stimulus_allocation_counts(study=s) == _orm_allocation(s)
        assert selectors.group_counts(study=s) == {"": enrolled.count()}
        assert selectors.study_pool(study=s) == list(selectors.study_stimuli(study=s).values_list("pk", "condition"))
    assert selectors.study_enrolled_count(study=study) == 2
    assert {c for _, c in selectors.study_pool(study=other)} == {"baseline", "symbolic"}


def test_a_list_argument_compiles_once_per_length():
    query = CompiledQuery(lambda ids: Study.objects.filter(pk__in=ids).values_list("pk"))
    a, b, c = (make_study(slug=f"compiled-{i}") for i in range(3))
    assert sorted(query.rows(ids=[a.pk])) == [(a.pk,)]
    assert sorted(query.rows(ids=[b.pk, c.pk])) == [(b.pk,), (c.pk,)]
    assert sorted(query.rows(ids=[c.pk])) == [(c.pk,)]
    assert len(query._compiled) == 2


def test_an_argument_the_orm_rewrites_is_refused_when_compiled():
    """A lookup that changes its value (here `icontains` wraps it in %) cannot be rebound: a clear error, not a
    query that silently runs with the marker."""
    query = CompiledQuery(lambda slug: Study.objects.filter(slug__icontains=slug).values_list("pk"))
    with pytest.raises(RuntimeError, match="each argument must appear once"):
        query.rows(slug="x")


def test_compiled_arguments_are_ints_or_strings():
    query = CompiledQuery(lambda when: Study.objects.filter(updated_at__gte=when).values_list("pk"))
    with pytest.raises(TypeError, match="ints or strings"):
        query.rows(when=timezone.now())


def test_trials_insert_stores_what_bulk_create_stores(study):
    """The JSON-document insert (PostgreSQL) and the VALUES insert (a value JSON cannot carry, or SQLite) store the
    same columns as bulk_create, defaults included."""
    participants = [services.participant_enter(study=study, source="prolific", external_id=f"ins{i}") for i in range(3)]
    stimulus = selectors.study_stimuli(study=study).first()
    shown = timezone.now()

    def trials(p: Participant, *, with_time: bool) -> list[Trial]:
        return [
            Trial(
                participant=p,
                index=i,
                kind=Trial.Kind.ATTENTION if i == 1 else Trial.Kind.RATING,
                stimulus_id=stimulus.pk,
                dimensions=["artistry", "symbolism"] if i else ["artistry"],
                block=i % 2,
                expected_value=3 if i == 1 else None,
                shown_at=shown if with_time else None,
            )
            for i in range(3)
        ]

    Trial.objects.bulk_create(trials(participants[0], with_time=False))
    fastpath.trials_insert(trials=trials(participants[1], with_time=False))
    with CaptureQueriesContext(connection) as log:
        fastpath.trials_insert(trials=trials(participants[2], with_time=True))
    assert len(log) == 1

    def stored(p: Participant) -> list[tuple]:
        columns = [f.attname for f in Trial._meta.concrete_fields if f.attname not in ("id", "participant_id")]
        return list(Trial.objects.filter(participant=p).order_by("index").values_list(*columns))

    reference = stored(participants[0])
    assert len(reference) == 3
    assert stored(participants[1]) == reference
    timed = stored(participants[2])
    shown_at = [f.attname for f in Trial._meta.concrete_fields if f.attname not in ("id", "participant_id")].index(
        "shown_at"
    )
    assert all(row[shown_at] == shown for row in timed)
    assert [row[:shown_at] + row[shown_at + 1 :] for row in timed] == [
        row[:shown_at] + row[shown_at + 1 :] for row in reference
    ]


@pytest.mark.django_db(transaction=True)
def test_a_decline_that_wins_the_race_keeps_no_trials(monkeypatch):
    """The participant declines in another tab (its own transaction, committed) after the consent read them: the
    move fails, and no trials are written to count toward the allocation.
    PostgreSQL only: SQLite's write lock, taken first, makes the decline wait for the consent."""
    if connection.vendor != "postgresql":
        pytest.skip("the race needs row-level locking")
    study = make_study()
    participant = services.participant_enter(study=study, source="prolific", external_id="racer")
    read = fastpath.participant_for_assignment

    def decline(participant_id: int) -> None:
        from django.db import connections

        Participant.objects.filter(pk=participant_id).update(step=Participant.Step.DECLINED)
        connections.close_all()

    def read_then_decline(*, participant_id: int) -> Participant:
        current = read(participant_id=participant_id)
        other = threading.Thread(target=decline, args=(participant_id,))
        other.start()
        other.join()
        return current

    monkeypatch.setattr(fastpath, "participant_for_assignment", read_then_decline)
    result = services.participant_consent(participant=participant)
    assert result.step == Participant.Step.DECLINED
    assert not Trial.objects.filter(participant=participant).exists()
    assert selectors.stimulus_allocation_counts(study=study) == {}


def test_consent_reads_a_fresh_study(study):
    """A study closed while the consent page was open turns the consent away (the consent reads the study again,
    not the page's copy)."""
    participant = services.participant_enter(study=study, source="prolific", external_id="late")
    Study.objects.filter(pk=study.pk).update(status=Study.Status.CLOSED)
    with pytest.raises(services.StudyUnavailable):
        services.participant_consent(participant=participant)
    assert not Trial.objects.filter(participant=participant).exists()


def test_entry_reads_find_what_the_orm_finds(study):
    """The entry's precompiled reads: the study by slug (None for an unknown one) and a returning participant."""
    assert selectors.study_by_slug(slug="no-such-study") is None
    found = selectors.study_by_slug(slug=study.slug)
    assert (found.pk, found.status, found.max_participants) == (study.pk, study.status, study.max_participants)
    assert found.consent_text == study.consent_text  # a skipped text loads when used
    entered = services.participant_enter(study=study, source="prolific", external_id="returning")
    pseudonym = services.pseudonym_for(source="prolific", external_id="returning")
    again = fastpath.participant_by_pseudonym(study=found, pseudonym=pseudonym)
    assert (again.pk, again.public_id, again.step) == (entered.pk, entered.public_id, entered.step)
    assert again.study is found
    assert fastpath.participant_by_pseudonym(study=found, pseudonym="unknown") is None
    assert services.participant_enter(study=found, source="prolific", external_id="returning").pk == entered.pk

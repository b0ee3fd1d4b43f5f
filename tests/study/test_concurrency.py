"""Simultaneous arrivals: assignment is serialised per study, so counts stay balanced and answers stay single."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections
from django.test import Client

from study.models import Rating, Trial
from tests.study.factories import make_stimulus_set, make_study
from tests.study.helpers import enter, post_step, to_trials


def _in_threads(n: int, work) -> list:
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_arrivals_keep_per_stimulus_counts_balanced():
    # 4 conditions x 2 classes x 1 seed = 8 stimuli; 12 participants x 4 trials = 48 = 6 per stimulus.
    stimulus_set = make_stimulus_set(classes=(1, 2), seeds=(0,))
    study = make_study(stimulus_set=stimulus_set, trials_per_participant=4, practice_trials=0, attention_checks=0)
    clients = [Client() for _ in range(12)]
    urls = [enter(c, study, f"p{i}") for i, c in enumerate(clients)]

    def consent(i: int) -> int:
        return post_step(clients[i], urls[i], "consent", choice="agree").status_code

    assert _in_threads(12, consent) == [303] * 12
    counts = Counter(Trial.objects.filter(kind="rating").values_list("stimulus_id", flat=True))
    assert sum(counts.values()) == 48
    assert len(counts) == 8
    assert max(counts.values()) - min(counts.values()) <= 1
    for participant_conditions in _conditions_per_participant():
        assert participant_conditions == dict.fromkeys(["artistic-0.5", "artistic-1.0", "baseline", "symbolic"], 1)


def _conditions_per_participant():
    by_participant: dict[int, Counter] = {}
    for pid, condition in Trial.objects.filter(kind="rating").values_list("participant_id", "stimulus__condition"):
        by_participant.setdefault(pid, Counter())[condition] += 1
    return [dict(c) for c in by_participant.values()]


@pytest.mark.django_db(transaction=True)
def test_concurrent_quota_admits_exactly_max_participants():
    study = make_study(max_participants=3, trials_per_participant=4, practice_trials=0, attention_checks=0)
    clients = [Client() for _ in range(8)]
    urls = [enter(c, study, f"q{i}") for i, c in enumerate(clients)]
    statuses = _in_threads(8, lambda i: post_step(clients[i], urls[i], "consent", choice="agree").status_code)
    assert statuses.count(303) == 3 and statuses.count(200) == 5
    from study.selectors import study_enrolled_count

    assert study_enrolled_count(study=study) == 3


@pytest.mark.django_db(transaction=True)
def test_simultaneous_double_submit_stores_one_rating_per_dimension():
    if connection.vendor == "sqlite":
        # SQLite serialises writers anyway; the parallel variant matters (and runs) on PostgreSQL.
        pytest.skip("truly parallel requests need PostgreSQL")
    study = make_study(trials_per_participant=4, practice_trials=0, attention_checks=0)
    client = Client()
    url, participant = to_trials(client, study)
    data = {"step": "trials", "trial": 0, "artistry": 5, "symbolism": 2}
    tabs = []
    for _ in range(6):  # six tabs of the same browser session, submitting at once
        tab = Client()
        tab.cookies.load({key: morsel.value for key, morsel in client.cookies.items()})
        tabs.append(tab)
    statuses = _in_threads(6, lambda i: tabs[i].post(url, data).status_code)
    assert statuses == [303] * 6
    assert Rating.objects.count() == 2
    participant.refresh_from_db()
    assert participant.position == 1

"""Pairwise answers under real parallelism (PostgreSQL): exactly-once choices and no lost posterior updates."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection
from django.test import Client

from study import pairwise
from study.models import Choice, PairPosterior, Participant, Trial
from tests.study.factories import make_study
from tests.study.helpers import enter, post_step
from tests.study.test_concurrency import _in_threads

ONE_DIMENSION = [{"name": "artistry", "prompt": "Which image looks more like a work of art?"}]


def _needs_postgres() -> None:
    if connection.vendor == "sqlite":
        pytest.skip("truly parallel requests need PostgreSQL (SQLite serialises writers anyway)")


def _adaptive_study(**fields):
    defaults = {
        "task": "pairwise",
        "pair_design": "adaptive",
        "pairs_per_participant": 6,
        "practice_trials": 0,
        "attention_checks": 0,
        "dimensions": ONE_DIMENSION,
    }
    defaults.update(fields)
    return make_study(**defaults)


@pytest.mark.django_db(transaction=True)
def test_simultaneous_double_submit_stores_one_choice_and_one_update():
    _needs_postgres()
    study = _adaptive_study()
    client = Client()
    url = enter(client, study, "twice")
    post_step(client, url, "consent", choice="agree")
    post_step(client, url, "instructions")
    tabs = []
    for _ in range(6):  # six tabs of the same browser session, submitting at once
        tab = Client()
        tab.cookies.load({key: morsel.value for key, morsel in client.cookies.items()})
        tabs.append(tab)
    data = {"step": "trials", "trial": 0, "artistry": "left", "rt_ms": 700}
    assert _in_threads(6, lambda i: tabs[i].post(url, data).status_code) == [303] * 6
    assert Choice.objects.count() == 1
    row = PairPosterior.objects.get(study=study)
    assert pairwise.posterior_catch_up(study=study, dimension=row.dimension).n_updates == 1
    assert Participant.objects.get(study=study).position == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_participants_update_the_adaptive_posterior_without_losing_answers():
    _needs_postgres()
    study = _adaptive_study()
    n = 10
    clients = [Client() for _ in range(n)]
    urls = [enter(c, study, f"a{i}") for i, c in enumerate(clients)]
    # Simultaneous arrivals draw their pairs one after another under the study lock, each seeing the others'.
    assert _in_threads(n, lambda i: post_step(clients[i], urls[i], "consent", choice="agree").status_code) == [303] * n
    for i in range(n):
        post_step(clients[i], urls[i], "instructions")

    def answer_all(i: int) -> int:
        participant = Participant.objects.get(
            study=study, pseudonym__isnull=False, public_id=urls[i].rstrip("/").rsplit("/", 1)[-1]
        )
        trials = list(Trial.objects.filter(participant=participant).order_by("index"))
        for t in trials:
            side = "left" if (t.stimulus_id + t.index) % 3 else "right"
            response = clients[i].post(urls[i], {"step": "trials", "trial": t.index, "artistry": side})
            assert response.status_code == 303
        return len(trials)

    answered = sum(_in_threads(n, answer_all))
    assert answered == n * 6
    # The posterior learns the answers at the next read, racing with late arrivals' consents: each once.
    late = [Client() for _ in range(3)]
    late_urls = [enter(c, study, f"late{i}") for i, c in enumerate(late)]
    dimension = PairPosterior.objects.get(study=study).dimension

    def consent_or_catch_up(i: int) -> int:
        if i < len(late):
            return post_step(late[i], late_urls[i], "consent", choice="agree").status_code
        pairwise.posterior_catch_up(study=study, dimension=dimension)
        return 303

    assert _in_threads(len(late) + 2, consent_or_catch_up) == [303] * (len(late) + 2)
    row = PairPosterior.objects.get(study=study)
    assert row.n_updates == answered == Choice.objects.count()
    seqs = sorted(Choice.objects.values_list("posterior_seq", flat=True))
    assert seqs == list(range(1, answered + 1))  # every answer applied exactly once, in one serial order
    stored_mu = np.frombuffer(bytes(row.mu)).copy()
    stored_cov = np.frombuffer(bytes(row.cov)).copy()
    rebuilt = pairwise.posterior_rebuild(study=study, dimension=row.dimension)
    np.testing.assert_allclose(np.frombuffer(bytes(rebuilt.mu)), stored_mu, atol=1e-12)
    np.testing.assert_allclose(np.frombuffer(bytes(rebuilt.cov)), stored_cov, atol=1e-12)
    # Concurrent arrivals got complementary pairs: far from everyone holding the same six.
    pairs = {(min(a, b), max(a, b)) for a, b in Trial.objects.values_list("stimulus_id", "stimulus_right_id")}
    assert len(pairs) > 3 * 6

"""Answer tickets (study.tickets): the one-statement answer stores exactly what the full path stores, and anything
stale, forged or mismatched falls back to the full path, which decides and words the outcome."""

from __future__ import annotations

import base64
import json

import pytest
from django.db import connection
from django.test import Client

from study.bots import read_page
from study.models import Participant, Rating, Study, Trial
from study.services import participants_release
from study.tickets import TICKET_FIELD, ticket_read
from tests.study.factories import make_study
from tests.study.helpers import to_trials

pytestmark = pytest.mark.django_db


def _page(client: Client, url: str):
    response = client.get(url)
    assert response.status_code == 200
    return read_page(response.content.decode())


def _answer(page, value: int = 3, **changes) -> dict[str, str]:
    data = dict(page.hidden)
    for d in page.dimensions:
        data[d["data-dimension"]] = str(page.instructed if page.instructed is not None else value)
        data[f"rt_ms_{d['data-dimension']}"] = "800"
    data["rt_ms"] = "900"
    data.update(changes)
    return data


def _ratings(participant: Participant) -> list[tuple]:
    return sorted(
        (r.trial.index, r.dimension.name, r.value, r.rt_ms)
        for r in Rating.objects.filter(trial__participant=participant).select_related("trial", "dimension")
    )


def test_ticketed_and_full_path_answers_store_the_same_rows(study):
    """Both paths store what was posted, with the same columns filled; only the ticketed one skips the state read."""
    clients = {"ticketed": Client(), "full": Client()}
    walks = {name: to_trials(client, study, name) for name, client in clients.items()}
    posted: dict[str, list[tuple]] = {name: [] for name in clients}
    for name, client in clients.items():
        url, participant = walks[name]
        while (page := _page(client, url)).step == "trials":
            data = _answer(page, value=1 + len(posted[name]) % 5)
            if name == "full":
                data[TICKET_FIELD] = ""
            index = int(data["trial"])
            posted[name] += [
                (index, d["data-dimension"], float(data[d["data-dimension"]]), 800) for d in page.dimensions
            ]
            assert client.post(url, data).status_code == 303
    for name, (_, participant) in walks.items():
        participant.refresh_from_db()
        assert participant.step == Participant.Step.QUESTIONNAIRE, name
        assert _ratings(participant) == sorted(posted[name]) != [], name
        trials = list(participant.trials.all())
        assert all(t.answered_at and t.shown_at and t.rt_ms == 900 for t in trials), name
        checks = [t.attention_passed for t in trials if t.kind == Trial.Kind.ATTENTION]
        assert checks and all(checks), name
        assert all(t.attention_passed is None for t in trials if t.kind != Trial.Kind.ATTENTION), name


def test_a_ticket_is_bound_to_its_participant_and_trial_and_holds_no_condition(study):
    client = Client()
    url, participant = to_trials(client, study, "bound")
    page = _page(client, url)
    token = page.hidden[TICKET_FIELD]
    assert ticket_read(token=token, public_id=participant.public_id, index=0) is not None
    assert ticket_read(token=token, public_id="someone-else", index=0) is None
    assert ticket_read(token=token, public_id=participant.public_id, index=1) is None
    assert (
        ticket_read(token=token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), public_id=participant.public_id, index=0)
        is None
    )
    payload = json.loads(base64.urlsafe_b64decode(token.split(":")[0] + "=="))
    conditions = set(Trial.objects.filter(participant=participant).values_list("stimulus__condition", flat=True))
    assert not any(c in json.dumps(payload) for c in conditions)
    # Attention checks get no ticket: a failure may screen out, which the full path does in one transaction.
    for trial in participant.trials.order_by("index"):
        page = _page(client, url)
        assert bool(page.hidden[TICKET_FIELD]) == (trial.kind != Trial.Kind.ATTENTION), trial.kind
        assert client.post(url, _answer(page)).status_code == 303


def test_a_double_submission_with_a_ticket_is_stored_once_and_told_it_was_kept(study):
    client = Client()
    url, participant = to_trials(client, study, "double")
    page = _page(client, url)
    data = _answer(page, value=2)
    first = client.post(url, data)
    again = client.post(url, {**data, "artistry": "5"})
    assert first.status_code == again.status_code == 303
    assert "kept=1" not in first["Location"] and "kept=1" in again["Location"]
    assert {(d, v) for i, d, v, _ in _ratings(participant) if i == 0} == {("artistry", 2.0), ("symbolism", 2.0)}


def test_forged_stale_or_foreign_tickets_take_the_full_path(study):
    alice, bob = Client(), Client()
    url_a, p_a = to_trials(alice, study, "alice-t")
    url_b, p_b = to_trials(bob, study, "bob-t")
    page_a, page_b = _page(alice, url_a), _page(bob, url_b)
    # Bob posts Alice's ticket on his own page: refused as a ticket, answered on his own trial by the full path.
    assert bob.post(url_b, _answer(page_b, **{TICKET_FIELD: page_a.hidden[TICKET_FIELD]})).status_code == 303
    assert [i for i, *_ in _ratings(p_b)] == [0, 0] and _ratings(p_a) == []
    # A forged ticket: the full path still records the genuine answer.
    assert alice.post(url_a, _answer(page_a, **{TICKET_FIELD: "x" * 40})).status_code == 303
    assert [i for i, *_ in _ratings(p_a)] == [0, 0]
    # The study was edited after the page was served: the ticket's version no longer matches.
    page_a = _page(alice, url_a)
    Study.objects.get(pk=study.pk).save()
    assert alice.post(url_a, _answer(page_a)).status_code == 303
    assert [i for i, *_ in _ratings(p_a)] == [0, 0, 1, 1]
    # An out-of-range value with a valid ticket gets the full path's 400, and nothing is stored.
    page_a = _page(alice, url_a)
    response = alice.post(url_a, _answer(page_a, artistry="99"))
    assert response.status_code == 400 and len(_ratings(p_a)) == 4


def test_a_released_participant_with_a_valid_ticket_stores_nothing(study):
    client = Client()
    url, participant = to_trials(client, study, "released-t")
    page = _page(client, url)
    participants_release(participants=Participant.objects.filter(pk=participant.pk))
    response = client.post(url, _answer(page))
    assert response.status_code != 303 or "kept" in response.get("Location", "")
    assert _ratings(participant) == []


def test_the_ticketed_answer_is_one_statement_on_postgresql(stimulus_set):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite answers always take the full path (no data-modifying CTEs)")
    from django.test.utils import CaptureQueriesContext

    study = make_study(stimulus_set=stimulus_set, trials_per_participant=2, practice_trials=0, attention_checks=0)
    client = Client()
    url, _ = to_trials(client, study, "one-statement")
    page = _page(client, url)
    with CaptureQueriesContext(connection) as log:
        assert client.post(url, _answer(page)).status_code == 303
    statements = [q["sql"] for q in log.captured_queries if not q["sql"].upper().startswith(("SAVEPOINT", "RELEASE"))]
    assert len(statements) == 1 and statements[0].startswith("WITH p AS MATERIALIZED")

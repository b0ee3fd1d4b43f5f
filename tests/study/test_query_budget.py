"""Query budget of the participant pages (docs/study.md, "Serving cost"): each page's maximum, enforced.

The hot path must stay a handful of statements: one read of the participant's whole state, one conditional
update and one insert per answer. A change that adds a query to a page fails here, on SQLite and on PostgreSQL.
Only consent (the assignment) may take the per-study lock.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from study.bots import read_page
from study.models import Participant
from tests.study.factories import make_study

pytestmark = pytest.mark.django_db

# Statements per request, after the process caches are warm (a second participant of the same study).
BUDGET = {
    "entry GET": 3,  # the study, the participant by pseudonym, its insert
    # The page's state read, then the assignment: the participant and study again, the pool (both before the lock);
    # lock the study (which returns its kept allocation counts), the quota count (which checks them), move on and
    # keep the counts (one statement), insert the trials. A study with a time limit also releases idle participants
    # first; after a release the counts are aggregated afresh, once.
    "consent POST": 7,
    "instructions POST": 2,  # state read, conditional move
    # Any step: the state read, which also stamps a trial page as shown; the participant's first trial page in a
    # process also reads their trial counts (frozen, then cached: study.counts).
    "page GET": 2,
    # With the page's answer ticket (study.tickets): the conditional move, multi-row rating insert and answer stamp
    # as one statement. Without one (attention checks) the state read comes first.
    "trials POST": 2,
    "questionnaire POST": 3,  # state read, conditional move, answers insert
}
# SQLite has no data-modifying CTEs: the "shown" stamp, the answer's three writes and the consent's move and kept
# counts are separate statements there, and answers always read the state first.
SQLITE_BUDGET = {**BUDGET, "page GET": 2, "trials POST": 4, "consent POST": 8}
# What most requests cost: a submission on PostgreSQL is two statements (the ticketed answer; the next page's state).
TYPICAL = {"page GET": 1, "trials POST": 1}


def _count(fn):
    with CaptureQueriesContext(connection) as log:
        response = fn()
    # Transaction control is not a query of the page (tests wrap every request in a savepoint).
    control = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT", "BEGIN", "COMMIT")
    queries = [q["sql"] for q in log.captured_queries if not q["sql"].upper().startswith(control)]
    return response, queries


def _walk(study, pid: str) -> dict[str, list[list[str]]]:
    client = Client()
    seen: dict[str, list[list[str]]] = {}

    def note(key, queries):
        seen.setdefault(key, []).append(queries)

    response, queries = _count(lambda: client.get(f"/s/{study.slug}/", {"PROLIFIC_PID": pid}))
    note("entry GET", queries)
    url = response["Location"]
    while True:
        response, queries = _count(lambda: client.get(url))
        note("page GET", queries)
        page = read_page(response.content.decode())
        if page.step == "done":
            return seen
        data = dict(page.hidden)
        if page.step == "consent":
            data["choice"] = "agree"
        elif page.step == "trials":
            for d in page.dimensions:
                data[d["data-dimension"]] = d["data-min"]
            if page.instructed is not None:
                data[page.dimensions[0]["data-dimension"]] = str(page.instructed)
        elif page.step == "questionnaire":
            data.update({name: options[0] for name, options in page.radios.items()})
        response, queries = _count(lambda data=data: client.post(url, data))
        assert response.status_code == 303, response.content[:300]
        note(f"{page.step} POST", queries)


def test_participant_pages_stay_within_their_query_budget(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, trials_per_participant=6, practice_trials=1, attention_checks=1)
    _walk(study, "warm-up")  # fills the per-process caches (dimensions, scales, languages)
    seen = _walk(study, "measured")
    budget = BUDGET if connection.vendor == "postgresql" else SQLITE_BUDGET
    over = {key: max(len(q) for q in runs) for key, runs in seen.items() if max(len(q) for q in runs) > budget[key]}
    detail = {key: max(runs, key=len) for key, runs in seen.items() if key in over}
    assert not over, f"over budget {over} (budget {budget}): {detail}"
    if connection.vendor == "postgresql":
        typical = {key: sorted(len(q) for q in seen[key])[len(seen[key]) // 2] for key in TYPICAL}
        assert typical == TYPICAL
    assert Participant.objects.filter(study=study, step=Participant.Step.DONE).count() == 2


def test_only_the_assignment_takes_the_study_lock(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, trials_per_participant=4, practice_trials=0, attention_checks=0)
    _walk(study, "warm-up")
    seen = _walk(study, "measured")

    # The study row is the lock: assignment bumps its serial (UPDATE), which serialises concurrent arrivals.
    def takes_lock(sql: str) -> bool:
        sql = sql.upper()
        return "FOR UPDATE" in sql or sql.startswith('UPDATE "STUDY_STUDY"')

    locking = {key for key, runs in seen.items() for q in runs for sql in q if takes_lock(sql)}
    assert locking == {"consent POST"}


def _generic_plan(sql: str, n_params: int) -> str:
    """EXPLAIN of `sql` as a prepared statement's generic plan (what a long-lived connection keeps running)."""
    numbered, parts = [], sql.split("%s")
    for i, part in enumerate(parts):
        numbered.append(part)
        if i < len(parts) - 1:
            numbered.append(f"${i + 1}")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute("PREPARE budget_plan AS " + "".join(numbered).replace("%%", "%"))
        try:
            cursor.execute("EXPLAIN EXECUTE budget_plan(" + ", ".join(["NULL"] * n_params) + ")")
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE budget_plan")


def test_hot_statements_reach_a_participant_by_a_unique_key_in_their_generic_plans(stimulus_set):
    """The answer's compare-and-set once went through the step index (every participant at that step) once the
    prepared statement switched to its generic plan; each hot statement must find the participant by id or page id."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements and generic plans are PostgreSQL's")
    from study import fastpath

    make_study(stimulus_set=stimulus_set)  # some rows, so the planner sees tables
    statements = {
        "state read": fastpath._state_statement(False, True)[0],
        "state read with the shown stamp": fastpath._state_statement(True, True)[0],
        "answer's state read": fastpath._state_statement(False, False)[0],
        "answer": fastpath._answer_statement(2),
        "ticketed answer": fastpath._ticketed_answer_statement(2),
    }
    for name, sql in statements.items():
        plan = _generic_plan(sql, sql.count("%s"))
        scans = [line for line in plan.splitlines() if "study_participant" in line and "Scan" in line]
        assert scans, (name, plan)
        for line in scans:
            assert "study_participant_pkey" in line or "public_id" in line, (name, line, plan)

"""The participant hot path as precompiled SQL: read a participant's whole page state in one statement.

A profile of the participant pages showed most of the server's CPU going to the ORM *compiling* queries (expression
hashing, select_related walks), not to PostgreSQL running them. The statements here are built once per process
from the models' metadata, so a field another change adds is picked up without editing SQL, and every value passes
through the same database converters the ORM applies; only the per-request compilation is gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from django.db import connection
from django.db.models import Model, signals
from django.db.models.base import ModelState
from django.db.models.expressions import Col

from generation.models import Stimulus
from study.models import Participant, Rating, Study, Trial

# What a page needs of each joined row; the rest stays deferred (Django loads a deferred field on first access, one
# query, which the query-budget test would catch on the hot path). Building model objects costs per column, and
# the state read was the largest single cost of a participant request; 129 columns became 85.
_SKIPPED = {
    # The long texts are rendered only when a page skeleton is built (once per process and study version).
    Study: {
        "source",
        "consent_text",
        "instructions",
        "debrief",
        "conditions",
        "pilot_token",
        "assignment_serial",
        "allocation_counts",
        "allocation_basis",
    },
    Participant: {"user_agent", "recruitment"},
}
# The assignment reads the whole study but its texts: every design field decides the trial list.
# (The allocation counts come with the study lock, read after it: study_lock.)
_SKIPPED_BY_ALIAS = {
    "a_s": {"source", "consent_text", "instructions", "debrief", "allocation_counts", "allocation_basis"}
}
_TRIAL_PAGE_STIMULUS = {"id", "public_id", "image", "width", "height"}  # the <img> and the preload link
_ONLY = {
    "cur_s": _TRIAL_PAGE_STIMULUS,
    "nxt_s": _TRIAL_PAGE_STIMULUS,
    "nxt": {"id", "participant", "index", "kind", "stimulus", "stimulus_right", "block"},
    "prv": {"id", "participant", "index", "kind", "block"},  # "practice over" and "new block" notes
}


@dataclass(frozen=True)
class _Part:
    """One model's columns in the joined row: field names, their SQL, and per-column converters."""

    model: type
    alias: str
    names: tuple[str, ...]
    columns: tuple[str, ...]
    converters: tuple[tuple, ...]
    plain: bool  # no custom __init__ and no init signal receivers: the instance can be built from its __dict__

    def build(self, row: tuple, start: int):
        values = list(row[start : start + len(self.names)])
        if values[0] is None:  # the LEFT JOIN found nothing (first/last trial, or not at the trials step)
            return None
        for i, convs in enumerate(self.converters):
            for convert, expression in convs:
                values[i] = convert(values[i], expression, connection)
        if not self.plain:
            # from_db takes a subset of the fields in model order and defers the others.
            return self.model.from_db(connection.alias, self.names, values)
        # What Model.from_db ends in, without __init__'s per-field setattr walk (a tenth of an answer's CPU): the
        # loaded attnames in __dict__, every other field deferred (Django defers what __dict__ lacks).
        instance = self.model.__new__(self.model)
        instance._state = ModelState()
        instance._state.adding = False
        instance._state.db = connection.alias
        instance.__dict__.update(zip(self.names, values, strict=True))
        return instance


def _part(model: type, alias: str) -> _Part:
    quote = connection.ops.quote_name
    only = _ONLY.get(alias)
    skipped = _SKIPPED_BY_ALIAS.get(alias, _SKIPPED.get(model, set()))
    fields = [f for f in model._meta.concrete_fields if f.name not in skipped and (only is None or f.name in only)]
    # The primary key comes first in model order: its NULL marks a missing LEFT JOIN row.
    assert fields[0].primary_key, model
    converters = []
    for f in fields:
        col = Col(alias, f)
        backend = connection.ops.get_db_converters(col) + f.get_db_converters(connection)
        converters.append(tuple((c, col) for c in backend))
    plain = (
        model.__init__ is Model.__init__
        and not signals.pre_init.has_listeners(model)
        and not signals.post_init.has_listeners(model)
    )
    return _Part(
        model,
        alias,
        tuple(f.attname for f in fields),
        tuple(f"{alias}.{quote(f.column)}" for f in fields),
        tuple(converters),
        plain,
    )


def _stamps_in_statement() -> bool:
    """PostgreSQL runs data-modifying CTEs (one round trip for a read plus a write); SQLite has none."""
    return connection.vendor == "postgresql"


@cache
def _state_statement(stamp_shown: bool = False, neighbours: bool = True) -> tuple[str, tuple[_Part, ...]]:
    quote = connection.ops.quote_name
    parts = (_part(Participant, "p"), _part(Study, "s"), _part(Trial, "cur"))
    if neighbours:
        parts += (_part(Stimulus, "cur_s"), _part(Trial, "nxt"), _part(Stimulus, "nxt_s"), _part(Trial, "prv"))
    trial, stimulus = quote(Trial._meta.db_table), quote(Stimulus._meta.db_table)
    participant_fk, index = quote(Trial._meta.get_field("participant").column), quote("index")
    stimulus_fk = quote(Trial._meta.get_field("stimulus").column)
    study_fk = quote(Participant._meta.get_field("study").column)

    def trial_join(alias: str, offset: str) -> str:
        return (
            f"LEFT JOIN {trial} {alias} ON {alias}.{participant_fk} = p.{quote('id')} "
            f"AND {alias}.{index} = p.{quote('position')}{offset}"
        )

    shown_cte, shown_columns, shown_join = "", "", ""
    if stamp_shown:
        # The trial page's "shown" stamp (first serve; every serve counted) rides on the state read: a rating trial
        # at the participant's position, while they are at the trials step and not released. The main SELECT sees
        # the snapshot before the stamp, so the stamped values are returned from the CTE.
        shown_cte = (
            f"WITH shown AS (UPDATE {trial} t SET {_q(Trial, 'shown_at')} = COALESCE(t.{_q(Trial, 'shown_at')}, %s), "
            f"{_q(Trial, 'shown_count')} = t.{_q(Trial, 'shown_count')} + 1 "
            f"FROM {quote(Participant._meta.db_table)} p0 JOIN {quote(Study._meta.db_table)} s0 "
            f"ON s0.{quote('id')} = p0.{study_fk} "
            f"WHERE p0.{quote('public_id')} = %s AND s0.{quote('slug')} = %s "
            f"AND p0.{_q(Participant, 'step')} = %s AND p0.{_q(Participant, 'released_at')} IS NULL "
            f"AND t.{participant_fk} = p0.{quote('id')} AND t.{index} = p0.{quote('position')} "
            f"AND t.{_q(Trial, 'stimulus_right')} IS NULL "
            f"RETURNING t.{quote('id')} AS id, t.{_q(Trial, 'shown_at')} AS shown_at, "
            f"t.{_q(Trial, 'shown_count')} AS shown_count) "
        )
        shown_columns = ", shown.id, shown.shown_at, shown.shown_count"
        shown_join = "LEFT JOIN shown ON shown.id = cur.id "
    joins = trial_join("cur", "")
    if neighbours:
        joins += (
            f" LEFT JOIN {stimulus} cur_s ON cur_s.{quote('id')} = cur.{stimulus_fk} "
            f"{trial_join('nxt', ' + 1')} LEFT JOIN {stimulus} nxt_s ON nxt_s.{quote('id')} = nxt.{stimulus_fk} "
            f"{trial_join('prv', ' - 1')}"
        )
    sql = (
        f"{shown_cte}SELECT {', '.join(c for part in parts for c in part.columns)}{shown_columns} "
        f"FROM {quote(Participant._meta.db_table)} p "
        f"JOIN {quote(Study._meta.db_table)} s ON s.{quote('id')} = p.{study_fk} "
        f"{joins} {shown_join}"
        f"WHERE p.{quote('public_id')} = %s AND s.{quote('slug')} = %s"
    )
    return sql, parts


def participant_page_state(
    *, slug: str, public_id: str, stamp_shown_at=None, neighbours: bool = True
) -> Participant | None:
    """The participant with its study and its previous, current and next trial (with stimuli), in one statement.

    The trials are attributes `current_trial`, `next_trial` and `previous_trial` (None where there is none). With
    `stamp_shown_at` (a GET of the participant's own page) the same statement stamps the current rating trial as
    shown where the database can, and `participant.shown_stamped` says whether it did. `neighbours=False` (an
    answer, which renders no trial page) reads only the participant, the study and the current trial, without its
    stimulus: a third of the columns to convert.
    """
    stamp = stamp_shown_at is not None and _stamps_in_statement()
    sql, parts = _state_statement(stamp, neighbours)
    params = [public_id, slug]
    if stamp:
        params = [_prep(Trial, "shown_at", stamp_shown_at), public_id, slug, Participant.Step.TRIALS, *params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    objects, start = [], 0
    for part in parts:
        objects.append(part.build(row, start))
        start += len(part.names)
    participant, study, current, current_stimulus, upcoming, upcoming_stimulus, previous = (
        objects if neighbours else (*objects, None, None, None, None)
    )
    participant.study = study
    for trial, trial_stimulus in ((current, current_stimulus), (upcoming, upcoming_stimulus), (previous, None)):
        if trial is not None:
            trial.participant = participant
            if trial_stimulus is not None:
                trial.stimulus = trial_stimulus
    participant.current_trial, participant.next_trial, participant.previous_trial = current, upcoming, previous
    participant.shown_stamped = False
    if stamp and row[start] is not None and current is not None:
        current.shown_at, current.shown_count = row[start + 1], row[start + 2]
        participant.shown_stamped = True
    return participant


# ---- entry: the study by its slug, a returning participant by pseudonym ------------------------------------------


@cache
def _entry_statements() -> tuple[_Part, _Part, str, str]:
    study, participant = _part(Study, "a_s"), _part(Participant, "p")
    return (
        study,
        participant,
        f"SELECT {', '.join(study.columns)} FROM {_q(Study)} a_s WHERE a_s.{_q(Study, 'slug')} = %s",
        f"SELECT {', '.join(participant.columns)} FROM {_q(Participant)} p "
        f"WHERE p.{_q(Participant, 'study')} = %s AND p.{_q(Participant, 'pseudonym')} = %s",
    )


def study_by_slug(*, slug: str) -> Study | None:
    """The study behind a recruitment link (all but its texts and the assignment's counts, which load if used)."""
    study_part, _, sql, _ = _entry_statements()
    with connection.cursor() as cursor:
        cursor.execute(sql, [slug])
        row = cursor.fetchone()
    return None if row is None else study_part.build(row, 0)


def participant_by_pseudonym(*, study: Study, pseudonym: str) -> Participant | None:
    """A returning participant of `study` (the recruitment id's keyed hash), with the study attached."""
    _, participant_part, _, sql = _entry_statements()
    with connection.cursor() as cursor:
        cursor.execute(sql, [study.pk, pseudonym])
        row = cursor.fetchone()
    if row is None:
        return None
    participant = participant_part.build(row, 0)
    participant.study = study
    return participant


# ---- consent: the assignment's statements, run under the study's lock -------------------------------------------


@dataclass(frozen=True)
class StoredAllocation:
    counts: dict[int, int]  # {stimulus id: counted participants rating it}
    basis: int  # how many counted participants they were built from; -1: never built


def study_lock(*, study_id: int) -> StoredAllocation:
    """A write on the study row, the transaction's first statement: PostgreSQL takes the row's lock, SQLite its write
    lock, both held until commit, so concurrent assignments of one study run one after another.

    It returns the stored allocation counts: a row lock waited for returns the row as the last holder committed it.
    """
    serial, counts, basis = (_q(Study, name) for name in ("assignment_serial", "allocation_counts", "allocation_basis"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_q(Study)} SET {serial} = {serial} + 1 WHERE {_q(Study, 'id')} = %s RETURNING {counts}, {basis}",
            [study_id],
        )
        stored, n = cursor.fetchone()
    if isinstance(stored, str):  # SQLite, and Django's psycopg setup, leave JSON undecoded
        stored = json.loads(stored)
    return StoredAllocation(counts={int(k): v for k, v in stored.items()}, basis=n)


@cache
def _assignment_read() -> tuple[str, tuple[_Part, ...]]:
    quote = connection.ops.quote_name
    parts = (_part(Participant, "p"), _part(Study, "a_s"))
    sql = (
        f"SELECT {', '.join(c for part in parts for c in part.columns)} FROM {_q(Participant)} p "
        f"JOIN {_q(Study)} a_s ON a_s.{quote('id')} = p.{_q(Participant, 'study')} WHERE p.{quote('id')} = %s"
    )
    return sql, parts


def participant_for_assignment(*, participant_id: int) -> Participant:
    """The participant with their study (all but its texts), read before the lock: what the assignment decides on
    that no other participant changes (a concurrent consent or decline is caught by the move's compare-and-set)."""
    sql, (participant_part, study_part) = _assignment_read()
    with connection.cursor() as cursor:
        cursor.execute(sql, [participant_id])
        row = cursor.fetchone()
    if row is None:
        raise Participant.DoesNotExist(participant_id)
    participant = participant_part.build(row, 0)
    participant.study = study_part.build(row, len(participant_part.names))
    return participant


@cache
def _trial_columns() -> tuple[tuple, str, str]:
    """Trial's fields but the id, their column list, and the INSERT's head."""
    fields = tuple(f for f in Trial._meta.concrete_fields if not f.primary_key)
    columns = ", ".join(_q(Trial, f.name) for f in fields)
    return fields, columns, f"INSERT INTO {_q(Trial)} ({columns}) "


_JSON_NATIVE = (type(None), bool, int, str, list)


def trials_insert(*, trials: list[Trial]) -> None:
    """A participant's frozen trial list in one INSERT (bulk_create compiled and adapted every value of every row,
    under the study lock). The (participant, index) constraint stays the backstop against a second list.

    On PostgreSQL the rows travel as one JSON document that jsonb_populate_recordset turns into rows of the table's
    own column types: one parameter, encoded in C, where per-value adaptation cost more than the insert itself.
    Elsewhere, or for a value JSON cannot carry, rows of VALUES, 500 at a time.
    """
    fields, columns, head = _trial_columns()
    rows = [[getattr(t, f.attname) for f in fields] for t in trials]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and all(type(v) in _JSON_NATIVE for r in rows for v in r):
            document = json.dumps([{f.column: v for f, v in zip(fields, r, strict=True)} for r in rows])
            cursor.execute(
                f"{head}SELECT {columns} FROM jsonb_populate_recordset(NULL::{_q(Trial)}, %s::jsonb)", [document]
            )
            return
        placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            params = [f.get_db_prep_save(v, connection) for r in chunk for f, v in zip(fields, r, strict=True)]
            cursor.execute(f"{head}VALUES " + ", ".join([placeholders] * len(chunk)), params)


def _move_statement(names: list[str], unreleased: bool) -> str:
    sets = ", ".join(f"{_q(Participant, name)} = %s" for name in names)
    where = f"{_q(Participant, 'id')} = %s AND {_q(Participant, 'step')} = %s"
    if unreleased:
        where += f" AND {_q(Participant, 'released_at')} IS NULL"
    return f"UPDATE {_q(Participant)} SET {sets} WHERE {where}"


def _move_params(values: dict[str, object], participant_id: int, from_step: str) -> tuple[list[str], list]:
    names = sorted(values)
    return names, [*(_prep(Participant, name, values[name]) for name in names), participant_id, from_step]


def participant_move(
    *, participant_id: int, from_step: str, values: dict[str, object], unreleased: bool = False
) -> bool:
    """Compare-and-set: write `values` (field name: value) only while the participant is at `from_step` (and, with
    `unreleased`, not released); False when another request moved them first. The consent's move and every
    step change use it: the ORM's update compiled each time cost more than the statement."""
    names, params = _move_params(values, participant_id, from_step)
    with connection.cursor() as cursor:
        cursor.execute(_move_statement(names, unreleased), params)
        return cursor.rowcount == 1


def participant_assign(
    *, participant_id: int, values: dict[str, object], study_id: int, counts: dict[int, int], basis: int
) -> bool:
    """The consent's move (participant_move from consent) and, only if it moved, the study's kept allocation counts
    (`basis`: how many counted participants they describe). One statement on PostgreSQL (data-modifying CTEs),
    inside the study lock where every round trip is waited for by the next consent; two elsewhere."""
    names, move = _move_params(values, participant_id, Participant.Step.CONSENT)
    store = [_prep(Study, "allocation_counts", {str(k): v for k, v in counts.items()}), basis, study_id]
    keep = (
        f"UPDATE {_q(Study)} SET {_q(Study, 'allocation_counts')} = %s, {_q(Study, 'allocation_basis')} = %s "
        f"WHERE {_q(Study, 'id')} = %s"
    )
    with connection.cursor() as cursor:
        if _stamps_in_statement():
            cursor.execute(
                f"WITH moved AS ({_move_statement(names, False)} RETURNING {_q(Participant, 'id')}), "
                f"kept AS ({keep} AND EXISTS (SELECT 1 FROM moved)) SELECT count(*) FROM moved",
                [*move, *store],
            )
            return cursor.fetchone()[0] == 1
        cursor.execute(_move_statement(names, False), move)
        if cursor.rowcount != 1:
            return False
        cursor.execute(keep, store)
        return True


# ---- writes: the trial page's "shown" stamp and the answer of one trial ------------------------------------------


def _prep(model: type, name: str, value):
    return model._meta.get_field(name).get_db_prep_save(value, connection)


def _q(model: type, name: str | None = None) -> str:
    quote = connection.ops.quote_name
    return quote(model._meta.db_table) if name is None else quote(model._meta.get_field(name).column)


@cache
def _write_statements() -> dict[str, str]:
    P, T, R = Participant, Trial, Rating
    rating_fields = [f for f in R._meta.concrete_fields if not f.primary_key]
    return {
        "shown": (
            f"UPDATE {_q(T)} SET {_q(T, 'shown_at')} = COALESCE({_q(T, 'shown_at')}, %s), "
            f"{_q(T, 'shown_count')} = {_q(T, 'shown_count')} + 1 WHERE {_q(T, 'id')} = %s"
        ),
        # Compare-and-set on (step, position): of two racing submissions of one trial exactly one moves on.
        "move": (
            f"UPDATE {_q(P)} SET {_q(P, 'position')} = %s, {_q(P, 'step')} = %s, "
            f"{_q(P, 'attention_failures')} = {_q(P, 'attention_failures')} + %s "
            f"WHERE {_q(P, 'id')} = %s AND {_q(P, 'step')} = %s AND {_q(P, 'position')} = %s "
            f"AND {_q(P, 'released_at')} IS NULL"
        ),
        "answered": (
            f"UPDATE {_q(T)} SET {_q(T, 'answered_at')} = %s, {_q(T, 'rt_ms')} = %s, "
            f"{_q(T, 'attention_passed')} = %s, {_q(T, 'shown_at')} = COALESCE({_q(T, 'shown_at')}, %s) "
            f"WHERE {_q(T, 'id')} = %s"
        ),
        "rating_columns": ", ".join(_q(R, f.name) for f in rating_fields),
        "rating_row": "(" + ", ".join(["%s"] * len(rating_fields)) + ")",
    }


def trial_mark_shown(*, trial_id: int, now) -> None:
    """Stamp the first time a trial was served and count every serve (reloads), in one statement."""
    with connection.cursor() as cursor:
        cursor.execute(_write_statements()["shown"], [_prep(Trial, "shown_at", now), trial_id])


@dataclass(frozen=True)
class RatingRow:
    dimension_id: int
    value: float
    rt_ms: int | None


def _rating_params(ratings: list[RatingRow], *, now, trial_id: int | None) -> list:
    """The ratings' column values in Rating's field order, prepared for the database; without the trial column
    when `trial_id` is None (the ticketed statement takes it from the row it finds)."""
    with_trial = trial_id is not None
    fields = [f for f in Rating._meta.concrete_fields if not f.primary_key and (with_trial or f.name != "trial")]
    params = []
    for r in ratings:
        given = {"trial": trial_id, "dimension": r.dimension_id, "value": float(r.value), "rt_ms": r.rt_ms}
        given["created_at"] = now
        params += [
            f.get_db_prep_save(given[f.name] if f.name in given else f.get_default(), connection) for f in fields
        ]
    return params


def trial_answer_store(
    *,
    participant_id: int,
    index: int,
    next_step: str,
    trial_id: int,
    ratings: list[RatingRow],
    trial_rt_ms: int | None,
    attention_passed: bool | None,
    now,
) -> bool:
    """Move the participant on and store the trial's ratings, atomically; False when another request won the race.

    The conditional move, one multi-row INSERT of the ratings (the (trial, dimension) unique constraint stays the
    backstop) and the trial's answer stamp: on PostgreSQL one statement (data-modifying CTEs, atomic on its own and
    one round trip instead of five with BEGIN and COMMIT), elsewhere three statements in one transaction.
    """
    from django.db import transaction

    sql = _write_statements()
    stamp = _prep(Trial, "answered_at", now)
    failed = 1 if attention_passed is False else 0
    rows = _rating_params(ratings, now=now, trial_id=trial_id)
    move = [index + 1, next_step, failed, participant_id, Participant.Step.TRIALS, index]
    answered = [stamp, trial_rt_ms, attention_passed, stamp, trial_id]
    if _stamps_in_statement():
        with connection.cursor() as cursor:
            cursor.execute(_answer_statement(len(ratings)), [*move, *rows, *answered])
            return cursor.fetchone()[0] == 1
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql["move"], move)
        if cursor.rowcount != 1:
            return False
        if ratings:
            cursor.execute(
                f"INSERT INTO {_q(Rating)} ({sql['rating_columns']}) VALUES "
                + ", ".join([sql["rating_row"]] * len(ratings)),
                rows,
            )
        cursor.execute(sql["answered"], answered)
    return True


@cache
def _answer_statement(n_ratings: int) -> str:
    """trial_answer_store's three writes as one PostgreSQL statement; the insert and stamp run only if the move did.

    The rating values carry casts: in `INSERT ... SELECT FROM (VALUES ...)` a parameter's type comes from the VALUES
    list, not from the target column, and a NULL RT would otherwise be text.
    """
    sql = _write_statements()
    rating_fields = [f for f in Rating._meta.concrete_fields if not f.primary_key]
    row = "(" + ", ".join(f"%s::{f.cast_db_type(connection)}" for f in rating_fields) + ")"
    rated = ""
    if n_ratings:
        rated = (
            f", rated AS (INSERT INTO {_q(Rating)} ({sql['rating_columns']}) SELECT * FROM (VALUES "
            + ", ".join([row] * n_ratings)
            + ") AS v WHERE EXISTS (SELECT 1 FROM moved))"
        )
    return (
        f"WITH moved AS ({sql['move']} RETURNING {_q(Participant, 'id')}){rated}, "
        f"stamped AS ({sql['answered']} AND EXISTS (SELECT 1 FROM moved)) "
        "SELECT count(*) FROM moved"
    )


def ticketed_answers_supported() -> bool:
    """The single-statement answer needs data-modifying CTEs (PostgreSQL); elsewhere answers take the full path."""
    return _stamps_in_statement()


def trial_answer_store_ticketed(
    *,
    slug: str,
    public_id: str,
    index: int,
    next_step: str,
    study_id: int,
    study_updated_at,
    dimensions: list[str],
    ratings: list[RatingRow],
    trial_rt_ms: int | None,
    now,
) -> bool:
    """Store a rating trial's answer without a prior read: one statement, False when anything does not match.

    The compare-and-set moves the participant only if they are at this trial of the trials step, not released, in
    the study version the ratings were checked against, and the trial is a non-attention rating trial with exactly
    these dimensions; the ratings and the answer stamp are written only if it did (study.tickets).
    """
    rows = _rating_params(ratings, now=now, trial_id=None)
    stamp = _prep(Trial, "answered_at", now)
    trials = Participant.Step.TRIALS
    params = [
        *[public_id, trials, index, study_id, slug, _prep(Study, "updated_at", study_updated_at)],
        *[index, Trial.Kind.ATTENTION, json.dumps(dimensions)],
        *[index + 1, next_step, trials, index],
        *rows,
        *[stamp, trial_rt_ms, stamp],
    ]
    with connection.cursor() as cursor:
        cursor.execute(_ticketed_answer_statement(len(ratings)), params)
        return cursor.fetchone()[0] == 1


@cache
def _ticketed_answer_statement(n_ratings: int) -> str:
    quote = connection.ops.quote_name
    P, T, R, S = Participant, Trial, Rating, Study
    rating_fields = [f for f in R._meta.concrete_fields if not f.primary_key]
    given = [f for f in rating_fields if f.name != "trial"]
    row = "(" + ", ".join(f"%s::{f.cast_db_type(connection)}" for f in given) + ")"
    columns = ", ".join(_q(R, f.name) for f in rating_fields)
    selected = ", ".join("cur.id" if f.name == "trial" else f"v.{_q(R, f.name)}" for f in rating_fields)
    rated = ""
    if n_ratings:
        rated = (
            f", rated AS (INSERT INTO {_q(R)} ({columns}) SELECT {selected} FROM (VALUES "
            + ", ".join([row] * n_ratings)
            + f") AS v({', '.join(_q(R, f.name) for f in given)}) CROSS JOIN cur WHERE EXISTS (SELECT 1 FROM moved))"
        )
    pid, step, position, released = (_q(P, n) for n in ("public_id", "step", "position", "released_at"))
    # The participant is found by its page id alone, behind a materialized CTE: with the study's id also given, a
    # generic plan may otherwise reach them through the study_id index, a scan of the study's participants.
    return (
        f"WITH p AS MATERIALIZED (SELECT {quote('id')}, {_q(P, 'study')} AS study_id, {step} AS step, "
        f"{position} AS position, {released} AS released_at FROM {_q(P)} WHERE {pid} = %s), "
        f"cur AS (SELECT t.{quote('id')} AS id, p.id AS participant_id FROM p "
        f"JOIN {_q(S)} s ON s.{quote('id')} = p.study_id "
        f"JOIN {_q(T)} t ON t.{_q(T, 'participant')} = p.id "
        f"WHERE p.step = %s AND p.position = %s AND p.released_at IS NULL "
        f"AND s.{quote('id')} = %s AND s.{quote('slug')} = %s AND s.{_q(S, 'updated_at')} = %s "
        f"AND t.{quote('index')} = %s AND t.{_q(T, 'kind')} <> %s AND t.{_q(T, 'stimulus_right')} IS NULL "
        f"AND t.{_q(T, 'dimensions')} = %s::jsonb), "
        f"moved AS (UPDATE {_q(P)} SET {position} = %s, {step} = %s "
        f"WHERE {quote('id')} = (SELECT participant_id FROM cur) AND {step} = %s AND {position} = %s "
        f"AND {released} IS NULL RETURNING {quote('id')}){rated}, "
        f"stamped AS (UPDATE {_q(T)} SET {_q(T, 'answered_at')} = %s, {_q(T, 'rt_ms')} = %s, "
        f"{_q(T, 'attention_passed')} = NULL, {_q(T, 'shown_at')} = COALESCE({_q(T, 'shown_at')}, %s) "
        f"WHERE {quote('id')} = (SELECT id FROM cur) AND EXISTS (SELECT 1 FROM moved)) "
        "SELECT count(*) FROM moved"
    )

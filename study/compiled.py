"""ORM queries compiled to SQL once per process, then run with each call's values.

The consent and the entry run a handful of small ORM reads each (the quota count, the stimulus pool, the
allocation counts). Compiling one of them (lookups, joins, expressions) cost more CPU than PostgreSQL spent running
it, and at consent that CPU is spent while holding the study's lock. A `CompiledQuery` keeps the ORM queryset as
the one definition of the query: it builds it once with marker values in place of the arguments, compiles it,
and finds each marker among the compiled parameters; later calls only swap in their values.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.models import QuerySet

# Markers no real argument takes: ids are positive, and no study text holds these control characters.
_INT_MARKER_BASE = -7_340_000_000
_STR_MARKER = "\x1fcompiled-argument-{}\x1f"


class CompiledQuery:
    """`build(**markers)` returns a QuerySet; `rows(**values)` runs its compiled SQL with `values` in their place.

    Arguments are ints or strings; a list argument (an `__in` lookup) compiles once per length. Rows come back as
    the database driver returns them, so use it for ids, counts and text columns, which need no ORM converters.
    """

    def __init__(self, build: Callable[..., QuerySet], *, count: bool = False) -> None:
        self.build = build
        self.count = count  # rows() returns COUNT(*) of the query's rows, as QuerySet.count() would
        self._compiled: dict[tuple, tuple[str, list[tuple[bool, Any]]]] = {}
        self._lock = threading.Lock()

    def _compile(self, values: dict[str, Any]) -> tuple[str, list[tuple[bool, Any]]]:
        markers: dict[str, Any] = {}
        found: dict[Any, tuple[str, int | None]] = {}
        n = 0
        for name, value in values.items():
            if isinstance(value, (list, tuple)):
                items = []
                for i, item in enumerate(value):
                    marker = _marker(n, item)
                    found[marker] = (name, i)
                    items.append(marker)
                    n += 1
                markers[name] = items
            else:
                marker = _marker(n, value)
                found[marker] = (name, None)
                markers[name] = marker
                n += 1
        queryset = self.build(**markers)
        sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
        if self.count:
            sql = f"SELECT COUNT(*) FROM ({sql}) compiled_count"
        bindings = []
        for param in params:
            where = found.get(param) if isinstance(param, (int, str)) and not isinstance(param, bool) else None
            bindings.append((True, where) if where is not None else (False, param))
        bound = [where for is_arg, where in bindings if is_arg]
        if len(bound) != n or len(set(bound)) != n:
            raise RuntimeError(f"{self.build.__qualname__}: each argument must appear once, unchanged, in its query")
        return sql, bindings

    def rows(self, *, using: str = "default", **values: Any) -> list[tuple]:
        key = (using, *((name, len(v)) if isinstance(v, (list, tuple)) else name for name, v in values.items()))
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key) or self._compile(values)
                self._compiled[key] = compiled
        sql, bindings = compiled
        params = [_value(values, where) if is_arg else where for is_arg, where in bindings]
        with connections[using].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def scalar(self, *, using: str = "default", **values: Any) -> Any:
        return self.rows(using=using, **values)[0][0]


def _marker(n: int, example: Any) -> int | str:
    if isinstance(example, bool) or not isinstance(example, (int, str)):
        raise TypeError(f"compiled query arguments are ints or strings, not {type(example).__name__}")
    return _INT_MARKER_BASE - n if isinstance(example, int) else _STR_MARKER.format(n)


def _value(values: dict[str, Any], where: tuple[str, int | None]) -> Any:
    name, i = where
    return values[name] if i is None else values[name][i]
